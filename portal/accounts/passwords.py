"""Password policy (NIST SP 800-63B): 12..128 characters, anything allowed, no composition rules,
rejected when common (shipped breached-password list) or guessable (zxcvbn score < 3).
Hashing: argon2id through argon2-cffi."""

from __future__ import annotations

import gzip
import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3
_LIST = Path(__file__).parent / "data" / "common-passwords.txt.gz"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(_LIST, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def policy_errors(password: str, user_inputs: list[str] | None = None) -> list[str]:
    """Every reason this password is refused, in plain words ([] when acceptable)."""
    pw = normalise(password or "")
    length = len(pw)
    if length < MIN_LENGTH:
        return [_("Use at least %(n)d characters.", n=MIN_LENGTH)]
    if length > MAX_LENGTH:
        return [_("Use at most %(n)d characters.", n=MAX_LENGTH)]
    if pw.lower() in common_passwords():
        return [_("This password appears in lists of breached or common passwords. Choose another.")]
    inputs = [s for s in (user_inputs or []) if s]
    result = zxcvbn(pw[:72], user_inputs=inputs)  # zxcvbn raises past 72 characters
    if result["score"] < MIN_SCORE:
        return [_("This password is easy to guess (for example a common word, name, date or pattern). "
                  "Try a longer phrase of unrelated words.")]
    return []


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    key = (cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"], cfg["ARGON2_PARALLELISM"])
    cache = current_app.extensions.setdefault("argon2", {})
    if key not in cache:
        cache[key] = PasswordHasher(time_cost=key[0], memory_cost=key[1], parallelism=key[2])
    return cache[key]


def hash_password(password: str) -> str:
    return _hasher().hash(normalise(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash (verifies a dummy), so timing reveals nothing."""
    hasher = _hasher()
    target = stored_hash or _dummy_hash()
    try:
        ok = hasher.verify(target, normalise(password or ""))
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("argon2_dummy", {})
    key = (current_app.config["ARGON2_TIME_COST"], current_app.config["ARGON2_MEMORY_COST"])
    if key not in cache:
        cache[key] = _hasher().hash("dummy password for timing equality")
    return cache[key]

"""Password policy (NIST SP 800-63B): 12..128 characters, anything allowed, no composition rules,
rejected when common (shipped breached-password list) or guessable (zxcvbn score < 3).
Hashing: argon2id through argon2-cffi."""

from __future__ import annotations

import gzip
import re
import unicodedata
from datetime import date
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _

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


_WORD = re.compile(r"[^\W\d_]+|\d+")


def _date_variants(born: date) -> list[str]:
    y, m, d = f"{born.year:04d}", f"{born.month:02d}", f"{born.day:02d}"
    yy, m1, d1 = y[2:], str(born.month), str(born.day)
    return [y, yy, m + d, d + m, m1 + d1, d1 + m1, m + d + y, d + m + y, y + m + d, m + d + yy, d + m + yy,
            yy + m + d, m1 + d1 + y, d1 + m1 + y, born.isoformat()]


def personal_inputs(*texts: str | None, emails: tuple[str | None, ...] = (), birth_date: date | None = None) -> list[str]:
    """What a password must not be built from: each name and word (and the names run together), the
    email and its parts, and the birth date written the usual ways (1986, 0314, 1403, 14031986…).
    Passed to zxcvbn's `user_inputs` and to the "built from personal details" check."""
    out: list[str] = []
    for text in texts:
        words = [w.lower() for w in _WORD.findall(normalise(text or ""))]
        out += words
        if len(words) > 1:
            out += ["".join(words), "".join(reversed(words))]
    for email in emails:
        if email:
            local = normalise(email).lower().split("@", 1)[0]
            parts = _WORD.findall(local)
            out += [normalise(email).lower(), local] + [p.lower() for p in parts] + ["".join(parts).lower()]
    if birth_date is not None:
        out += _date_variants(birth_date)
    seen: dict[str, None] = {}
    for item in out:
        if item and item not in seen:
            seen[item] = None
    return list(seen)


def _built_from_personal(pw: str, inputs: list[str]) -> bool:
    """True when the password is only personal details plus digits and symbols (e.g. corrinjast1986,
    "Gladys Schumm 1981", Riverside2026!)."""
    rest = "".join(ch for ch in pw.lower() if ch.isalnum())
    original = rest
    for token in sorted((t for t in inputs if len(t) >= 3 and t.isalnum()), key=len, reverse=True):
        rest = rest.replace(token, " ")
    letters = "".join(ch for ch in rest if ch.isalpha())
    return rest != original and len(letters) < 4


def quick_errors(password: str) -> list[str]:
    """The checks that need nothing about the person (length, the breached list): callers run these
    before looking the person's details up."""
    pw = normalise(password or "")
    if len(pw) < MIN_LENGTH:
        return [_("Use at least %(n)d characters.", n=MIN_LENGTH)]
    if len(pw) > MAX_LENGTH:
        return [_("Use at most %(n)d characters.", n=MAX_LENGTH)]
    if pw.lower() in common_passwords():
        return [_("This password appears in lists of breached or common passwords. Choose another.")]
    return []


def policy_errors(password: str, user_inputs: list[str] | None = None) -> list[str]:
    """Every reason this password is refused, in plain words ([] when acceptable). `user_inputs`: the
    person's details (see personal_inputs) and the clinic's name."""
    pw = normalise(password or "")
    quick = quick_errors(pw)
    if quick:
        return quick
    inputs = [s for s in (user_inputs or []) if s]
    if inputs and _built_from_personal(pw, inputs):
        return [_("Do not build your password from your name, email, birth date or the clinic's name. "
                  "Try a few unrelated words.")]
    from zxcvbn import zxcvbn  # ~13 MiB of dictionaries: loaded where a password is chosen (G9)

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

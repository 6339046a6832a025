"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s, 160-bit seed) with replay protection, and recovery codes.

pyotp alone does not stop replay: TOTP.verify() accepts the same code twice. We store the last
accepted time step per user and accept only the current or previous step strictly above it; the
store is a conditional UPDATE so two simultaneous submits of one code cannot both win.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time

import pyotp
import segno
from sqlalchemy import or_, update

from portal.accounts.models import RecoveryCode, User
from portal.core.crypto import decrypt, encrypt, keyed_hash
from portal.core.db import utcnow
from portal.extensions import db

STEP_SECONDS = 30
DIGITS = 6
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, no 0/O/1/I: 5 bits each


def new_secret() -> str:
    return pyotp.random_base32(length=32)  # 32 base32 characters = 160 bits


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def qr_svg(uri: str, title: str) -> str:
    """Inline SVG (no script, no style attribute) for the enrolment page."""
    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=5, border=2, title=title, svgclass="qr-code", lineclass=None, omitsize=False)
    return svg.replace("<svg ", '<svg role="img" ', 1)


def clean_code(code: str | None) -> str:
    return re.sub(r"\s+", "", code or "")


def _matching_step(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    if not re.fullmatch(r"\d{%d}" % DIGITS, code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    for step in (current, current - 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def verify_totp(user: User, code: str, now: float | None = None) -> bool:
    """Accept the current or previous step once; never a step at or before the last accepted."""
    if not user.totp_secret_enc:
        return False
    step = _matching_step(decrypt(user.totp_secret_enc), clean_code(code), now or time.time(), user.totp_last_step)
    if step is None:
        return False
    return _claim_step(user, step)


def _claim_step(user: User, step: int) -> bool:
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    user.totp_last_step = step
    return True


def begin_enrolment(user: User) -> str:
    """Create (or keep) a pending secret; returns the plaintext secret for display."""
    if user.totp_pending_enc:
        return decrypt(user.totp_pending_enc)
    secret = new_secret()
    user.totp_pending_enc = encrypt(secret)
    db.session.flush()
    return secret


def confirm_enrolment(user: User, code: str, now: float | None = None) -> bool:
    if not user.totp_pending_enc:
        return False
    secret = decrypt(user.totp_pending_enc)
    step = _matching_step(secret, clean_code(code), now or time.time(), None)
    if step is None:
        return False
    # Claimed atomically on the pending secret: of two simultaneous confirmations only one enrols (and
    # makes the recovery codes the person is shown).
    values = {"totp_secret_enc": encrypt(secret), "totp_pending_enc": None, "totp_enabled_at": utcnow(),
              "totp_last_step": step}
    result = db.session.execute(
        update(User).where(User.id == user.id, User.totp_pending_enc == user.totp_pending_enc)
        .values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    for key, value in values.items():
        setattr(user, key, value)
    db.session.flush()
    return True


def clear_mfa(user: User) -> None:
    user.totp_secret_enc = None
    user.totp_pending_enc = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
                       .values(used_at=utcnow()))
    db.session.flush()


def _format_recovery(raw: str) -> str:
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def normalise_recovery(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", (code or "").upper())


def new_recovery_codes(user: User) -> list[str]:
    """Invalidate any old set and return 10 fresh codes (60 bits each), stored only as HMACs."""
    db.session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
                       .values(used_at=utcnow()))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
        codes.append(_format_recovery(raw))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=keyed_hash(raw, "recovery")))
    db.session.flush()
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    raw = normalise_recovery(code)
    if len(raw) != 12:
        return False
    result = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == keyed_hash(raw, "recovery"),
               RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def unused_recovery_count(user: User) -> int:
    return db.session.query(RecoveryCode).filter(RecoveryCode.user_id == user.id,
                                                  RecoveryCode.used_at.is_(None)).count()

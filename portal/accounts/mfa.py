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
from datetime import timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts.models import RecoveryCode, User, UserSession
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
    import segno  # only the set-up page draws a QR code (G9)

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


PENDING_SECONDS = 30 * 60  # a secret being set up stays usable this long after the set-up step began


def pending_secret(record) -> str | None:
    """The secret this session is setting up, or None (none, or its time is up)."""
    if not record.totp_pending_enc or record.totp_pending_at is None:
        return None
    if utcnow() - record.totp_pending_at > timedelta(seconds=PENDING_SECONDS):
        return None
    return decrypt(record.totp_pending_enc)


def begin_enrolment(record, *, fresh: bool = False) -> str:
    """The secret this session is setting up (made on first call, kept across reloads; `fresh` starts
    over). It lives on the session record, never on the user row shared by every session, so two
    sessions setting up at once each see their own secret and only one can ever win."""
    secret = None if fresh else pending_secret(record)
    if secret is None:
        secret = new_secret()
        record.totp_pending_enc = encrypt(secret)
        record.totp_pending_at = utcnow()
        db.session.flush()
    return secret


def confirm_enrolment(user: User, record, code: str, now: float | None = None, *, replacing: bool = False) -> bool:
    """Make the session's pending secret the account's factor, in one conditional UPDATE.

    First enrolment: only `WHERE totp_secret_enc IS NULL`, so a password-only session can never replace
    a factor (one that another session has just enrolled included). Replacement (`replacing`, from a
    fully signed-in session that proved the current factor): only while the factor in force is the one
    that session proved, i.e. enabled before this set-up began, so of two replacements only one wins
    and the old factor stays in force until this very UPDATE."""
    secret = pending_secret(record)
    if secret is None:
        return False
    step = _matching_step(secret, clean_code(code), now or time.time(), None)
    if step is None:
        return False
    if replacing:
        guard = and_(User.totp_secret_enc.is_not(None), User.totp_enabled_at <= record.totp_pending_at)
    else:
        guard = User.totp_secret_enc.is_(None)
    values = {"totp_secret_enc": encrypt(secret), "totp_enabled_at": utcnow(), "totp_last_step": step}
    result = db.session.execute(
        update(User).where(User.id == user.id, guard).values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    for key, value in values.items():
        set_committed_value(user, key, value)
    record.totp_pending_enc = None
    record.totp_pending_at = None
    db.session.flush()
    return True


def clear_mfa(user: User) -> None:
    """Support's reset after an identity check: no factor (app or passkeys), no recovery codes, no
    secret being set up."""
    from portal.accounts.passkeys import remove_all

    remove_all(user)
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id)
                       .values(totp_pending_enc=None, totp_pending_at=None)
                       .execution_options(synchronize_session=False))
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

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PublicIdMixin, TimestampMixin, UTCDateTime
from portal.core.roles import Role
from portal.extensions import db



class User(UserMixin, PublicIdMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    preferred_language: Mapped[str | None] = mapped_column(String(8))

    # TOTP: the secret is Fernet-encrypted; last_step stops replay (RFC 6238 §5.2). A secret being set
    # up (first enrolment or a replacement) belongs to one session: UserSession.totp_pending_enc.
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    # Passkeys (WebAuthn, accounts/passkeys.py): the random user handle the authenticators hold for this
    # account (never the email or an integer id), and since when the account has at least one passkey
    # (kept by passkeys.py, cleared when the last one goes), so `mfa_enabled` needs no query.
    webauthn_user_id: Mapped[str | None] = mapped_column(String(100), unique=True, index=True)
    passkeys_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    grants = relationship("AccessGrant", back_populates="user", lazy="raise")

    def get_id(self) -> str:  # Flask-Login
        return self.public_id

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.disabled_at is None

    @property
    def is_staff(self) -> bool:
        return Role.parse(self.role) not in (None, Role.PATIENT)

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret_enc is not None

    @property
    def mfa_enabled(self) -> bool:
        """A second factor is set up: an authenticator app, a passkey, or both."""
        return self.totp_enabled or self.passkeys_enabled_at is not None


class LoginFailure(db.Model):
    """Failed sign-in/code attempts per email (known or not), in a window, and the temporary lock.

    Keyed by a hash of the normalised email so an unknown address is counted and locked exactly like
    a real account (a lock reveals nothing), and kept in the database so it holds when Redis is down.
    A remembered device (signed device cookie) is counted under its own key (email + device), so
    strangers' failures do not lock it out. `consecutive` counts failures across windows until a
    success; each lock lasts longer than the last (`locks`), and at the cap (NIST SP 800-63B 5.2.2:
    at most 100) the key stays locked until an emailed password reset or a support unlock."""

    __tablename__ = "login_failures"

    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    email_key: Mapped[str | None] = mapped_column(String(64), index=True)  # set on a device's row
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    capped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserSession(PublicIdMixin, TimestampMixin, db.Model):
    """Server-side record of a sign-in; the cookie carries only a random token whose hash is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    mfa_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reauth_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # A TOTP secret this session is setting up (first enrolment, or replacing the authenticator), and
    # when that step began: pending limits are measured from here, never from the session's creation.
    totp_pending_enc: Mapped[str | None] = mapped_column(Text)
    totp_pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")


class RecoveryCode(TimestampMixin, db.Model):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ActivationCode(TimestampMixin, db.Model):
    """A one-time code staff give a patient to open their portal account (stored as an HMAC)."""

    __tablename__ = "activation_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class SupportIdentityCheck(TimestampMixin, db.Model):
    """How support staff confirmed a caller's identity before an MFA reset or unlock."""

    __tablename__ = "support_identity_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    verified_birth_date: Mapped[bool] = mapped_column(Boolean, default=False)


class Passkey(PublicIdMixin, TimestampMixin, db.Model):
    """A WebAuthn credential (a passkey on a phone or computer, or a security key) of one account.

    Only the public key is stored. `sign_count` and the backup flags are updated on every use
    (WebAuthn L3 §7.2 steps 21-22); `clone_suspected_at` marks a counter that went backwards (a
    possibly cloned authenticator): that use was refused and audited, and support sees the mark."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url, ≤ 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    aaguid: Mapped[str | None] = mapped_column(String(36))
    transports: Mapped[str | None] = mapped_column(String(200))  # comma-separated hints for the browser
    name: Mapped[str] = mapped_column(String(64))
    device_label: Mapped[str | None] = mapped_column(String(120))  # the browser it was made on, in words
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clone_suspected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebAuthnChallenge(TimestampMixin, db.Model):
    """A challenge handed to the browser: single use, bound to the browser session that asked for it
    (a keyed hash of a random value in that session's cookie) and, once signed in, to the account;
    expires after 5 minutes. Consumed by one conditional UPDATE, so a replay can never win."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge: Mapped[str] = mapped_column(String(128), unique=True)  # base64url
    purpose: Mapped[str] = mapped_column(String(16))
    binding: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PublicIdMixin, TimestampMixin, UTCDateTime
from portal.extensions import db

ROLES = ("patient", "clinician", "support", "billing", "admin")
STAFF_ROLES = ("clinician", "support", "billing", "admin")


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

    # TOTP: the secret is Fernet-encrypted; last_step stops replay (RFC 6238 §5.2).
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    totp_pending_enc: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    grants: Mapped[list[AccessGrant]] = relationship(back_populates="user", lazy="raise")

    def get_id(self) -> str:  # Flask-Login
        return self.public_id

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.disabled_at is None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def mfa_enabled(self) -> bool:
        return self.totp_enabled_at is not None and self.totp_secret_enc is not None


class LoginFailure(db.Model):
    """Failed sign-in/code attempts per email (known or not), in a window, and the temporary lock.

    Keyed by a hash of the normalised email so an unknown address is counted and locked exactly like
    a real account (a lock reveals nothing), and kept in the database so it holds when Redis is down."""

    __tablename__ = "login_failures"

    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccessGrant(TimestampMixin, db.Model):
    """Links a user to a patient record they may act for (`self` now, `proxy` later)."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("user_id", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    relationship_kind: Mapped[str] = mapped_column(String(16), default="self")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="grants")
    patient = relationship("Patient", lazy="joined")


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

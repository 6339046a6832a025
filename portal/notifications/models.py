"""Notification rows: a patient's contact settings, one row per notice sent (per channel), phone
verification codes, numbers that replied STOP, and texts patients sent us."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PatientOwnedMixin, PublicIdMixin, TimestampMixin, UTCDateTime, utcnow
from portal.extensions import db

# Notice.status
QUEUED = "queued"  # waiting for its (next) attempt at next_attempt_at
HELD = "held"  # a text held for the end of quiet hours (next_attempt_at = the morning)
SENDING = "sending"  # claimed by one worker (never two: the claim is a conditional UPDATE)
SENT = "sent"  # the provider accepted it (provider_id is its id)
FAILED = "failed"  # gave up (attempts used, or a permanent refusal): shown to support
CANCELLED = "cancelled"  # no longer allowed when its turn came (texts turned off, STOP, consent withdrawn)
STATUSES = (QUEUED, HELD, SENDING, SENT, FAILED, CANCELLED)

EMAIL = "email"
SMS = "sms"

# InboundText.status
HANDLED = "handled"  # answered by a keyword or a registered handler
UNHANDLED = "unhandled"  # waiting in the support queue (route_unrecognised)
RESOLVED = "resolved"  # a staff member dealt with it


class NotificationSettings(PatientOwnedMixin, TimestampMixin, db.Model):
    """How one patient wants to be reached: per kind a channel, a verified mobile number, and the
    time they consented to texts. One row per patient (created on first change)."""

    __tablename__ = "notification_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)  # one row per patient
    choices: Mapped[dict] = mapped_column(JSON, default=dict)  # {kind: "email"|"sms"|"both"|"off"}
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    phone_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sms_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notice(PublicIdMixin, TimestampMixin, db.Model):
    """One notice on one channel: created in the caller's transaction, delivered after commit by a
    Celery task that claims it first (so it is sent at most once), retried with back-off."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_patient_created", "patient_id", "created_at"),
        Index("ix_notices_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))  # None: a staff account
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(8))
    to_address: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default="en")
    link: Mapped[str] = mapped_column(String(1000))
    context: Mapped[dict] = mapped_column(JSON, default=dict)  # whitelisted, non-PHI template values
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(String(300))  # a short technical reason, never PHI

    attachments = relationship("NoticeAttachment", lazy="raise", cascade="all, delete-orphan")


class NoticeAttachment(db.Model):
    """A file sent with an email notice (e.g. an appointment's .ics)."""

    __tablename__ = "notice_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    mime: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PhoneVerification(TimestampMixin, db.Model):
    """A one-time code texted to a number the patient wants to use (stored as an HMAC, short-lived,
    a few tries; claimed with a conditional UPDATE so one code confirms once)."""

    __tablename__ = "phone_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    phone_e164: Mapped[str] = mapped_column(String(20), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SmsOptOut(db.Model):
    """A number that replied STOP (or a carrier keyword): no text goes to it until it replies START."""

    __tablename__ = "sms_opt_outs"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_e164: Mapped[str] = mapped_column(String(20), unique=True)
    keyword: Mapped[str] = mapped_column(String(32))
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InboundText(PublicIdMixin, db.Model):
    """A text someone sent to the clinic's number. Never dropped: answered by a keyword or a handler,
    or left for support staff (route_unrecognised). MessageSid is unique, so a replayed webhook is
    answered from the stored reply and changes nothing."""

    __tablename__ = "inbound_texts"
    __table_args__ = (Index("ix_inbound_texts_status_received", "status", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(32), index=True)
    to_phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=UNHANDLED)
    handled_by: Mapped[str | None] = mapped_column(String(64))  # "stop", "start", "help", a handler's name
    routed_to: Mapped[str | None] = mapped_column(String(64))  # where route_unrecognised sent it
    reply: Mapped[str | None] = mapped_column(Text)  # what we answered (replayed verbatim on a retry)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient = relationship("Patient", lazy="raise")

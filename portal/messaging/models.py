"""Messaging tables: pools (a team's shared queue) and their members, threads (one conversation with
one patient, routed to one pool, owned by at most one staff member), messages (patient, staff reply,
internal note, system), attachments (stored through storage.py under random names), canned replies.

Counters that must stay right under concurrency are changed with one UPDATE each (`version`,
`patient_unread`); the claim is a conditional UPDATE (services.claim).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PatientOwnedMixin, PublicIdMixin, TimestampMixin, UTCDateTime, utcnow
from portal.extensions import db

# thread statuses
OPEN = "open"
WAITING = "waiting"  # waiting on the patient
CLOSED = "closed"
STATUSES = (OPEN, WAITING, CLOSED)
ACTIVE = (OPEN, WAITING)  # not closed (an IN list, so the (pool_id, status) index serves it)

# message kinds
PATIENT = "patient"
STAFF = "staff"
NOTE = "note"  # internal: staff only, never in a patient page or notice
SYSTEM = "system"  # "claimed by", "moved to billing" … (staff only)

# what a patient can write about, and the pool kind it goes to when no pool names it
TOPICS = ("medical", "refill", "billing", "appointment", "technical", "records", "other")
TOPIC_ALIASES = {"scheduling": "appointment", "support": "technical", "prescription": "refill",
                 "result": "medical", "results": "medical"}
CARE_TOPICS = ("medical", "refill")


class Pool(PublicIdMixin, TimestampMixin, db.Model):
    """A team's shared queue (a care team, billing, support). `topics` (comma separated) are the request
    types routed here; `target_hours` is the expected reply time shown to patients and the service
    level the dashboard measures against."""

    __tablename__ = "msg_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    name_es: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16), default="support")  # care | billing | support
    topics: Mapped[str] = mapped_column(String(200), default="")
    target_hours: Mapped[int] = mapped_column(Integer, default=24)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def name_for(self, lang: str) -> str:
        return self.name_es if lang == "es" and self.name_es else self.name

    @property
    def topic_list(self) -> list[str]:
        return [t for t in (self.topics or "").split(",") if t]


class PoolMember(TimestampMixin, db.Model):
    __tablename__ = "msg_pool_members"
    __table_args__ = (UniqueConstraint("pool_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("msg_pools.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    pool: Mapped[Pool] = relationship(lazy="raise")
    user = relationship("User", lazy="raise")


class Thread(PatientOwnedMixin, TimestampMixin, db.Model):
    """One conversation with one patient. `awaiting_since`: when the oldest message nobody on staff has
    answered arrived (None when the last word is the clinic's): the service-level clock. `version` grows
    with every message, so a reply written against an older version is shown what came in between."""

    __tablename__ = "msg_threads"
    __table_args__ = (
        Index("ix_msg_threads_pool_status_activity", "pool_id", "status", "last_message_at"),
        Index("ix_msg_threads_patient_activity", "patient_id", "last_message_at"),
        Index("ix_msg_threads_assignee_status", "assignee_id", "status"),
        Index("ix_msg_threads_awaiting", "awaiting_since", "id"),  # the inbox order: oldest unanswered first
        Index("ix_msg_threads_pool_closed", "pool_id", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("msg_pools.id"))
    topic: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(160))
    ref: Mapped[str | None] = mapped_column(String(100))  # "kind:public_id" of what it is about
    ref_label: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16), default="portal")  # portal | sms | records …
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_preview: Mapped[str] = mapped_column(String(160), default="")
    awaiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    patient_unread: Mapped[int] = mapped_column(Integer, default=0)  # staff replies the patient has not opened
    patient_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    staff_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(String(1000))
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    pool: Mapped[Pool] = relationship(lazy="raise")
    patient = relationship("Patient", lazy="raise")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="raise")


class Message(PatientOwnedMixin, db.Model):
    """One message of a thread. `body_html` is bleach output (sanitize.py); `body_text` the plain text
    (previews, notices never carry it). `client_key` makes a double submit harmless (unique)."""

    __tablename__ = "msg_messages"
    __table_args__ = (Index("ix_msg_messages_thread_created", "thread_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("msg_threads.id"))
    kind: Mapped[str] = mapped_column(String(16))  # patient | staff | note | system
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(120), default="")
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    thread: Mapped[Thread] = relationship(lazy="raise")
    attachments: Mapped[list[Attachment]] = relationship(lazy="raise", order_by="Attachment.id",
                                                         back_populates="message")

    @property
    def internal(self) -> bool:
        return self.kind in (NOTE, SYSTEM)


class Attachment(PatientOwnedMixin, db.Model):
    __tablename__ = "msg_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("msg_threads.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("msg_messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(120))  # cleaned, shown and offered on download only
    stored_name: Mapped[str] = mapped_column(String(80))  # random; never derived from the upload's name
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    message: Mapped[Message] = relationship(lazy="raise", back_populates="attachments")


class CannedReply(PublicIdMixin, TimestampMixin, db.Model):
    """A pool's stock answer; `{first_name}` is replaced with the patient's first name."""

    __tablename__ = "msg_canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("msg_pools.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="en")

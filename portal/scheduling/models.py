"""Scheduling tables: the clinic's set-up (locations, providers, visit types, weekly availability,
exceptions), appointments and the slot claims that make double booking impossible, requests,
reminders, one-click link uses, the waitlist and its offers, eCheck-in and visit feedback.

Times are aware UTC (`UTCDateTime`); weekly templates hold wall-clock times of their location's zone.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import (Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Text, Time,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PatientOwnedMixin, PublicIdMixin, TimestampMixin, UTCDateTime, utcnow
from portal.extensions import db
from portal.scheduling import rules

# --- set-up ---------------------------------------------------------------------------------------


class Location(PublicIdMixin, TimestampMixin, db.Model):
    __tablename__ = "sched_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


provider_visit_types = Table(
    "sched_provider_visit_types", db.Model.metadata,
    Column("provider_id", ForeignKey("sched_providers.id"), primary_key=True),
    Column("visit_type_id", ForeignKey("sched_visit_types.id"), primary_key=True),
)


class Provider(PublicIdMixin, TimestampMixin, db.Model):
    """Someone patients book with. `speciality` is for staff pages only: never in a notice."""

    __tablename__ = "sched_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(120))
    credentials: Mapped[str | None] = mapped_column(String(40))
    speciality: Mapped[str | None] = mapped_column(String(120))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    visit_types: Mapped[list[VisitType]] = relationship(secondary=provider_visit_types, back_populates="providers")

    @property
    def label(self) -> str:
        return f"{self.display_name}, {self.credentials}" if self.credentials else self.display_name


MODALITIES = ("in_person", "video")
BOOKING_MODES = ("any", "established", "request")


class VisitType(PublicIdMixin, TimestampMixin, db.Model):
    __tablename__ = "sched_visit_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    name_es: Mapped[str | None] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(500))
    description_es: Mapped[str | None] = mapped_column(String(500))
    duration_minutes: Mapped[int] = mapped_column(Integer, default=30)
    modality: Mapped[str] = mapped_column(String(16), default="in_person")
    booking: Mapped[str] = mapped_column(String(16), default="any")  # any | established | request
    min_lead_minutes: Mapped[int] = mapped_column(Integer, default=120)
    max_ahead_days: Mapped[int] = mapped_column(Integer, default=90)
    cancel_cutoff_hours: Mapped[int] = mapped_column(Integer, default=24)
    questionnaire: Mapped[str] = mapped_column(String(32), default="general")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    providers: Mapped[list[Provider]] = relationship(secondary=provider_visit_types, back_populates="visit_types")

    @property
    def is_video(self) -> bool:
        return self.modality == "video"

    def name_for(self, lang: str) -> str:
        return (self.name_es if lang == "es" and self.name_es else self.name)

    def description_for(self, lang: str) -> str | None:
        return (self.description_es if lang == "es" and self.description_es else self.description)


class AvailabilityTemplate(PublicIdMixin, TimestampMixin, db.Model):
    """A provider's weekly hours at a location, in that location's wall-clock time."""

    __tablename__ = "sched_availability"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sched_providers.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("sched_locations.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)

    provider: Mapped[Provider] = relationship()
    location: Mapped[Location] = relationship()

    def window(self, tz: ZoneInfo) -> rules.Window:
        return rules.Window(self.provider_id, self.location_id, self.weekday, self.start_time, self.end_time, tz,
                            self.valid_from, self.valid_until)


EXCEPTION_KINDS = ("holiday", "leave", "training", "other")


class ScheduleException(PublicIdMixin, TimestampMixin, db.Model):
    """Time nobody (or one provider, or one location) can be booked: holidays, leave."""

    __tablename__ = "sched_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("sched_providers.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("sched_locations.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16), default="holiday")
    label: Mapped[str] = mapped_column(String(120))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    provider: Mapped[Provider | None] = relationship()
    location: Mapped[Location | None] = relationship()

    def block(self) -> rules.Block:
        return rules.Block(self.starts_at, self.ends_at, self.location_id)


# --- appointments ---------------------------------------------------------------------------------


class Appointment(PatientOwnedMixin, TimestampMixin, db.Model):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_patient_starts", "patient_id", "starts_at"),
        Index("ix_appointments_provider_starts", "provider_id", "starts_at"),
        Index("ix_appointments_status_starts", "status", "starts_at"),
        Index("ix_appointments_starts_at", "starts_at"),  # the staff day across providers (G8)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sched_providers.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("sched_locations.id"))
    visit_type_id: Mapped[int] = mapped_column(ForeignKey("sched_visit_types.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=rules.BOOKED)
    reason: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(16), default="patient")  # patient|staff|request|waitlist
    booking_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    booked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_note: Mapped[str | None] = mapped_column(String(300))
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    video_room: Mapped[str | None] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # iCalendar SEQUENCE

    provider: Mapped[Provider] = relationship(lazy="joined")
    location: Mapped[Location] = relationship(lazy="joined")
    visit_type: Mapped[VisitType] = relationship(lazy="joined")
    patient = relationship("Patient")

    @property
    def active(self) -> bool:
        return self.status in rules.ACTIVE

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    def is_upcoming(self, now: datetime | None = None) -> bool:
        return self.status == rules.BOOKED and self.ends_at > (now or utcnow())


class SlotClaim(db.Model):
    """One 15-minute cell of one provider's time, claimed by an appointment or a short hold. The
    unique (provider, cell) constraint is what makes two bookings of the same time impossible, on
    every database, whatever the two requests do in between."""

    __tablename__ = "sched_slot_claims"
    __table_args__ = (UniqueConstraint("provider_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sched_providers.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    hold_key: Mapped[str | None] = mapped_column(String(64), index=True)
    held_by_patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Reminder(db.Model):
    """A reminder sent (or skipped) for one offset: the unique pair is the "never twice" guarantee."""

    __tablename__ = "appointment_reminders"
    __table_args__ = (UniqueConstraint("appointment_id", "offset_minutes"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # sent | skipped
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LinkUse(db.Model):
    """A one-click link (confirm / cancel from a reminder) that has been used: single use."""

    __tablename__ = "appointment_link_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(String(32), unique=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    action: Mapped[str] = mapped_column(String(12))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppointmentRequest(PatientOwnedMixin, TimestampMixin, db.Model):
    """A request for a visit type staff schedule by hand (request-only types)."""

    __tablename__ = "appointment_requests"
    __table_args__ = (Index("ix_appointment_requests_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_type_id: Mapped[int] = mapped_column(ForeignKey("sched_visit_types.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("sched_providers.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("sched_locations.id"))
    preferred_times: Mapped[str | None] = mapped_column(String(100))  # codes: "mornings,afternoons,…"
    preferences_note: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|booked|declined|withdrawn
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    staff_note: Mapped[str | None] = mapped_column(String(300))

    visit_type: Mapped[VisitType] = relationship(lazy="joined")
    provider: Mapped[Provider | None] = relationship(lazy="joined")
    location: Mapped[Location | None] = relationship(lazy="joined")
    appointment: Mapped[Appointment | None] = relationship()
    patient = relationship("Patient")


class WaitlistEntry(PatientOwnedMixin, TimestampMixin, db.Model):
    """ "Tell me if an earlier time opens" for a visit type (with one provider, or any)."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (Index("ix_waitlist_entries_type_status", "visit_type_id", "status", "created_at"),
                      Index("ix_waitlist_entries_appointment_id", "appointment_id"))  # per appointment (G8)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_type_id: Mapped[int] = mapped_column(ForeignKey("sched_visit_types.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("sched_providers.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("sched_locations.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    not_after: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|fulfilled|removed
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    visit_type: Mapped[VisitType] = relationship(lazy="joined")
    provider: Mapped[Provider | None] = relationship(lazy="joined")
    appointment: Mapped[Appointment | None] = relationship()


class WaitlistOffer(PatientOwnedMixin, TimestampMixin, db.Model):
    """A freed time offered to a waitlisted patient. Several may be open for one time; the first to
    accept gets it through the same slot claims as any booking."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (UniqueConstraint("entry_id", "provider_id", "starts_at"),
                      Index("ix_waitlist_offers_status_expires", "status", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sched_providers.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("sched_locations.id"))
    visit_type_id: Mapped[int] = mapped_column(ForeignKey("sched_visit_types.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|accepted|declined|expired|taken
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    entry: Mapped[WaitlistEntry] = relationship()
    provider: Mapped[Provider] = relationship(lazy="joined")
    location: Mapped[Location] = relationship(lazy="joined")
    visit_type: Mapped[VisitType] = relationship(lazy="joined")


# --- eCheck-in and feedback -----------------------------------------------------------------------


class CheckIn(PatientOwnedMixin, TimestampMixin, db.Model):
    """The patient's online check-in for one appointment (from 7 days before)."""

    __tablename__ = "appointment_checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    address_line: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(50))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    contact_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    no_insurance: Mapped[bool] = mapped_column(Boolean, default=False)
    insurance_payer: Mapped[str | None] = mapped_column(String(120))
    insurance_member_id: Mapped[str | None] = mapped_column(String(64))
    insurance_group: Mapped[str | None] = mapped_column(String(64))
    insurance_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meds_current: Mapped[bool | None] = mapped_column(Boolean)
    meds_changes: Mapped[str | None] = mapped_column(Text)
    meds_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    questionnaire_key: Mapped[str | None] = mapped_column(String(32))
    answers_json: Mapped[str | None] = mapped_column(Text)
    questionnaire_saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    questionnaire_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    appointment: Mapped[Appointment] = relationship()
    cards: Mapped[list[InsuranceCard]] = relationship(back_populates="checkin", order_by="InsuranceCard.id")

    @property
    def answers(self) -> dict:
        return json.loads(self.answers_json) if self.answers_json else {}

    @property
    def steps_done(self) -> int:
        return sum(1 for v in (self.contact_done_at, self.insurance_done_at, self.meds_done_at,
                               self.questionnaire_done_at) if v is not None)


class InsuranceCard(PatientOwnedMixin, TimestampMixin, db.Model):
    """A photo of an insurance card, stored outside the web root under a random name."""

    __tablename__ = "insurance_card_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int] = mapped_column(ForeignKey("appointment_checkins.id"), index=True)
    side: Mapped[str] = mapped_column(String(8))  # front | back
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    checkin: Mapped[CheckIn] = relationship(back_populates="cards")


class VisitFeedback(PatientOwnedMixin, TimestampMixin, db.Model):
    """One rating (1-5) and an optional comment per visit."""

    __tablename__ = "visit_feedback"
    __table_args__ = (Index("ix_visit_feedback_provider_created", "provider_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), unique=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sched_providers.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("sched_locations.id"))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(1000))

    appointment: Mapped[Appointment] = relationship()
    provider: Mapped[Provider] = relationship(lazy="joined")
    location: Mapped[Location] = relationship(lazy="joined")

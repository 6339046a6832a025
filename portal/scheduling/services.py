"""Appointment rules: booking (patients and staff), holds, cancelling, rescheduling, confirming,
requests for request-only visit types, and the staff schedule's status marks.

No double booking: a booking inserts one SlotClaim per 15-minute cell it covers, inside a savepoint;
the unique (provider, cell) constraint refuses the second of two concurrent bookings on SQLite and
PostgreSQL alike, and the loser gets SlotTaken (a DomainError carrying the next free times). Nothing
here checks-then-inserts for that guarantee. Services flush and never commit; the request frame (or
the Celery task) commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import delete, false, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal.core.access import owned_or_404, patient_for, require_function, scope_filter
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError, Forbidden, NotFound
from portal.core.web import external_url
from portal.extensions import db
from portal.notifications.kinds import NoticeKind
from portal.notifications.services import notify
from portal.scheduling import ics, rules, slots
from portal.scheduling.events import SchedTag
from portal.scheduling.models import (Appointment, AppointmentRequest, CheckIn, Location, Provider, Reminder,
                                      SlotClaim, VisitFeedback, VisitType, WaitlistEntry, WaitlistOffer)
from portal.scheduling.settings import setting

MAX_REASON = 500


class SlotTaken(DomainError):
    """The chosen time went to someone else a moment ago. `alternatives`: the next free times."""

    def __init__(self, alternatives: list | None = None):
        super().__init__(_("Sorry, that time was just taken. Please choose another time."), field="slot")
        self.alternatives = alternatives or []


# --- lookups --------------------------------------------------------------------------------------

def visit_type_by_public_id(public_id: str | None, *, include_inactive: bool = False) -> VisitType | None:
    if not public_id:
        return None
    stmt = select(VisitType).where(VisitType.public_id == str(public_id)[:32])
    if not include_inactive:
        stmt = stmt.where(VisitType.active.is_(True))
    return db.session.execute(stmt).scalars().first()


def provider_by_public_id(public_id: str | None) -> Provider | None:
    if not public_id:
        return None
    return db.session.execute(select(Provider).where(Provider.public_id == str(public_id)[:32],
                                                     Provider.active.is_(True))).scalars().first()


def location_by_public_id(public_id: str | None) -> Location | None:
    if not public_id:
        return None
    return db.session.execute(select(Location).where(Location.public_id == str(public_id)[:32],
                                                     Location.active.is_(True))).scalars().first()


def active_visit_types() -> list[VisitType]:
    return list(db.session.execute(select(VisitType).where(VisitType.active.is_(True))
                                   .order_by(VisitType.name)).scalars())


def is_established(patient) -> bool:
    """Seen at the clinic before: a past visit that was not cancelled or missed."""
    now = utcnow()
    return db.session.execute(select(Appointment.id).where(
        Appointment.patient_id == patient.id,
        or_(Appointment.status.in_((rules.COMPLETED, rules.ARRIVED)),
            (Appointment.status == rules.BOOKED) & (Appointment.ends_at <= now))).limit(1)).first() is not None


def may_self_book(visit_type: VisitType, patient) -> bool:
    if visit_type.booking == "any":
        return True
    if visit_type.booking == "established":
        return is_established(patient)
    return False


def locations_for(visit_type: VisitType, provider: Provider | None) -> list[Location]:
    """Locations where the provider (or anyone offering the type) has weekly hours."""
    ids = [provider.id] if provider else [p.id for p in slots.providers_for(visit_type)]
    seen: dict[int, Location] = {}
    for t in slots.templates_for(ids):
        seen.setdefault(t.location_id, t.location)
    return sorted(seen.values(), key=lambda loc: loc.name)


# --- the booking wizard's pages -----------------------------------------------------------------

@dataclass
class BookingChoice:
    """Where the patient (or staff member) is in the booking steps, and what to show there."""

    visit_types: list = field(default_factory=list)
    visit_type: VisitType | None = None
    providers: list = field(default_factory=list)
    provider: Provider | None = None
    any_provider: bool = False
    locations: list = field(default_factory=list)
    location: Location | None = None
    week_start: date | None = None
    days: list = field(default_factory=list)  # [(local date, [SlotOption])]
    next_week: date | None = None
    prev_week: date | None = None
    first_free: date | None = None
    step: str = "type"
    reschedule: Appointment | None = None
    not_allowed: list = field(default_factory=list)  # visit types this patient may only request
    tz: object = None


def _clinic_tz():
    from portal.core.i18n import clinic_tz

    return clinic_tz()


def clinic_today() -> date:
    return utcnow().astimezone(_clinic_tz()).date()


def booking_choice(actor, patient, *, type_id=None, provider_id=None, location_id=None, week=None,
                   reschedule_id=None, staff: bool = False) -> BookingChoice:
    """One call for the booking page: which step, the choices on it, and the open slots of a week."""
    choice = BookingChoice()
    if reschedule_id:
        choice.reschedule = owned_or_404(Appointment, reschedule_id, actor)
        if choice.reschedule.patient_id != patient.id:
            raise NotFound()
        _require_changeable(choice.reschedule, staff=staff)
        type_id = choice.reschedule.visit_type.public_id
        provider_id = provider_id or choice.reschedule.provider.public_id  # start from the same provider
        location_id = location_id or choice.reschedule.location.public_id
    types = active_visit_types()
    if staff:
        choice.visit_types = types
    else:
        choice.visit_types = [t for t in types if t.booking != "established" or is_established(patient)]
        choice.not_allowed = [t for t in types if t not in choice.visit_types]
    choice.visit_type = next((t for t in choice.visit_types if t.public_id == type_id), None)
    if choice.visit_type is None:
        choice.step = "type"
        return choice
    vt = choice.visit_type
    if vt.booking == "request" and not staff:
        choice.step = "request"
        return choice
    choice.providers = slots.providers_for(vt)
    choice.any_provider = provider_id == "any"
    choice.provider = next((p for p in choice.providers if p.public_id == provider_id), None)
    if choice.provider is None and not choice.any_provider:
        choice.step = "provider"
        return choice
    choice.locations = locations_for(vt, choice.provider)
    if vt.is_video:
        choice.location = None
    else:
        choice.location = next((loc for loc in choice.locations if loc.public_id == location_id), None)
        if choice.location is None and len(choice.locations) == 1:
            choice.location = choice.locations[0]
        if choice.location is None:
            choice.step = "location"
            return choice
    choice.step = "slots"
    tz = choice.location.tz if choice.location else _clinic_tz()
    choice.tz = tz
    now = utcnow()
    today = now.astimezone(tz).date()
    provider_ids = [choice.provider.id] if choice.provider else None
    loc_id = choice.location.id if choice.location else None
    if week is None:
        first = slots.first_available(vt, frm=now, provider_ids=provider_ids, location_id=loc_id, staff=staff,
                                      now=now)
        week = first[0].start.astimezone(tz).date() if first else today
        choice.first_free = week if first else None
    week = max(week, today)
    frm = rules.local_day_bounds(week, tz)[0]
    to = rules.local_day_bounds(week + timedelta(days=6), tz)[1]
    found = slots.search(vt, frm=frm, to=to, provider_ids=provider_ids, location_id=loc_id, staff=staff, now=now)
    by_day: dict[date, list] = {}
    for option in found:
        by_day.setdefault(option.start.astimezone(tz).date(), []).append(option)
    choice.days = sorted(by_day.items())
    choice.week_start = week
    choice.next_week = week + timedelta(days=7)
    choice.prev_week = max(today, week - timedelta(days=7)) if week > today else None
    return choice


def resolve_slot(token: str | None, visit_type: VisitType) -> tuple[Provider, Location, datetime]:
    parsed = slots.parse_token(token)
    if parsed is None:
        raise DomainError(_("Choose a time from the list."), field="slot")
    provider = provider_by_public_id(parsed[0])
    location = location_by_public_id(parsed[1])
    if provider is None or location is None or visit_type not in provider.visit_types:
        raise DomainError(_("Choose a time from the list."), field="slot")
    return provider, location, parsed[2]


def next_free(visit_type: VisitType, after: datetime, *, provider: Provider | None, location: Location | None,
              staff: bool = False, count: int = 6, own_hold: str | None = None) -> list:
    """The next free times after a taken one (same provider if one was chosen, else anyone)."""
    ids = [provider.id] if provider else None
    loc = None if visit_type.is_video or location is None else location.id
    out = slots.first_available(visit_type, frm=after, provider_ids=ids, location_id=loc, staff=staff,
                                count=count)
    if not out and provider is not None:  # nobody else that day: widen to any provider
        out = slots.first_available(visit_type, frm=after, location_id=loc, staff=staff, count=count)
    return out


# --- claims ----------------------------------------------------------------------------------------

def _claim_cells(provider: Provider, start: datetime, duration: timedelta, now: datetime, *,
                 appointment: Appointment | None = None, hold_key: str | None = None, patient_id: int | None = None,
                 hold_until: datetime | None = None, release_hold: str | None = None,
                 release_appointment: Appointment | None = None) -> None:
    """Inside a savepoint: free expired holds (and the caller's own hold or old appointment) on the
    cells, then insert one claim per cell. Raises IntegrityError when any cell is taken."""
    cells = rules.cells(start, duration)
    mine = false()
    if release_hold:
        mine = SlotClaim.hold_key == release_hold
    db.session.execute(delete(SlotClaim).where(
        SlotClaim.provider_id == provider.id, SlotClaim.starts_at.in_(cells), SlotClaim.appointment_id.is_(None),
        or_(SlotClaim.hold_expires_at <= now, mine)).execution_options(synchronize_session=False))
    if release_appointment is not None:
        db.session.execute(delete(SlotClaim).where(SlotClaim.appointment_id == release_appointment.id)
                           .execution_options(synchronize_session=False))
    # Core inserts (no ORM objects to go stale), in ascending cell order, so two bookings never
    # wait on each other in a cycle.
    db.session.execute(insert(SlotClaim), [
        {"provider_id": provider.id, "starts_at": cell, "appointment_id": appointment.id if appointment else None,
         "hold_key": hold_key, "held_by_patient_id": patient_id, "hold_expires_at": hold_until} for cell in cells])


def release_claims(appointment: Appointment) -> None:
    db.session.execute(delete(SlotClaim).where(SlotClaim.appointment_id == appointment.id)
                       .execution_options(synchronize_session=False))


def hold(actor, patient, visit_type: VisitType, slot_token: str) -> str:
    """Hold a chosen time for a few minutes while the patient reviews it; returns the hold key."""
    provider, location, start = resolve_slot(slot_token, visit_type)
    now = utcnow()
    if not slots.is_open(visit_type, provider, location, start, now=now):
        raise SlotTaken(next_free(visit_type, start, provider=provider, location=location))
    key = secrets.token_hex(16)
    db.session.execute(delete(SlotClaim).where(SlotClaim.held_by_patient_id == patient.id,
                                               SlotClaim.appointment_id.is_(None))
                       .execution_options(synchronize_session=False))
    try:
        with db.session.begin_nested():
            _claim_cells(provider, start, timedelta(minutes=visit_type.duration_minutes), now, hold_key=key,
                         patient_id=patient.id,
                         hold_until=now + timedelta(minutes=setting("SCHEDULING_HOLD_MINUTES")))
    except IntegrityError:
        raise SlotTaken(next_free(visit_type, start, provider=provider, location=location)) from None
    record_event(SchedTag.APPOINTMENT_HELD, actor=actor, patient=patient, category="appointments",
                 object_type="provider", object_id=provider.public_id)
    return key


# --- booking ---------------------------------------------------------------------------------------

def _require_changeable(appointment: Appointment, *, staff: bool) -> None:
    if appointment.status != rules.BOOKED or appointment.starts_at <= utcnow():
        raise DomainError(_("This appointment can no longer be changed."))
    if not staff and not rules.can_change(appointment.starts_at, utcnow(), appointment.visit_type.cancel_cutoff_hours):
        raise DomainError(_("It is too close to the appointment to change it online. Please call the clinic."))


def _patient_overlap(patient, start: datetime, end: datetime, exclude_id: int | None = None) -> bool:
    stmt = select(Appointment.id).where(Appointment.patient_id == patient.id,
                                        Appointment.status.in_(tuple(rules.ACTIVE)),
                                        Appointment.starts_at < end, Appointment.ends_at > start)
    if exclude_id:
        stmt = stmt.where(Appointment.id != exclude_id)
    return db.session.execute(stmt.limit(1)).first() is not None


def _clean_text(value: str | None, limit: int) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise DomainError(_("Please keep it under %(n)s characters.", n=limit), field="reason")
    return value or None


def book(actor, patient, visit_type: VisitType, slot_token: str, *, reason: str | None = None,
         booking_key: str | None = None, hold_key: str | None = None, staff: bool = False, source: str = "patient",
         request: AppointmentRequest | None = None, notify_patient: bool = True) -> Appointment:
    """Book `slot_token` for `patient`. Idempotent per `booking_key` (a double submit returns the
    first booking); the slot claims decide between two different requests for the same time."""
    provider, location, start = resolve_slot(slot_token, visit_type)
    now = utcnow()
    if staff:
        require_function(actor, "schedule")
    elif not may_self_book(visit_type, patient):
        raise DomainError(_("This kind of visit cannot be booked online. Send a request instead."), field="slot")
    if booking_key:
        existing = _by_booking_key(patient, booking_key)
        if existing is not None:
            return existing
    duration = timedelta(minutes=visit_type.duration_minutes)
    if not slots.is_open(visit_type, provider, location, start, staff=staff, now=now, own_hold=hold_key):
        _audit_taken(actor, patient, provider)
        raise SlotTaken(next_free(visit_type, start, provider=provider, location=location, staff=staff))
    if _patient_overlap(patient, start, start + duration):
        raise DomainError(_("You already have an appointment at that time."), field="slot")
    appointment = Appointment(
        patient_id=patient.id, provider_id=provider.id, location_id=location.id, visit_type_id=visit_type.id,
        starts_at=start, ends_at=start + duration, status=rules.BOOKED, reason=_clean_text(reason, MAX_REASON),
        source=source, booking_key=(booking_key or secrets.token_hex(16))[:64], booked_by_id=actor.id,
        video_room=secrets.token_urlsafe(12) if visit_type.is_video else None, sequence=0)
    try:
        with db.session.begin_nested():
            db.session.add(appointment)
            db.session.flush()
            _claim_cells(provider, start, duration, now, appointment=appointment, release_hold=hold_key)
    except IntegrityError:
        if booking_key:
            existing = _by_booking_key(patient, booking_key)
            if existing is not None:
                return existing
        _audit_taken(actor, patient, provider)
        raise SlotTaken(next_free(visit_type, start, provider=provider, location=location, staff=staff)) from None
    if request is not None:
        request.status, request.appointment_id = "booked", appointment.id
        request.handled_by_id, request.handled_at = actor.id, now
    record_event(SchedTag.APPOINTMENT_BOOKED, actor=actor, patient=patient, category="appointments",
                 object_type="appointment", object_id=appointment.public_id, detail={"source": source})
    if notify_patient:
        _notify(patient, appointment, NoticeKind.APPOINTMENT_CONFIRMATION)
    return appointment


def _by_booking_key(patient, key: str) -> Appointment | None:
    return db.session.execute(select(Appointment).where(Appointment.booking_key == key[:64],
                                                        Appointment.patient_id == patient.id)).scalars().first()


def _audit_taken(actor, patient, provider) -> None:
    record_event(SchedTag.APPOINTMENT_SLOT_TAKEN, actor=actor, patient=patient, category="appointments",
                 object_type="provider", object_id=provider.public_id, outcome="refused")


def _patient_lang(patient) -> str:
    from portal.accounts.services import patient_account

    account = patient_account(patient)
    return (account.preferred_language if account else None) or patient.preferred_language or "en"


def _notify(patient, appointment: Appointment, kind: NoticeKind, *, cancelled: bool = False) -> None:
    """A notice with no PHI: a link to the signed-in page and the .ics (time and place only)."""
    data = ics.appointment_ics(appointment, lang=_patient_lang(patient), cancelled=cancelled)
    notify(patient, kind, link=external_url("appointments.detail", public_id=appointment.public_id),
           attachments=[("appointment.ics", "text/calendar", data)], context={"starts_at": appointment.starts_at})


def reschedule(actor, appointment: Appointment, slot_token: str, *, staff: bool = False,
               hold_key: str | None = None, reason: str | None = None, from_waitlist: bool = False) -> Appointment:
    """Move a booked appointment to another time (same visit type): the new cells are claimed and the
    old ones released in one savepoint, so a failure leaves the old time as it was. An accepted
    waitlist offer (an earlier time) may move it even inside the cancellation cut-off."""
    _require_changeable(appointment, staff=staff or from_waitlist)
    vt = appointment.visit_type
    provider, location, start = resolve_slot(slot_token, vt)
    now = utcnow()
    if start == appointment.starts_at and provider.id == appointment.provider_id:
        raise DomainError(_("That is the time you already have."), field="slot")
    if not slots.is_open(vt, provider, location, start, staff=staff, now=now, own_hold=hold_key):
        raise SlotTaken(next_free(vt, start, provider=provider, location=location, staff=staff))
    patient = appointment.patient
    duration = timedelta(minutes=vt.duration_minutes)
    if _patient_overlap(patient, start, start + duration, exclude_id=appointment.id):
        raise DomainError(_("You already have an appointment at that time."), field="slot")
    old = (appointment.provider, appointment.location, appointment.starts_at, appointment.ends_at)
    try:
        with db.session.begin_nested():
            _claim_cells(provider, start, duration, now, appointment=appointment, release_hold=hold_key,
                         release_appointment=appointment)
    except IntegrityError:
        _audit_taken(actor, patient, provider)
        raise SlotTaken(next_free(vt, start, provider=provider, location=location, staff=staff)) from None
    appointment.provider_id, appointment.location_id = provider.id, location.id
    appointment.provider, appointment.location = provider, location
    appointment.starts_at, appointment.ends_at = start, start + duration
    appointment.sequence = (appointment.sequence or 0) + 1
    appointment.confirmed_at = None
    if reason is not None and reason.strip():
        appointment.reason = _clean_text(reason, MAX_REASON)
    db.session.execute(delete(Reminder).where(Reminder.appointment_id == appointment.id)
                       .execution_options(synchronize_session=False))
    db.session.flush()
    record_event(SchedTag.APPOINTMENT_RESCHEDULED, actor=actor, patient=patient, category="appointments",
                 object_type="appointment", object_id=appointment.public_id)
    _notify(patient, appointment, NoticeKind.APPOINTMENT_CHANGE)
    from portal.scheduling import waitlist

    waitlist.slot_freed(vt, old[0], old[1], old[2], old[3], exclude_patient_id=patient.id)
    return appointment


def cancel(actor, appointment: Appointment, *, staff: bool = False, note: str | None = None,
           via: str = "portal") -> Appointment:
    """Cancel within policy (staff may cancel after the patient's cut-off); frees the time and offers
    it to the waitlist."""
    if appointment.status != rules.BOOKED:
        raise DomainError(_("This appointment is already cancelled or over."))
    if appointment.starts_at <= utcnow():
        raise DomainError(_("This appointment has already started."))
    if not staff and not rules.can_change(appointment.starts_at, utcnow(), appointment.visit_type.cancel_cutoff_hours):
        raise DomainError(_("It is too close to the appointment to cancel online. Please call the clinic."))
    note = (note or "").strip()[:300] or None
    appointment.status = rules.CANCELLED
    appointment.cancelled_at = utcnow()
    appointment.cancelled_by_id = getattr(actor, "id", None)
    appointment.cancel_note = note
    appointment.sequence = (appointment.sequence or 0) + 1
    release_claims(appointment)
    db.session.flush()
    record_event(SchedTag.APPOINTMENT_CANCELLED, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id,
                 detail={"via": via})
    _notify(appointment.patient, appointment, NoticeKind.APPOINTMENT_CHANGE, cancelled=True)
    from portal.scheduling import waitlist

    waitlist.close_for_appointment(appointment)
    waitlist.slot_freed(appointment.visit_type, appointment.provider, appointment.location, appointment.starts_at,
                        appointment.ends_at, exclude_patient_id=appointment.patient_id)
    return appointment


def confirm_attendance(actor, appointment: Appointment, *, via: str = "portal") -> bool:
    """The patient says they will come. Returns False when it was already confirmed."""
    if appointment.status != rules.BOOKED or appointment.starts_at <= utcnow():
        raise DomainError(_("This appointment can no longer be confirmed."))
    if appointment.confirmed_at is not None:
        return False
    appointment.confirmed_at = utcnow()
    db.session.flush()
    record_event(SchedTag.APPOINTMENT_CONFIRMED, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id,
                 detail={"via": via})
    return True


# --- the patient's pages -----------------------------------------------------------------------------

def my_appointments(actor) -> dict:
    """Upcoming and past visits, open requests, waitlist entries and open offers (one audit row)."""
    patient = patient_for(actor)
    now = utcnow()
    rows = db.session.execute(select(Appointment).where(scope_filter(Appointment, actor),
                                                        Appointment.patient_id == patient.id)
                              .order_by(Appointment.starts_at.desc()).limit(200)).scalars().all()
    upcoming = sorted((a for a in rows if a.status in rules.ACTIVE and a.ends_at > now), key=lambda a: a.starts_at)
    past = [a for a in rows if a not in upcoming]
    given = set(db.session.execute(select(VisitFeedback.appointment_id).where(
        VisitFeedback.patient_id == patient.id)).scalars())
    requests = db.session.execute(select(AppointmentRequest).where(
        scope_filter(AppointmentRequest, actor), AppointmentRequest.patient_id == patient.id,
        AppointmentRequest.status == "open").order_by(AppointmentRequest.created_at)).scalars().all()
    entries = db.session.execute(select(WaitlistEntry).where(
        scope_filter(WaitlistEntry, actor), WaitlistEntry.patient_id == patient.id,
        WaitlistEntry.status == "active")).scalars().all()
    offers = db.session.execute(select(WaitlistOffer).where(
        scope_filter(WaitlistOffer, actor), WaitlistOffer.patient_id == patient.id, WaitlistOffer.status == "open",
        WaitlistOffer.expires_at > now).order_by(WaitlistOffer.starts_at)).scalars().all()
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="appointments",
                 detail={"count": len(rows)})
    return {"patient": patient, "upcoming": upcoming, "past": past, "feedback_given": given,
            "requests": requests, "waitlist": entries, "offers": offers, "now": now}


def appointment_page(actor, public_id: str) -> dict:
    appointment = owned_or_404(Appointment, public_id, actor)
    now = utcnow()
    checkin = db.session.execute(select(CheckIn).where(CheckIn.appointment_id == appointment.id)).scalars().first()
    feedback = db.session.execute(select(VisitFeedback).where(
        VisitFeedback.appointment_id == appointment.id)).scalars().first()
    on_waitlist = db.session.execute(select(WaitlistEntry.id).where(
        WaitlistEntry.appointment_id == appointment.id, WaitlistEntry.status == "active")).first() is not None
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=appointment.patient_id, category="appointments",
                 object_type="appointment", object_id=appointment.public_id)
    vt = appointment.visit_type
    return {
        "appointment": appointment, "checkin": checkin, "feedback": feedback, "now": now,
        "on_waitlist": on_waitlist,
        "can_change": appointment.status == rules.BOOKED
        and rules.can_change(appointment.starts_at, now, vt.cancel_cutoff_hours),
        "change_deadline": rules.change_deadline(appointment.starts_at, vt.cancel_cutoff_hours),
        "checkin_open": appointment.status == rules.BOOKED and rules.checkin_open(appointment.starts_at, now),
        "checkin_opens": rules.checkin_opens(appointment.starts_at),
        "join_open": appointment.status in rules.ACTIVE and vt.is_video
        and rules.join_open(appointment.starts_at, appointment.ends_at, now, join_lead()),
        "join_opens": appointment.starts_at - join_lead(),
        "feedback_open": feedback is None and appointment.status in (rules.BOOKED, rules.ARRIVED, rules.COMPLETED)
        and rules.feedback_open(appointment.ends_at, now),
    }


def join_lead() -> timedelta:
    return timedelta(minutes=int(setting("VIDEO_JOIN_MINUTES_BEFORE")))


def video_url(actor, public_id: str) -> str:
    """The video room's address, only inside the join window (else a DomainError)."""
    appointment = owned_or_404(Appointment, public_id, actor)
    now = utcnow()
    if not (appointment.visit_type.is_video and appointment.status in rules.ACTIVE and appointment.video_room
            and rules.join_open(appointment.starts_at, appointment.ends_at, now, join_lead())):
        raise DomainError(_("The video visit opens %(minutes)s minutes before it starts.",
                            minutes=int(join_lead().total_seconds() // 60)))
    record_event(SchedTag.APPOINTMENT_JOINED, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id)
    return setting("VIDEO_VISIT_URL_TEMPLATE").format(room=appointment.video_room,
                                                      appointment=appointment.public_id)


def calendar_file(actor, public_id: str) -> tuple[bytes, Appointment]:
    appointment = owned_or_404(Appointment, public_id, actor)
    record_event(SchedTag.APPOINTMENT_ICS, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id)
    lang = getattr(actor, "preferred_language", None) or "en"
    return ics.appointment_ics(appointment, lang=lang,
                               cancelled=appointment.status in (rules.CANCELLED,)), appointment


def patient_book(actor, visit_type_id: str, slot_token: str, reason: str | None, booking_key: str | None,
                 hold_key: str | None, reschedule_id: str | None = None) -> Appointment:
    """The patient's confirm button: a new booking, or a move of `reschedule_id`."""
    patient = patient_for(actor)
    if reschedule_id:
        appointment = owned_or_404(Appointment, reschedule_id, actor)
        return reschedule(actor, appointment, slot_token, hold_key=hold_key, reason=reason)
    visit_type = visit_type_by_public_id(visit_type_id)
    if visit_type is None:
        raise DomainError(_("Choose the kind of visit again."), field="slot")
    return book(actor, patient, visit_type, slot_token, reason=reason, booking_key=booking_key, hold_key=hold_key)


def patient_hold(actor, visit_type_id: str, slot_token: str, reschedule_id: str | None = None) -> dict:
    """The "continue to review" step: check the time, hold it, and return what the review shows."""
    patient = patient_for(actor)
    visit_type = visit_type_by_public_id(visit_type_id)
    appointment = None
    if reschedule_id:
        appointment = owned_or_404(Appointment, reschedule_id, actor)
        _require_changeable(appointment, staff=False)
        visit_type = appointment.visit_type
    if visit_type is None:
        raise DomainError(_("Choose the kind of visit again."), field="slot")
    if appointment is None and not may_self_book(visit_type, patient):
        raise DomainError(_("This kind of visit cannot be booked online. Send a request instead."), field="slot")
    key = hold(actor, patient, visit_type, slot_token)
    provider, location, start = resolve_slot(slot_token, visit_type)
    return {"hold_key": key, "visit_type": visit_type, "provider": provider, "location": location, "start": start,
            "end": start + timedelta(minutes=visit_type.duration_minutes), "reschedule": appointment}


def review_context(actor, visit_type_id: str | None, slot_token: str | None, reschedule_id: str | None = None) -> dict:
    """What the review page shows for the chosen time (without holding it)."""
    visit_type = visit_type_by_public_id(visit_type_id)
    appointment = owned_or_404(Appointment, reschedule_id, actor) if reschedule_id else None
    if appointment is not None:
        visit_type = appointment.visit_type
    if visit_type is None:
        raise NotFound()
    try:
        provider, location, start = resolve_slot(slot_token, visit_type)
    except DomainError:
        raise NotFound() from None
    return {"visit_type": visit_type, "provider": provider, "location": location, "start": start,
            "end": start + timedelta(minutes=visit_type.duration_minutes), "reschedule": appointment}


def patient_cancel(actor, public_id: str) -> Appointment:
    return cancel(actor, owned_or_404(Appointment, public_id, actor))


def patient_confirm(actor, public_id: str) -> bool:
    return confirm_attendance(actor, owned_or_404(Appointment, public_id, actor))


# --- requests (request-only visit types) ------------------------------------------------------------

PREFERRED_TIMES = ("mornings", "afternoons", "evenings", "weekdays", "any")


def create_request(actor, visit_type_id: str, *, provider_id: str | None, location_id: str | None,
                   preferred: list[str], note: str | None, reason: str | None) -> AppointmentRequest:
    patient = patient_for(actor)
    visit_type = visit_type_by_public_id(visit_type_id)
    if visit_type is None:
        raise DomainError(_("Choose the kind of visit again."))
    provider = provider_by_public_id(provider_id) if provider_id and provider_id != "any" else None
    location = location_by_public_id(location_id) if location_id else None
    open_count = db.session.execute(select(func.count()).select_from(AppointmentRequest).where(
        AppointmentRequest.patient_id == patient.id, AppointmentRequest.status == "open")).scalar_one()
    if open_count >= 5:
        raise DomainError(_("You already have five open requests. We will be in touch about them soon."))
    req = AppointmentRequest(patient_id=patient.id, visit_type_id=visit_type.id,
                             provider_id=provider.id if provider else None,
                             location_id=location.id if location else None,
                             preferred_times=",".join(p for p in preferred if p in PREFERRED_TIMES)[:100] or None,
                             preferences_note=(note or "").strip()[:300] or None,
                             reason=(reason or "").strip()[:MAX_REASON] or None, status="open")
    db.session.add(req)
    db.session.flush()
    record_event(SchedTag.REQUEST_CREATED, actor=actor, patient=patient, category="appointments",
                 object_type="appointment_request", object_id=req.public_id)
    return req


def withdraw_request(actor, public_id: str) -> AppointmentRequest:
    req = owned_or_404(AppointmentRequest, public_id, actor)
    if req.status != "open":
        raise DomainError(_("This request has already been handled."))
    req.status, req.handled_at = "withdrawn", utcnow()
    db.session.flush()
    record_event(SchedTag.REQUEST_HANDLED, actor=actor, patient_id=req.patient_id, category="appointments",
                 object_type="appointment_request", object_id=req.public_id, detail={"outcome": "withdrawn"})
    return req


# --- staff ----------------------------------------------------------------------------------------------

def staff_booking_choice(actor, patient_public_id: str, **kw) -> tuple:
    require_function(actor, "schedule")
    patient = patient_for(actor, patient_public_id)
    return patient, booking_choice(actor, patient, staff=True, **kw)


def staff_book(actor, patient_public_id: str, visit_type_id: str, slot_token: str, *, reason: str | None,
               booking_key: str | None, request_id: str | None = None) -> Appointment:
    require_function(actor, "schedule")
    patient = patient_for(actor, patient_public_id)
    visit_type = visit_type_by_public_id(visit_type_id)
    if visit_type is None:
        raise DomainError(_("Choose the kind of visit again."), field="slot")
    request = None
    if request_id:
        request = owned_or_404(AppointmentRequest, request_id, actor)
        if request.patient_id != patient.id or request.status != "open":
            raise DomainError(_("This request has already been handled."), field="slot")
    return book(actor, patient, visit_type, slot_token, reason=reason, booking_key=booking_key, staff=True,
                source="request" if request else "staff", request=request)


def staff_appointment(actor, public_id: str) -> dict:
    require_function(actor, "schedule")
    appointment = owned_or_404(Appointment, public_id, actor)
    checkin = db.session.execute(select(CheckIn).options(selectinload(CheckIn.cards))
                                 .where(CheckIn.appointment_id == appointment.id)).scalars().first()
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id)
    if checkin is not None:
        record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=appointment.patient_id, category="checkin",
                     object_type="checkin", object_id=checkin.public_id)
    from portal.scheduling.questionnaires import questionnaire_for

    return {"appointment": appointment, "checkin": checkin, "now": utcnow(),
            "questionnaire": questionnaire_for(checkin.questionnaire_key if checkin else None)}


def staff_cancel(actor, public_id: str, note: str | None) -> Appointment:
    require_function(actor, "schedule")
    return cancel(actor, owned_or_404(Appointment, public_id, actor), staff=True, note=note, via="staff")


STATUS_MARKS = {"arrived": rules.ARRIVED, "no_show": rules.NO_SHOW, "completed": rules.COMPLETED,
                "undo": rules.BOOKED}


def mark_status(actor, public_id: str, mark: str) -> Appointment:
    """Arrived, no-show, completed (and undo of a mistaken mark), by support or clinicians."""
    require_function(actor, "schedule")
    appointment = owned_or_404(Appointment, public_id, actor)
    new = STATUS_MARKS.get(mark)
    if new is None or not rules.can_transition(appointment.status, new):
        raise DomainError(_("That change is not possible for this appointment."))
    now = utcnow()
    if new in (rules.NO_SHOW, rules.COMPLETED) and now < appointment.starts_at:
        raise DomainError(_("Only after the appointment's start time."))
    if new == rules.ARRIVED and now < appointment.starts_at - timedelta(hours=2):
        raise DomainError(_("Arrival can be marked from two hours before the appointment."))
    if new == rules.BOOKED and appointment.status == rules.NO_SHOW:
        # the time is free again after a no-show only in the past: re-claim nothing, just correct it
        appointment.no_show_at = None
    appointment.status = new
    if new == rules.ARRIVED:
        appointment.arrived_at = now
    elif new == rules.NO_SHOW:
        appointment.no_show_at = now
    elif new == rules.BOOKED:
        appointment.arrived_at = None
    db.session.flush()
    record_event(SchedTag.APPOINTMENT_STATUS, actor=actor, patient_id=appointment.patient_id,
                 category="appointments", object_type="appointment", object_id=appointment.public_id,
                 detail={"status": new})
    return appointment


def schedule(actor, *, day: date, days: int = 1, provider_id: str | None = None,
             location_id: str | None = None) -> dict:
    """The staff day or week view: appointments per day with check-in progress, one audit row."""
    require_function(actor, "schedule")
    tz = _clinic_tz()
    location = location_by_public_id(location_id)
    if location is not None:
        tz = location.tz
    provider = provider_by_public_id(provider_id)
    frm = rules.local_day_bounds(day, tz)[0]
    to = rules.local_day_bounds(day + timedelta(days=days - 1), tz)[1]
    stmt = (select(Appointment).where(scope_filter(Appointment, actor), Appointment.starts_at >= frm,
                                      Appointment.starts_at < to,
                                      Appointment.status.not_in((rules.RESCHEDULED,)))
            .options(selectinload(Appointment.patient)).order_by(Appointment.starts_at))
    if provider is not None:
        stmt = stmt.where(Appointment.provider_id == provider.id)
    if location is not None:
        stmt = stmt.where(Appointment.location_id == location.id)
    rows = db.session.execute(stmt).scalars().all()
    checkins = {c.appointment_id: c for c in db.session.execute(select(CheckIn).where(
        CheckIn.appointment_id.in_([a.id for a in rows] or [-1]))).scalars()}
    by_day: dict[date, list] = {day + timedelta(days=i): [] for i in range(days)}
    for a in rows:
        by_day.setdefault(a.starts_at.astimezone(tz).date(), []).append(a)
    record_event(SchedTag.SCHEDULE_VIEW, actor=actor, category="appointments",
                 detail={"appointments": len(rows), "days": days})
    providers = list(db.session.execute(select(Provider).where(Provider.active.is_(True))
                                        .order_by(Provider.display_name)).scalars())
    locations = list(db.session.execute(select(Location).where(Location.active.is_(True))
                                        .order_by(Location.name)).scalars())
    return {"days": sorted(by_day.items()), "checkins": checkins, "provider": provider, "location": location,
            "providers": providers, "locations": locations, "tz": tz, "day": day, "span": days,
            "count": len(rows), "now": utcnow()}


def open_requests(actor) -> list[AppointmentRequest]:
    require_function(actor, "schedule")
    rows = db.session.execute(select(AppointmentRequest).where(
        scope_filter(AppointmentRequest, actor), AppointmentRequest.status == "open")
        .options(selectinload(AppointmentRequest.patient)).order_by(AppointmentRequest.created_at)
        .limit(200)).scalars().all()
    record_event(SchedTag.SCHEDULE_VIEW, actor=actor, category="appointments",
                 object_type="appointment_request", detail={"requests": len(rows)})
    return list(rows)


def decline_request(actor, public_id: str, note: str | None) -> AppointmentRequest:
    require_function(actor, "schedule")
    req = owned_or_404(AppointmentRequest, public_id, actor)
    if req.status != "open":
        raise DomainError(_("This request has already been handled."))
    req.status, req.handled_by_id, req.handled_at = "declined", actor.id, utcnow()
    req.staff_note = (note or "").strip()[:300] or None
    db.session.flush()
    record_event(SchedTag.REQUEST_HANDLED, actor=actor, patient_id=req.patient_id, category="appointments",
                 object_type="appointment_request", object_id=req.public_id, detail={"outcome": "declined"})
    notify(req.patient, NoticeKind.APPOINTMENT_CHANGE, link=external_url("appointments.index"))
    return req


def request_for_staff(actor, public_id: str) -> AppointmentRequest:
    require_function(actor, "schedule")
    return owned_or_404(AppointmentRequest, public_id, actor)


def patient_panel(actor, patient) -> dict:
    """The staff patient page's section: upcoming visits and a "book for this patient" link."""
    now = utcnow()
    rows = db.session.execute(select(Appointment).where(
        Appointment.patient_id == patient.id, Appointment.status.in_(tuple(rules.ACTIVE)),
        Appointment.ends_at > now).order_by(Appointment.starts_at).limit(10)).scalars().all()
    requests = db.session.execute(select(func.count()).select_from(AppointmentRequest).where(
        AppointmentRequest.patient_id == patient.id, AppointmentRequest.status == "open")).scalar_one()
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="appointments",
                 object_type="patient", object_id=patient.public_id, detail={"count": len(rows)})
    return {"patient": patient, "appointments": rows, "open_requests": requests}


def upcoming_card(user, patient) -> dict | None:
    """The patient home card: the next visits, open offers and feedback waiting (one query: whether a
    recent visit has feedback comes with its row)."""
    if patient is None:
        return None
    now = utcnow()
    has_feedback = select(VisitFeedback.id).where(VisitFeedback.appointment_id == Appointment.id).exists()
    rows = db.session.execute(select(Appointment, has_feedback).where(
        Appointment.patient_id == patient.id,
        or_(Appointment.status.in_(tuple(rules.ACTIVE)) & (Appointment.ends_at > now),
            (Appointment.status.in_((rules.BOOKED, rules.COMPLETED, rules.ARRIVED)))
            & (Appointment.ends_at <= now) & (Appointment.ends_at > now - timedelta(days=30))))
        .order_by(Appointment.starts_at).limit(10)).all()
    upcoming = [a for a, _given in rows if a.ends_at > now][:3]
    waiting = [a for a, given in rows if a.ends_at <= now and not given][-1:]
    return {"upcoming": upcoming, "feedback_due": waiting, "now": now}


def staff_today_card(user, _patient) -> dict | None:
    from portal.core.access import may_use

    if not may_use(user, "schedule"):
        return None
    tz = _clinic_tz()
    today = utcnow().astimezone(tz).date()
    frm, to = rules.local_day_bounds(today, tz)
    counts = dict(db.session.execute(select(Appointment.status, func.count()).where(
        Appointment.starts_at >= frm, Appointment.starts_at < to,
        Appointment.status.not_in((rules.RESCHEDULED,))).group_by(Appointment.status)).all())
    requests = db.session.execute(select(func.count()).select_from(AppointmentRequest)
                                  .where(AppointmentRequest.status == "open")).scalar_one()
    return {"total": sum(v for k, v in counts.items() if k != rules.CANCELLED),
            "arrived": counts.get(rules.ARRIVED, 0) + counts.get(rules.COMPLETED, 0),
            "no_show": counts.get(rules.NO_SHOW, 0), "requests": requests, "day": today}

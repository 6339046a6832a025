"""The waitlist: "tell me if an earlier time opens".

When a time is freed (a cancellation, a move), it is offered to the waitlisted patients who want
that kind of visit (with that provider, or anyone) in the order they joined, WAITLIST_OFFER_BATCH at a
time; each offer expires after WAITLIST_OFFER_MINUTES. The first to accept gets the time through the
same slot claims as any booking, so two acceptances can never both win; the others' offers are
marked taken. When every offer of a time has expired or been declined, the next patients in line are
offered it (by the beat task or at once on a decline).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from portal.core.access import owned_or_404, patient_for
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.web import external_url
from portal.extensions import db
from portal.notifications.kinds import NoticeKind
from portal.notifications.services import notify
from portal.scheduling import rules, slots
from portal.scheduling.events import SchedTag
from portal.scheduling.models import (Appointment, Location, Provider, VisitType, WaitlistEntry, WaitlistOffer,
                                      provider_visit_types)
from portal.scheduling.settings import setting


def join(actor, *, appointment_id: str | None = None, visit_type_id: str | None = None,
         provider_id: str | None = None, any_provider: bool = False, not_after: date | None = None) -> WaitlistEntry:
    """Join for an existing appointment (move it earlier) or for a visit type with no time yet."""
    from portal.scheduling import services
    from portal.scheduling.services import provider_by_public_id, visit_type_by_public_id

    patient = patient_for(actor)
    appointment = owned_or_404(Appointment, appointment_id, actor) if appointment_id else None
    if appointment is not None:
        if appointment.status != rules.BOOKED or appointment.starts_at <= utcnow():
            raise DomainError(_("This appointment can no longer be changed."))
        visit_type = appointment.visit_type
        provider = None if any_provider else appointment.provider
        location_id = None if visit_type.is_video else appointment.location_id
    else:
        visit_type = visit_type_by_public_id(visit_type_id)
        if visit_type is None or visit_type.booking == "request":
            raise DomainError(_("Choose the kind of visit again."))
        if not services.may_self_book(visit_type, patient):
            raise DomainError(_("This kind of visit cannot be booked online. Send a request instead."))
        provider = None if any_provider else provider_by_public_id(provider_id)
        location_id = None
    if not_after is not None and not_after < utcnow().date():
        raise DomainError(_("Choose a date from today on."), field="not_after")
    dup = select(WaitlistEntry.id).where(WaitlistEntry.patient_id == patient.id, WaitlistEntry.status == "active",
                                         WaitlistEntry.visit_type_id == visit_type.id)
    dup = dup.where(WaitlistEntry.appointment_id == appointment.id) if appointment else \
        dup.where(WaitlistEntry.appointment_id.is_(None))
    if db.session.execute(dup.limit(1)).first() is not None:
        raise DomainError(_("You are already on the waitlist for this."))
    entry = WaitlistEntry(patient_id=patient.id, visit_type_id=visit_type.id,
                          provider_id=provider.id if provider else None, location_id=location_id,
                          appointment_id=appointment.id if appointment else None, not_after=not_after,
                          status="active")
    db.session.add(entry)
    db.session.flush()
    record_event(SchedTag.WAITLIST_JOINED, actor=actor, patient=patient, category="appointments",
                 object_type="waitlist_entry", object_id=entry.public_id)
    return entry


def leave(actor, public_id: str) -> WaitlistEntry:
    entry = owned_or_404(WaitlistEntry, public_id, actor)
    if entry.status == "active":
        entry.status, entry.closed_at = "removed", utcnow()
        db.session.execute(update(WaitlistOffer).where(WaitlistOffer.entry_id == entry.id,
                                                       WaitlistOffer.status == "open").values(status="declined"))
        db.session.flush()
        record_event(SchedTag.WAITLIST_LEFT, actor=actor, patient_id=entry.patient_id, category="appointments",
                     object_type="waitlist_entry", object_id=entry.public_id)
    return entry


def close_for_appointment(appointment: Appointment) -> None:
    """The appointment an entry wanted to move was cancelled: nothing left to move."""
    db.session.execute(update(WaitlistEntry).where(WaitlistEntry.appointment_id == appointment.id,
                                                   WaitlistEntry.status == "active")
                       .values(status="removed", closed_at=utcnow()))


def slot_freed(visit_type: VisitType, provider: Provider, location: Location, start: datetime, end: datetime, *,
               exclude_patient_id: int | None = None, now: datetime | None = None) -> list[WaitlistOffer]:
    """Offer a freed time to the next waitlisted patients (who have not been offered it yet)."""
    now = now or utcnow()
    if start <= now:
        return []
    length = end - start
    offered_already = select(WaitlistOffer.entry_id).where(WaitlistOffer.provider_id == provider.id,
                                                           WaitlistOffer.starts_at == start)
    candidates = db.session.execute(
        select(WaitlistEntry).join(VisitType, VisitType.id == WaitlistEntry.visit_type_id)
        .join(provider_visit_types, (provider_visit_types.c.visit_type_id == VisitType.id)
              & (provider_visit_types.c.provider_id == provider.id))
        .where(WaitlistEntry.status == "active", VisitType.active.is_(True), VisitType.booking != "request",
               VisitType.duration_minutes <= int(length.total_seconds() // 60),
               or_(WaitlistEntry.provider_id.is_(None), WaitlistEntry.provider_id == provider.id),
               or_(WaitlistEntry.location_id.is_(None), WaitlistEntry.location_id == location.id),
               WaitlistEntry.id.not_in(offered_already),
               WaitlistEntry.patient_id != (exclude_patient_id or -1))
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id).limit(50)).scalars().all()
    batch = int(setting("WAITLIST_OFFER_BATCH"))
    expires = min(start, now + timedelta(minutes=int(setting("WAITLIST_OFFER_MINUTES"))))
    made: list[WaitlistOffer] = []
    for entry in candidates:
        if len(made) >= batch:
            break
        vt = entry.visit_type
        current = entry.appointment
        if current is not None and current.status != rules.BOOKED:
            continue
        if not rules.offer_wanted(start, current.starts_at if current else None, entry.not_after, location.tz):
            continue
        if not slots.is_open(vt, provider, location, start, now=now):
            continue
        offer = WaitlistOffer(patient_id=entry.patient_id, entry_id=entry.id, provider_id=provider.id,
                              location_id=location.id, visit_type_id=vt.id, starts_at=start,
                              ends_at=start + timedelta(minutes=vt.duration_minutes), expires_at=expires,
                              status="open")
        db.session.add(offer)
        db.session.flush()
        made.append(offer)
        record_event(SchedTag.WAITLIST_OFFERED, actor=None, patient_id=entry.patient_id, category="appointments",
                     object_type="waitlist_offer", object_id=offer.public_id)
        from portal.patients.models import Patient

        notify(db.session.get(Patient, entry.patient_id), NoticeKind.APPOINTMENT_CHANGE,
               link=external_url("appointments.offer", public_id=offer.public_id))
    return made


def offer_page(actor, public_id: str) -> dict:
    offer = owned_or_404(WaitlistOffer, public_id, actor)
    now = utcnow()
    live = offer.status == "open" and offer.expires_at > now
    still_free = live and slots.is_open(offer.visit_type, offer.provider, offer.location, offer.starts_at, now=now)
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=offer.patient_id, category="appointments",
                 object_type="waitlist_offer", object_id=offer.public_id)
    return {"offer": offer, "live": live, "still_free": still_free, "entry": offer.entry, "now": now}


def accept(actor, public_id: str) -> Appointment:
    """Take an offered time. The first acceptance wins through the slot claims; the others see
    "that time was just taken"."""
    from portal.scheduling import services

    offer = owned_or_404(WaitlistOffer, public_id, actor)
    now = utcnow()
    if offer.status == "taken":  # another patient accepted first
        raise services.SlotTaken(services.next_free(offer.visit_type, offer.starts_at, provider=offer.provider,
                                                    location=offer.location))
    if offer.status != "open" or offer.expires_at <= now:
        raise DomainError(_("This offer has expired or was already answered."))
    patient = patient_for(actor)
    loc = offer.location
    token = slots.SlotOption(offer.starts_at, offer.ends_at, offer.provider, loc).token
    entry = offer.entry
    current = entry.appointment if entry.appointment_id else None
    try:
        if current is not None and current.status == rules.BOOKED:
            appointment = services.reschedule(actor, current, token, from_waitlist=True)
        else:
            appointment = services.book(actor, patient, offer.visit_type, token, source="waitlist",
                                        booking_key=f"offer-{offer.public_id}")
    except services.SlotTaken:
        offer.status, offer.responded_at = "taken", now
        db.session.flush()
        raise
    offer.status, offer.responded_at, offer.appointment_id = "accepted", now, appointment.id
    entry.status, entry.closed_at = "fulfilled", now
    db.session.execute(update(WaitlistOffer).where(
        WaitlistOffer.provider_id == offer.provider_id, WaitlistOffer.status == "open",
        WaitlistOffer.starts_at < offer.ends_at, WaitlistOffer.ends_at > offer.starts_at,
        WaitlistOffer.id != offer.id).values(status="taken"))
    db.session.flush()
    record_event(SchedTag.WAITLIST_ACCEPTED, actor=actor, patient_id=offer.patient_id, category="appointments",
                 object_type="waitlist_offer", object_id=offer.public_id)
    return appointment


def decline(actor, public_id: str) -> WaitlistOffer:
    offer = owned_or_404(WaitlistOffer, public_id, actor)
    if offer.status != "open":
        raise DomainError(_("This offer has expired or was already answered."))
    offer.status, offer.responded_at = "declined", utcnow()
    db.session.flush()
    record_event(SchedTag.WAITLIST_DECLINED, actor=actor, patient_id=offer.patient_id, category="appointments",
                 object_type="waitlist_offer", object_id=offer.public_id)
    _refill(offer)
    return offer


def _refill(offer: WaitlistOffer, now: datetime | None = None) -> list[WaitlistOffer]:
    """No offer of this time is open any more: offer it to the next in line (if still free)."""
    still_open = db.session.execute(select(WaitlistOffer.id).where(
        WaitlistOffer.provider_id == offer.provider_id, WaitlistOffer.starts_at == offer.starts_at,
        WaitlistOffer.status == "open", WaitlistOffer.expires_at > (now or utcnow()))).first()
    if still_open is not None:
        return []
    return slot_freed(offer.visit_type, offer.provider, offer.location, offer.starts_at, offer.ends_at, now=now)


def expire_offers(now: datetime | None = None) -> int:
    """Beat task body: close expired offers and pass each freed time on. Returns offers expired."""
    now = now or utcnow()
    expired = db.session.execute(select(WaitlistOffer).where(WaitlistOffer.status == "open",
                                                             WaitlistOffer.expires_at <= now)
                                 .order_by(WaitlistOffer.starts_at).limit(500)).scalars().all()
    for offer in expired:
        offer.status = "expired"
    db.session.flush()
    seen = set()
    for offer in expired:
        key = (offer.provider_id, offer.starts_at)
        if key not in seen:
            seen.add(key)
            _refill(offer, now)
    return len(expired)

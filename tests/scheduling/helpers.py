"""Scheduling test helpers: a small clinic (one location in America/Chicago, two providers with
weekday hours, in-person, video, established-only and request-only visit types), and shortcuts to
book through the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from portal.core.db import utcnow
from portal.extensions import db
from portal.scheduling import rules, slots
from portal.scheduling.models import AvailabilityTemplate, Location, Provider, VisitType


@dataclass
class Clinic:
    location: Location
    north: Location
    patel: Provider
    ruiz: Provider
    consult: VisitType
    video: VisitType
    followup: VisitType
    procedure: VisitType

    def slot(self, vt=None, provider=None, days_ahead=2, location=None, staff=False, index=0):
        vt = vt or self.consult
        provider = provider or self.patel
        found = slots.first_available(vt, frm=utcnow() + timedelta(days=days_ahead), provider_ids=[provider.id],
                                      location_id=None if vt.is_video else (location or self.location).id,
                                      staff=staff, count=index + 1)
        assert len(found) > index, "the test clinic has no free slot"
        return found[index]


def make_clinic(*, all_week: bool = True) -> Clinic:
    loc = Location(name="Test Clinic Main", address="1 Main St", timezone="America/Chicago")
    north = Location(name="Test Clinic North", address="2 North St", timezone="America/Chicago")
    consult = VisitType(name="Consultation", duration_minutes=30, modality="in_person", booking="any",
                        min_lead_minutes=60, max_ahead_days=90, cancel_cutoff_hours=24, questionnaire="general")
    video = VisitType(name="Video check-in", duration_minutes=30, modality="video", booking="any",
                      min_lead_minutes=0, max_ahead_days=60, cancel_cutoff_hours=4, questionnaire="video")
    followup = VisitType(name="Follow-up", duration_minutes=15, modality="in_person", booking="established",
                         min_lead_minutes=60, max_ahead_days=60, cancel_cutoff_hours=24, questionnaire="follow_up")
    procedure = VisitType(name="Procedure consult", duration_minutes=60, modality="in_person", booking="request",
                          min_lead_minutes=60, max_ahead_days=90, cancel_cutoff_hours=48)
    patel = Provider(display_name="Dr. Test Patel", credentials="MD", speciality="Cardiology")
    ruiz = Provider(display_name="Test Ruiz", credentials="NP", speciality="Dermatology")
    patel.visit_types = [consult, video, followup, procedure]
    ruiz.visit_types = [consult, video]
    db.session.add_all([loc, north, consult, video, followup, procedure, patel, ruiz])
    db.session.flush()
    days = range(7) if all_week else range(5)
    for day in days:
        db.session.add(AvailabilityTemplate(provider_id=patel.id, location_id=loc.id, weekday=day,
                                            start_time=time(8, 0), end_time=time(17, 0)))
        db.session.add(AvailabilityTemplate(provider_id=ruiz.id, location_id=north.id, weekday=day,
                                            start_time=time(9, 0), end_time=time(12, 0)))
    db.session.flush()
    return Clinic(loc, north, patel, ruiz, consult, video, followup, procedure)


def book_direct(patient, clinic: Clinic, *, actor, slot=None, vt=None, **kw):
    """Book through the real service (staff path unless told otherwise)."""
    from portal.scheduling import services

    slot = slot or clinic.slot(vt, staff=True)
    return services.book(actor, patient, vt or clinic.consult, slot.token, staff=kw.pop("staff", True), **kw)


def shift(appointment, *, starts_at: datetime) -> None:
    """Move an appointment's times (to put it inside a window in tests), claims included."""
    from sqlalchemy import delete

    from portal.scheduling.models import SlotClaim

    duration = appointment.ends_at - appointment.starts_at
    db.session.execute(delete(SlotClaim).where(SlotClaim.appointment_id == appointment.id))
    appointment.starts_at, appointment.ends_at = starts_at, starts_at + duration
    if appointment.status in rules.ACTIVE:
        aligned = starts_at.replace(minute=(starts_at.minute // 15) * 15, second=0, microsecond=0)
        for cell in rules.cells(aligned, duration):
            db.session.add(SlotClaim(provider_id=appointment.provider_id, starts_at=cell,
                                     appointment_id=appointment.id))
    db.session.flush()

"""Seeding helpers for the scheduling browser journeys (write to the live server's database)."""

from __future__ import annotations

from datetime import timedelta


def clinic(seed):
    """The test clinic, made once per live server (names are unique in the booking pages)."""
    cached = getattr(seed.app, "_sched_clinic_ids", None)
    from portal.extensions import db
    from portal.scheduling.models import Location, Provider, VisitType

    with seed.app.app_context():
        if cached is None:
            from tests.scheduling.helpers import make_clinic

            c = make_clinic()
            db.session.commit()
            cached = seed.app._sched_clinic_ids = {k: getattr(c, k).id for k in (
                "location", "north", "patel", "ruiz", "consult", "video", "followup", "procedure")}
        return {k: (db.session.get({"location": Location, "north": Location, "patel": Provider,
                                    "ruiz": Provider}.get(k, VisitType), v).public_id) for k, v in cached.items()}


def appointment(seed, patient_public_id, *, vt="consult", starts_in: timedelta, status="booked", minutes=None):
    """An appointment placed directly (times the booking pages would not offer: now, the past)."""
    from sqlalchemy import select

    from portal.core.db import utcnow
    from portal.extensions import db
    from portal.patients.models import Patient
    from portal.scheduling import rules
    from portal.scheduling.models import Appointment, SlotClaim

    ids = clinic(seed)
    with seed.app.app_context():
        cached = seed.app._sched_clinic_ids
        patient = db.session.execute(select(Patient).where(Patient.public_id == patient_public_id)).scalar_one()
        start = (utcnow() + starts_in).replace(second=0, microsecond=0)
        start = start.replace(minute=(start.minute // 15) * 15)
        end = start + timedelta(minutes=minutes or 30)
        provider = cached["patel"] if vt != "video" else cached["ruiz"]
        appt = Appointment(patient_id=patient.id, provider_id=provider, location_id=cached["location"],
                           visit_type_id=cached[vt], starts_at=start, ends_at=end, status=status, source="staff",
                           video_room="e2e-room-" + patient_public_id[:8] if vt == "video" else None)
        db.session.add(appt)
        db.session.flush()
        if status in rules.ACTIVE:
            for cell in rules.cells(start, end - start):
                db.session.add(SlotClaim(provider_id=provider, starts_at=cell, appointment_id=appt.id))
        db.session.commit()
        assert ids
        return appt.public_id

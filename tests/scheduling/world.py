"""Real scheduling objects of a victim patient, for the security suite's horizontal probes
(tests/security/test_access_control.py asks for one id per endpoint that takes a public_id)."""

from __future__ import annotations

from datetime import timedelta

from portal.core.db import utcnow
from portal.extensions import db


def _objects(victim) -> dict:
    cached = getattr(victim, "_sched_objects", None)
    if cached is not None:
        return cached
    from portal.scheduling.models import (AppointmentRequest, CheckIn, InsuranceCard, WaitlistEntry,
                                          WaitlistOffer)
    from tests.scheduling.helpers import book_direct, make_clinic, shift

    patient = victim._patient
    clinic = make_clinic()
    from tests.factories import create_user

    staff = create_user("support")
    from flask import current_app

    with current_app.test_request_context():
        appointment = book_direct(patient, clinic, actor=staff, notify_patient=False)
    shift(appointment, starts_at=(utcnow() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0))
    checkin = CheckIn(patient_id=patient.id, appointment_id=appointment.id, questionnaire_key="general")
    db.session.add(checkin)
    db.session.flush()
    card = InsuranceCard(patient_id=patient.id, checkin_id=checkin.id, side="front", stored_name="0" * 40 + ".png",
                         content_type="image/png", size=1, sha256="0" * 64)
    request = AppointmentRequest(patient_id=patient.id, visit_type_id=clinic.procedure.id, status="open",
                                 reason="victim request")
    entry = WaitlistEntry(patient_id=patient.id, visit_type_id=clinic.consult.id, status="active")
    db.session.add_all([card, request, entry])
    db.session.flush()
    offer = WaitlistOffer(patient_id=patient.id, entry_id=entry.id, provider_id=clinic.patel.id,
                          location_id=clinic.location.id, visit_type_id=clinic.consult.id,
                          starts_at=appointment.starts_at + timedelta(hours=2),
                          ends_at=appointment.starts_at + timedelta(hours=2, minutes=30),
                          expires_at=utcnow() + timedelta(hours=1), status="open")
    db.session.add(offer)
    db.session.commit()
    victim._sched_objects = {"appointment": appointment.public_id, "card": card.public_id,
                             "request": request.public_id, "entry": entry.public_id, "offer": offer.public_id}
    return victim._sched_objects


BY_ENDPOINT = {
    "appointments.withdraw_request": "request", "appointments.waitlist_leave": "entry",
    "appointments.offer": "offer", "appointments.offer_accept": "offer", "appointments.offer_decline": "offer",
    "appointments.card": "card", "schedule.card": "card", "schedule.decline_request": "request",
}


def victim_object_id(victim, endpoint: str) -> str:
    return _objects(victim)[BY_ENDPOINT.get(endpoint, "appointment")]

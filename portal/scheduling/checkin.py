"""eCheck-in, from 7 days before a visit: contact details, insurance (with card photos), a review of
medicines and allergies, and the visit type's questionnaire (save and resume). Each step is saved
on its own; the check-in is complete when all four are done. Staff see the progress on the schedule.

Contact changes are recorded on the check-in for the front desk to confirm at arrival (the patient
record itself belongs to the patients domain). The medicines step is a confirmation or a description
of changes, linking to the record (the records domain's list can be embedded here once it exists).
"""

from __future__ import annotations

import json

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.core.access import owned_or_404
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.extensions import db
from portal.scheduling import rules, uploads
from portal.scheduling.events import SchedTag
from portal.scheduling.models import Appointment, CheckIn, InsuranceCard
from portal.scheduling.questionnaires import questionnaire_for

STEPS = ("contact", "insurance", "medications", "questionnaire")


def _open_appointment(actor, public_id: str) -> Appointment:
    appointment = owned_or_404(Appointment, public_id, actor)
    if appointment.status != rules.BOOKED or not rules.checkin_open(appointment.starts_at, utcnow()):
        raise DomainError(_("Online check-in opens 7 days before the appointment and closes when it starts."))
    return appointment


def _existing(appointment: Appointment) -> CheckIn | None:
    return db.session.execute(select(CheckIn).where(CheckIn.appointment_id == appointment.id)).scalars().first()


def _get_or_create(appointment: Appointment) -> CheckIn:
    found = _existing(appointment)
    if found is not None:
        return found
    checkin = CheckIn(patient_id=appointment.patient_id, appointment_id=appointment.id,
                      questionnaire_key=appointment.visit_type.questionnaire)
    try:
        with db.session.begin_nested():
            db.session.add(checkin)
            db.session.flush()
    except IntegrityError:  # the same patient's second tab got there first
        return _existing(appointment)
    return checkin


def page(actor, public_id: str) -> dict:
    """The check-in overview (no state change: the check-in row is made by the first saved step)."""
    appointment = owned_or_404(Appointment, public_id, actor)
    checkin = _existing(appointment)
    now = utcnow()
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=appointment.patient_id, category="checkin",
                 object_type="appointment", object_id=appointment.public_id)
    return {"appointment": appointment, "checkin": checkin, "patient": appointment.patient,
            "open": appointment.status == rules.BOOKED and rules.checkin_open(appointment.starts_at, now),
            "opens_at": rules.checkin_opens(appointment.starts_at),
            "questionnaire": questionnaire_for(checkin.questionnaire_key if checkin
                                               else appointment.visit_type.questionnaire)}


def _step_done(actor, checkin: CheckIn, step: str) -> None:
    if all(v is not None for v in (checkin.contact_done_at, checkin.insurance_done_at, checkin.meds_done_at,
                                   checkin.questionnaire_done_at)):
        checkin.completed_at = checkin.completed_at or utcnow()
    db.session.flush()
    record_event(SchedTag.CHECKIN_STEP, actor=actor, patient_id=checkin.patient_id, category="checkin",
                 object_type="checkin", object_id=checkin.public_id, detail={"step": step})


def save_contact(actor, public_id: str, *, phone: str, email: str | None, address_line: str | None,
                 city: str | None, state: str | None, postal_code: str | None) -> CheckIn:
    appointment = _open_appointment(actor, public_id)
    checkin = _get_or_create(appointment)
    patient = appointment.patient
    values = {"phone": phone, "email": email, "address_line": address_line, "city": city, "state": state,
              "postal_code": postal_code}
    values = {k: (v or "").strip() or None for k, v in values.items()}
    on_file = {k: getattr(patient, k, None) for k in values}
    for k, v in values.items():
        setattr(checkin, k, v)
    checkin.contact_changed = any((values[k] or "") != (on_file[k] or "") for k in values)
    checkin.contact_done_at = utcnow()
    _step_done(actor, checkin, "contact")
    return checkin


def save_insurance(actor, public_id: str, *, no_insurance: bool, payer: str | None, member_id: str | None,
                   group: str | None, front: bytes | None, back: bytes | None) -> CheckIn:
    appointment = _open_appointment(actor, public_id)
    if not no_insurance and not ((payer or "").strip() and (member_id or "").strip()):
        raise DomainError(_("Enter your insurer and member ID, or tick that you have no insurance."), field="payer")
    stored = []
    for side, data in (("front", front), ("back", back)):
        if data:
            stored.append((side, uploads.store(data, field=f"card_{side}")))
    checkin = _get_or_create(appointment)
    checkin.no_insurance = bool(no_insurance)
    checkin.insurance_payer = None if no_insurance else (payer or "").strip()[:120]
    checkin.insurance_member_id = None if no_insurance else (member_id or "").strip()[:64]
    checkin.insurance_group = None if no_insurance else ((group or "").strip()[:64] or None)
    has_front = any(c.side == "front" for c in checkin.cards)
    if not no_insurance and not has_front and not any(side == "front" for side, _x in stored):
        raise DomainError(_("Add a photo of the front of your card."), field="card_front")
    for side, (name, content_type, size, digest) in stored:
        db.session.add(InsuranceCard(patient_id=checkin.patient_id, checkin_id=checkin.id, side=side,
                                     stored_name=name, content_type=content_type, size=size, sha256=digest,
                                     uploaded_by_id=actor.id))
        record_event(SchedTag.CHECKIN_CARD_UPLOADED, actor=actor, patient_id=checkin.patient_id,
                     category="insurance", object_type="checkin", object_id=checkin.public_id,
                     detail={"side": side, "type": content_type, "bytes": size})
    checkin.insurance_done_at = utcnow()
    _step_done(actor, checkin, "insurance")
    db.session.expire(checkin, ["cards"])
    return checkin


def save_medications(actor, public_id: str, *, current: bool, changes: str | None) -> CheckIn:
    appointment = _open_appointment(actor, public_id)
    changes = (changes or "").strip()
    if not current and not changes:
        raise DomainError(_("Tell us what has changed in your medicines or allergies."), field="changes")
    checkin = _get_or_create(appointment)
    checkin.meds_current = bool(current)
    checkin.meds_changes = None if current else changes[:2000]
    checkin.meds_done_at = utcnow()
    _step_done(actor, checkin, "medications")
    return checkin


def save_questionnaire(actor, public_id: str, answers: dict, *, final: bool) -> CheckIn:
    """Save the answers; `final` marks the step done (the form has checked required answers)."""
    appointment = _open_appointment(actor, public_id)
    checkin = _get_or_create(appointment)
    definition = questionnaire_for(checkin.questionnaire_key)
    keys = {q.key for q in definition["questions"]}
    clean = {k: v for k, v in answers.items() if k in keys and v not in (None, "")}
    checkin.answers_json = json.dumps(clean, sort_keys=True)
    checkin.questionnaire_saved_at = utcnow()
    if final:
        checkin.questionnaire_done_at = utcnow()
    _step_done(actor, checkin, "questionnaire" if final else "questionnaire_draft")
    return checkin


def questionnaire_state(actor, public_id: str) -> dict:
    appointment = _open_appointment(actor, public_id)
    checkin = _existing(appointment)
    key = checkin.questionnaire_key if checkin else appointment.visit_type.questionnaire
    return {"appointment": appointment, "checkin": checkin, "questionnaire": questionnaire_for(key),
            "answers": checkin.answers if checkin else {}}


def step_state(actor, public_id: str) -> dict:
    """Appointment + check-in (for a step's form defaults); the check-in must be open."""
    appointment = _open_appointment(actor, public_id)
    return {"appointment": appointment, "checkin": _existing(appointment), "patient": appointment.patient}


def card_file(actor, public_id: str) -> tuple[InsuranceCard, object]:
    """An insurance card for download (patients their own, staff through the scope), audited."""
    card = owned_or_404(InsuranceCard, public_id, actor)
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=card.patient_id, category="insurance",
                 object_type="insurance_card", object_id=card.public_id)
    return card, uploads.path_of(card.stored_name)

"""Booking, holds, double booking, cancel and reschedule within policy, requests, established-only
types, notices with a parseable .ics and no PHI, and the staff marks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.core.audit import AuditEvent
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.scheduling import ics, rules, services, slots
from portal.scheduling.models import Appointment, AppointmentRequest, SlotClaim
from tests.scheduling.helpers import book_direct, make_clinic, shift


@pytest.fixture()
def clinic(db):
    return make_clinic()


def _claims(db, appointment):
    return db.session.execute(select(func.count()).select_from(SlotClaim)
                              .where(SlotClaim.appointment_id == appointment.id)).scalar_one()


def test_patient_books_an_open_slot_and_it_disappears(app, db, clinic, make_user):
    user = make_user("patient")
    option = clinic.slot()
    with app.test_request_context():
        appointment = services.book(user, user._patient, clinic.consult, option.token, reason="Cough for a week")
    assert appointment.status == "booked" and appointment.starts_at == option.start
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=30)
    assert _claims(db, appointment) == 2  # two 15-minute cells
    again = slots.search(clinic.consult, frm=option.start - timedelta(hours=1), to=option.start + timedelta(hours=1),
                         provider_ids=[clinic.patel.id], location_id=clinic.location.id)
    assert option.start not in [o.start for o in again]
    assert option.start + timedelta(minutes=30) in [o.start for o in again]


def test_second_booking_of_the_same_time_is_refused_with_next_free_times(app, db, clinic, make_user):
    first, second = make_user("patient"), make_user("patient")
    option = clinic.slot()
    with app.test_request_context():
        services.book(first, first._patient, clinic.consult, option.token)
        with pytest.raises(services.SlotTaken) as err:
            services.book(second, second._patient, clinic.consult, option.token)
    assert "just taken" in err.value.message and err.value.field == "slot"
    alternatives = err.value.alternatives
    assert alternatives and all(a.start > option.start for a in alternatives)
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "appointment.slot_taken")).scalar_one() == 1


def test_the_unique_claim_refuses_an_overlap_even_when_the_search_is_bypassed(app, db, clinic, make_user):
    """A 15-minute visit inside a booked 30-minute one: the claim's constraint alone refuses it."""
    first, second = make_user("patient"), make_user("patient")
    clinic.followup.booking = "any"
    option = clinic.slot()
    with app.test_request_context():
        services.book(first, first._patient, clinic.consult, option.token)
        inner = slots.SlotOption(option.start + timedelta(minutes=15), option.end, clinic.patel, clinic.location)
        original = slots.is_open
        slots.is_open = lambda *a, **k: True  # pretend a stale search said "free"
        try:
            with pytest.raises(services.SlotTaken):
                services.book(second, second._patient, clinic.followup, inner.token)
        finally:
            slots.is_open = original
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1


def test_double_submit_with_the_same_key_books_once(app, db, clinic, make_user):
    user = make_user("patient")
    option = clinic.slot()
    with app.test_request_context():
        a = services.book(user, user._patient, clinic.consult, option.token, booking_key="k" * 32)
        b = services.book(user, user._patient, clinic.consult, option.token, booking_key="k" * 32)
    assert a.id == b.id
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1


def test_a_hold_hides_the_time_from_others_until_it_expires(app, db, clinic, make_user):
    holder, other = make_user("patient"), make_user("patient")
    option = clinic.slot()
    with app.test_request_context():
        key = services.hold(holder, holder._patient, clinic.consult, option.token)
        with pytest.raises(services.SlotTaken):
            services.book(other, other._patient, clinic.consult, option.token)
        appointment = services.book(holder, holder._patient, clinic.consult, option.token, hold_key=key)
    assert appointment.patient_id == holder._patient.id and _claims(db, appointment) == 2
    assert db.session.execute(select(func.count()).select_from(SlotClaim)
                              .where(SlotClaim.hold_key.is_not(None))).scalar_one() == 0
    option2 = clinic.slot(index=1)
    with app.test_request_context():
        services.hold(holder, holder._patient, clinic.consult, option2.token)
        for claim in db.session.execute(select(SlotClaim).where(SlotClaim.hold_key.is_not(None))).scalars():
            claim.hold_expires_at = utcnow() - timedelta(seconds=1)
        db.session.flush()
        taken = services.book(other, other._patient, clinic.consult, option2.token)
    assert taken.patient_id == other._patient.id


def test_forged_or_unavailable_times_are_refused(app, db, clinic, make_user):
    user = make_user("patient")
    option = clinic.slot()
    with app.test_request_context():
        for token in ("garbage", option.token.replace(clinic.patel.public_id, clinic.ruiz.public_id),
                      slots.SlotOption(option.start + timedelta(minutes=7), option.end, clinic.patel,
                                       clinic.location).token,
                      slots.SlotOption(utcnow() + timedelta(minutes=10), option.end, clinic.patel,
                                       clinic.location).token):
            with pytest.raises(DomainError):
                services.book(user, user._patient, clinic.consult, token)
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 0


def test_established_only_and_request_only_types(app, db, clinic, make_user):
    user = make_user("patient")
    staff = make_user("support")
    with app.test_request_context():
        with pytest.raises(DomainError):
            services.book(user, user._patient, clinic.followup, clinic.slot(clinic.followup).token)
        with pytest.raises(DomainError):
            services.book(user, user._patient, clinic.procedure, clinic.slot(clinic.procedure).token)
        past = book_direct(user._patient, clinic, actor=staff)
        shift(past, starts_at=utcnow() - timedelta(days=30))
        assert services.is_established(user._patient)
        ok = services.book(user, user._patient, clinic.followup, clinic.slot(clinic.followup).token)
        assert ok.visit_type_id == clinic.followup.id
        req = services.create_request(user, clinic.procedure.public_id, provider_id="any", location_id=None,
                                      preferred=["mornings", "bogus"], note="Not Fridays", reason="Mole check")
    assert req.preferred_times == "mornings" and req.status == "open"
    with app.test_request_context():
        booked = services.staff_book(staff, user._patient.public_id, clinic.procedure.public_id,
                                     clinic.slot(clinic.procedure, staff=True).token, reason=None, booking_key=None,
                                     request_id=req.public_id)
    assert db.session.get(AppointmentRequest, req.id).status == "booked" and booked.source == "request"


def test_cancel_within_policy_frees_the_time_and_after_cutoff_refuses(app, db, clinic, make_user, mailbox):
    user = make_user("patient")
    staff = make_user("support")
    with app.test_request_context():
        appointment = book_direct(user._patient, clinic, actor=staff)
        db.session.commit()
    msgs = mailbox.wait_for(1)
    assert len(msgs) == 1
    with app.test_request_context():
        services.cancel(user, appointment)
    assert appointment.status == "cancelled" and _claims(db, appointment) == 0
    with app.test_request_context():
        late = book_direct(user._patient, clinic, actor=staff)
        shift(late, starts_at=utcnow() + timedelta(hours=3))
        with pytest.raises(DomainError) as err:
            services.cancel(user, late)
        assert "call the clinic" in err.value.message
        services.cancel(staff, late, staff=True, note="Patient phoned")
    assert late.status == "cancelled"


def test_reschedule_moves_claims_keeps_the_row_and_fails_cleanly(app, db, clinic, make_user):
    user, other = make_user("patient"), make_user("patient")
    staff = make_user("support")
    with app.test_request_context():
        appointment = book_direct(user._patient, clinic, actor=staff)
        first_start = appointment.starts_at
        target = clinic.slot(index=3)
        services.reschedule(user, appointment, target.token)
    assert appointment.starts_at == target.start and appointment.sequence == 1 and _claims(db, appointment) == 2
    with app.test_request_context():
        services.book(other, other._patient, clinic.consult,
                      slots.SlotOption(first_start, first_start + timedelta(minutes=30), clinic.patel,
                                       clinic.location).token)  # the old time is free again
        taken = clinic.slot(index=5)
        services.book(other, other._patient, clinic.consult, taken.token)
        with pytest.raises(services.SlotTaken):
            services.reschedule(user, appointment, taken.token)
    db.session.refresh(appointment)
    assert appointment.starts_at == target.start and _claims(db, appointment) == 2  # unchanged


def test_notice_is_sent_with_a_parseable_ics_and_no_phi(app, db, clinic, make_user, mailbox):
    patient_user = make_user("patient")
    staff = make_user("support")
    option = clinic.slot()
    with app.test_request_context():
        appointment = services.book(staff, patient_user._patient, clinic.consult, option.token,
                                    reason="Chest pain canary", staff=True)
        db.session.commit()
    msg = mailbox.wait_for_to(patient_user.email)
    assert msg is not None
    attachments = [p for p in msg.iter_attachments() if p.get_filename() == "appointment.ics"]
    assert len(attachments) == 1 and attachments[0].get_content_type() == "text/calendar"
    data = attachments[0].get_payload(decode=True)
    events = ics.parse(data)
    assert len(events) == 1 and events[0]["start"] == appointment.starts_at
    assert events[0]["end"] == appointment.ends_at and events[0]["uid"].startswith(appointment.public_id)
    everything = msg.as_string() + data.decode()
    for secret in ("Chest pain canary", "Cardiology", "Consultation", patient_user._patient.family_name,
                   patient_user._patient.mrn):
        assert secret not in everything, secret


def test_staff_marks_follow_the_status_rules(app, db, clinic, make_user):
    user = make_user("patient")
    staff = make_user("clinician")
    with app.test_request_context():
        appointment = book_direct(user._patient, clinic, actor=staff)
        with pytest.raises(DomainError):
            services.mark_status(staff, appointment.public_id, "no_show")  # not started yet
        shift(appointment, starts_at=utcnow() - timedelta(minutes=10))
        services.mark_status(staff, appointment.public_id, "arrived")
        with pytest.raises(DomainError):
            services.mark_status(staff, appointment.public_id, "no_show")
        services.mark_status(staff, appointment.public_id, "completed")
    assert appointment.status == "completed" and appointment.arrived_at is not None


def test_confirm_attendance_is_idempotent(app, db, clinic, make_user):
    user = make_user("patient")
    with app.test_request_context():
        appointment = book_direct(user._patient, clinic, actor=make_user("support"))
        assert services.confirm_attendance(user, appointment) is True
        assert services.confirm_attendance(user, appointment) is False
    assert appointment.confirmed_at is not None


def test_dst_day_slots_are_bookable_at_their_wall_time(app, db, clinic, make_user):
    """Availability on a DST change day is still 08:00 local (the UTC instant moves)."""
    from datetime import date, time

    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Chicago")
    today = utcnow().astimezone(tz).date()
    # the next spring-forward Sunday after today, if within the booking horizon, else a plain check
    for year in (today.year, today.year + 1):
        change = date(year, 3, 8 + (6 - date(year, 3, 8).weekday()) % 7)
        if change > today:
            break
    frm, to = rules.local_day_bounds(change, tz)
    found = slots.search(clinic.consult, frm=frm, to=to, provider_ids=[clinic.patel.id],
                         location_id=clinic.location.id, staff=True)
    if change - today <= timedelta(days=365):
        assert found and found[0].start.astimezone(tz).time() == time(8, 0)
        assert found[0].start == rules.wall_to_utc(change, time(8, 0), tz)

"""Reminders from database state (eager Celery here; a real worker in test_reminders_worker.py), the
signed one-click links (forgery, reuse, after cancel, expiry) and the two-way text handler."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from portal.core.db import utcnow
from portal.scheduling import links, reminders, services
from portal.scheduling.inbound import handle_text
from portal.scheduling.models import LinkUse, Reminder
from portal.scheduling.tasks import send_reminders
from tests.helpers import form_token
from tests.scheduling.helpers import book_direct, make_clinic, shift


@pytest.fixture()
def clinic(db):
    return make_clinic()


def _soon(hours):
    return (utcnow() + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


def _reminder_mails(mailbox, email):
    mailbox.wait_for_to(email, timeout=10)  # delivery runs on a background thread after commit
    return [m for m in mailbox.settle(0.5) if m["To"] == email]


def test_the_beat_task_sends_once_and_never_twice(app, db, clinic, make_user, mailbox):
    user = make_user("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        shift(appt, starts_at=_soon(23))
        appt.created_at = utcnow() - timedelta(days=5)
        db.session.commit()
    first = send_reminders.apply().get()
    second = send_reminders.apply().get()
    assert first["sent"] == 1 and second["sent"] == 0
    rows = db.session.execute(select(Reminder.offset_minutes, Reminder.status)
                              .where(Reminder.appointment_id == appt.id)).all()
    assert sorted(rows) == [(1440, "sent"), (4320, "skipped")]  # caught up: one reminder, not two
    msgs = _reminder_mails(mailbox, user.email)
    assert len(msgs) == 1
    body = msgs[0].get_body(preferencelist=("plain",)).get_content()
    assert "/appointments/r/" in body and user._patient.family_name not in body and "Consultation" not in body


def test_each_offset_is_sent_at_its_moment_and_a_moved_visit_is_reminded_again(app, db, clinic, make_user, mailbox):
    user = make_user("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        shift(appt, starts_at=_soon(80))
        appt.created_at = utcnow() - timedelta(days=5)
        db.session.commit()
    start = appt.starts_at
    with time_machine.travel(start - timedelta(hours=71), tick=False):
        assert send_reminders.apply().get()["sent"] == 1
    with time_machine.travel(start - timedelta(hours=30), tick=False):
        assert send_reminders.apply().get()["sent"] == 0
    with time_machine.travel(start - timedelta(hours=23), tick=False):
        assert send_reminders.apply().get()["sent"] == 1
        assert send_reminders.apply().get()["sent"] == 0
    assert db.session.execute(select(func.count()).select_from(Reminder)).scalar_one() == 2


def test_cancelled_appointments_get_no_reminder(app, db, clinic, make_user):
    user = make_user("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        shift(appt, starts_at=_soon(30))
        appt.created_at = utcnow() - timedelta(days=5)
        services.cancel(user, appt, staff=True)
        db.session.commit()
    assert send_reminders.apply().get()["sent"] == 0


def _respond(client, token):
    r = client.get(f"/appointments/r/{token}")
    assert r.status_code == 302 and r.headers["Location"].endswith("/appointments/respond")
    return client.get("/appointments/respond")


def test_signed_links_confirm_once_and_reveal_nothing(app, db, clinic, make_user):
    user = make_user("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False,
                           reason="Secret reason canary")
        token = links.make(appt, "confirm")
        db.session.commit()
    client = app.test_client()
    page = _respond(client, token)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Yes, I will be there" in html
    for secret in ("Secret reason canary", "Consultation", "Patel", user._patient.family_name, token):
        assert secret not in html
    r = client.post("/appointments/respond", data={"csrf_token": form_token(html), "action": "confirm"})
    assert r.status_code == 200 and "your appointment is confirmed" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(appt), appt.id).confirmed_at is not None
    again = _respond(app.test_client(), token)  # the same link, another browser
    assert "already been used" in again.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(LinkUse)).scalar_one() == 1


def test_forged_expired_and_after_cancel_links_do_nothing(app, db, clinic, make_user):
    user = make_user("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        cancel_token = links.make(appt, "cancel")
        confirm_token = links.make(appt, "confirm")
        db.session.commit()
    forged = cancel_token[:-3] + ("AAA" if not cancel_token.endswith("AAA") else "BBB")
    with app.test_request_context():
        assert links.read(forged) is None and links.read("x.y.z") is None
        assert links.read(cancel_token)["x"] == "cancel"
    client = app.test_client()
    html = _respond(client, forged).get_data(as_text=True)
    assert "has expired or has already been used" in html and "csrf_token" not in html  # nothing to act on
    # a valid CSRF token of this browser (the sign-in form's) still cannot act without a valid link
    r = client.post("/appointments/respond",
                    data={"csrf_token": form_token(client.get("/signin").get_data(as_text=True)), "action": "cancel"})
    assert r.status_code == 409
    html = _respond(client, cancel_token).get_data(as_text=True)
    r = client.post("/appointments/respond", data={"csrf_token": form_token(html), "action": "confirm"})
    assert r.status_code == 409  # a cancel link cannot confirm
    r = client.post("/appointments/respond", data={"csrf_token": form_token(html), "action": "cancel"})
    assert r.status_code == 200 and "is cancelled" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(appt), appt.id).status == "cancelled"
    html = _respond(app.test_client(), confirm_token).get_data(as_text=True)
    assert "has expired or has already been used" in html  # not after cancel
    with app.test_request_context():
        later = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        token = links.make(later, "confirm")
        db.session.commit()
    with time_machine.travel(utcnow() + timedelta(days=15), tick=False):
        with app.test_request_context():
            assert links.read(token) is None  # expired


@dataclass
class Ctx:
    patient: object
    user: object
    phone: str
    text: str
    keyword: str
    received_at: datetime


def test_text_c_confirms_the_next_unconfirmed_and_r_sends_a_link(app, db, clinic, make_user):
    user = make_user("patient")
    with app.test_request_context():
        first = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        second = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False,
                             slot=clinic.slot(days_ahead=9, staff=True))
        ctx = Ctx(user._patient, user, "+15550100", " c ", "C", utcnow())
        assert "confirmed" in handle_text(ctx)
        assert first.confirmed_at is not None and second.confirmed_at is None
        assert "confirmed" in handle_text(ctx) and second.confirmed_at is not None
        assert "already confirmed" in handle_text(ctx)
        reply = handle_text(Ctx(user._patient, user, "+15550100", "R", "R", utcnow()))
        assert re.search(r"/appointments/book\?reschedule=" + first.public_id, reply)
        assert handle_text(Ctx(user._patient, user, "+15550100", "STOP", "STOP", utcnow())) is None
        user.preferred_language = "es"
        assert "cita" in handle_text(Ctx(user._patient, user, "+1", "R", "R", utcnow()))


def test_a_c_reply_through_the_notifications_inbound_pipeline_confirms(app, db, clinic, make_user):
    """The handler is registered with notifications: a patient's "C" text (as the webhook would hand it
    over) confirms their next appointment and the reply says so; "R" answers with a reschedule link."""
    from portal.core.db import utcnow as now
    from portal.notifications import inbound
    from portal.notifications.models import NotificationSettings
    from portal.notifications.services import receive_text

    assert "scheduling.reply" in [h.name for h in inbound.handlers()]
    user = make_user("patient")
    t = now()
    db.session.add(NotificationSettings(patient_id=user._patient.id, choices={}, phone_e164="+15555550142",
                                        phone_verified_at=t, sms_consent_at=t, updated_at=t))
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=make_user("support"), notify_patient=False)
        reply = receive_text(message_sid="SMtestC1", from_phone="+15555550142", to_phone=None, body=" c ")
        assert "confirmed" in reply and appt.confirmed_at is not None
        reply = receive_text(message_sid="SMtestR1", from_phone="+15555550142", to_phone=None, body="R")
        assert "/appointments/book?reschedule=" + appt.public_id in reply

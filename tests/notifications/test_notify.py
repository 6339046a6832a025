"""notify(): a row per channel in the caller's transaction, sent after commit (eager mode: when the
request ends), claimed once, retried with back-off, quiet hours, consent, fallback to email."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import event, select

from portal.core.db import utcnow
from portal.notifications import tasks
from portal.notifications.kinds import NoticeKind
from portal.notifications.models import Notice, NotificationSettings
from tests.notifications.conftest import MORNING, NIGHT, PHONE, notices_of, notify_now

LINK = "http://127.0.0.1:5000/record"


def test_email_is_sent_after_commit_and_nothing_on_rollback(app, db, mailbox, make_user):
    from portal.notifications.services import notify

    user = make_user("patient")
    db.session.commit()
    with app.test_request_context():
        assert notify(user._patient, NoticeKind.MESSAGE_REPLY, link=LINK) is True
        db.session.rollback()
    assert notices_of(db, user._patient) == []
    assert mailbox.settle(0.2) == []

    assert notify_now(app, db, user._patient, NoticeKind.MESSAGE_REPLY, link=LINK) is True
    [msg] = mailbox.wait_for(1)
    assert msg["To"] == user.email and msg["Subject"] == "You have a new message"
    assert LINK in msg.get_content()
    [notice] = notices_of(db, user._patient)
    assert (notice.channel, notice.status, notice.attempts, notice.to_address) == ("email", "sent", 1, user.email)
    assert notice.provider_id == msg["Message-ID"] and notice.sent_at is not None


def test_a_user_recipient_and_a_staff_account(app, db, mailbox, make_user):
    patient_user, staff = make_user("patient"), make_user("support")
    assert notify_now(app, db, patient_user, NoticeKind.NEW_RESULT, link=LINK) is True
    assert notify_now(app, db, staff, NoticeKind.SECURITY, link=LINK) is True
    msgs = mailbox.wait_for(2)
    assert sorted(m["To"] for m in msgs) == sorted([patient_user.email, staff.email])
    rows = db.session.execute(select(Notice).where(Notice.user_id.in_([patient_user.id, staff.id]))).scalars().all()
    assert {(r.user_id, r.patient_id) for r in rows} == {(patient_user.id, patient_user._patient.id), (staff.id, None)}


def test_nothing_without_an_account_or_when_turned_off(app, db, mailbox, make_patient, make_user):
    lone = make_patient()
    assert notify_now(app, db, lone, NoticeKind.NEW_RESULT, link=LINK) is False
    user = make_user("patient")
    db.session.add(NotificationSettings(patient_id=user._patient.id, choices={"statement_ready": "off"}))
    db.session.flush()
    assert notify_now(app, db, user._patient, NoticeKind.STATEMENT_READY, link=LINK) is False
    disabled = make_user("patient", disabled_at=utcnow())
    assert notify_now(app, db, disabled._patient, NoticeKind.NEW_RESULT, link=LINK) is False
    assert notices_of(db) == [] and mailbox.settle(0.2) == []


def test_both_channels_and_security_always_by_email(app, db, mailbox, sms_outbox, texting_patient, daytime):
    user = texting_patient({"new_result": "both", "security": "sms"})
    assert notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link=LINK) is True
    assert mailbox.wait_for_to(user.email) is not None
    [text] = sms_outbox.to(PHONE)
    assert LINK in text and text.startswith("Riverside Family Clinic:")
    mailbox.clear()
    assert notify_now(app, db, user._patient, NoticeKind.SECURITY, link=LINK) is True
    assert mailbox.wait_for_to(user.email) is not None
    assert len(sms_outbox.to(PHONE)) == 1  # the security notice was not texted
    rows = notices_of(db, user._patient)
    assert [(r.kind, r.channel, r.status) for r in rows] == [
        ("new_result", "email", "sent"), ("new_result", "sms", "sent"), ("security", "email", "sent")]
    assert rows[1].provider_id.startswith("file:")


def test_text_without_consent_or_confirmed_number_falls_back_to_email(app, db, mailbox, sms_outbox, make_user,
                                                                       daytime):
    user = make_user("patient")
    db.session.add(NotificationSettings(patient_id=user._patient.id, choices={"appointment_reminder": "sms"},
                                        phone_e164=PHONE, phone_verified_at=utcnow(), sms_consent_at=None))
    db.session.flush()
    assert notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_REMINDER, link=LINK) is True
    assert mailbox.wait_for_to(user.email) is not None
    assert sms_outbox.texts() == []
    assert [r.channel for r in notices_of(db, user._patient)] == ["email"]


def test_quiet_hours_hold_texts_until_morning_then_send_once(app, db, mailbox, sms_outbox, texting_patient):
    with time_machine.travel(NIGHT, tick=False):
        user = texting_patient({"appointment_change": "both"})
        notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_CHANGE, link=LINK)
        email, text = notices_of(db, user._patient)
        assert email.status == "sent" and mailbox.wait_for_to(user.email) is not None  # email is not held
        assert text.status == "held" and text.next_attempt_at == MORNING  # 08:00 in Chicago
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 0
    with time_machine.travel(MORNING - timedelta(minutes=1), tick=False), app.test_request_context():
        assert tasks.sweep_once()["due"] == 0
    assert sms_outbox.texts() == []
    with time_machine.travel(MORNING + timedelta(seconds=5), tick=False), app.test_request_context():
        assert tasks.sweep_once()["due"] == 1
        assert tasks.sweep_once()["due"] == 0
    assert len(sms_outbox.to(PHONE)) == 1
    assert notices_of(db, user._patient)[1].status == "sent"


def test_a_held_text_is_cancelled_when_texts_were_turned_off_overnight(app, db, sms_outbox, texting_patient,
                                                                        mailbox):
    from portal.notifications import services

    with time_machine.travel(NIGHT, tick=False):
        user = texting_patient({"appointment_reminder": "sms"})
        notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_REMINDER, link=LINK)
        with app.test_request_context():
            services.remove_phone(user)
            db.session.commit()
    with time_machine.travel(MORNING + timedelta(minutes=1), tick=False), app.test_request_context():
        tasks.sweep_once()
    [text] = notices_of(db, user._patient)
    assert text.status == "cancelled" and sms_outbox.texts() == []


def test_smtp_refusing_then_accepting_is_delivered_exactly_once(app, db, flaky_smtp, make_user):
    """Eager mode: the first two attempts meet '451 try again later'; each failure puts the row back
    with back-off (30 s, then 60 s); the sweep re-drives it when due; the third attempt is accepted."""
    box = flaky_smtp(refuse=2)
    user = make_user("patient")
    start = datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as clock:
        notify_now(app, db, user._patient, NoticeKind.STATEMENT_READY, link=LINK)
        [row] = notices_of(db, user._patient)
        assert (row.status, row.attempts, row.last_error) == ("queued", 1, "SMTP 451")
        assert row.next_attempt_at == start + timedelta(seconds=30)
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 0  # not yet
        clock.shift(31)
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 1
        [row] = notices_of(db, user._patient)
        assert (row.status, row.attempts) == ("queued", 2)
        assert row.next_attempt_at == start + timedelta(seconds=31 + 60)
        clock.shift(61)
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 1
        clock.shift(3600)
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 0
            tasks.deliver(row.id)  # a late duplicate of the task changes nothing
    assert box.refused == 2
    assert [m["To"] for m in box.settle(0.2)] == [user.email]
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_gives_up_after_the_last_attempt_and_a_permanent_refusal_at_once(app, db, flaky_smtp, make_user):
    box = flaky_smtp(refuse=100)
    user = make_user("patient")
    app.config["NOTICE_MAX_ATTEMPTS"] = 3
    try:
        with time_machine.travel(datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc), tick=False) as clock:
            notify_now(app, db, user._patient, NoticeKind.PAYMENT_RECEIPT, link=LINK)
            for _ in range(4):
                clock.shift(3600)
                with app.test_request_context():
                    tasks.sweep_once()
    finally:
        app.config["NOTICE_MAX_ATTEMPTS"] = 8
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts) == ("failed", 3) and row.failed_at is not None
    assert box.refused == 3 and box.messages == []


def test_a_permanent_refusal_fails_at_once(app, db, make_user, monkeypatch):
    import smtplib

    def refuse(msg):
        raise smtplib.SMTPRecipientsRefused({"x@test.example": (550, b"5.1.1 no such user")})

    # The real SMTP server cannot be told to refuse a recipient permanently; the exception smtplib
    # raises for a 550 at RCPT is what the channel must classify.
    monkeypatch.setattr("portal.core.mail.deliver", refuse)
    user = make_user("patient")
    notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link=LINK)
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "SMTP recipient refused 550")


def test_a_notice_is_claimed_once(app, db, mailbox, make_user):
    from portal.notifications.services import notify

    user = make_user("patient")
    with app.app_context():  # no request: eager delivery waits for the end of this app context
        notify(user._patient, NoticeKind.NEW_RESULT, link=LINK)
        db.session.commit()
    # (the test's own app context stays open, so the delivery has not run: do it twice by hand)
    [row] = notices_of(db, user._patient)
    with app.test_request_context():
        first, second = tasks.deliver(row.id), tasks.deliver(row.id)
    assert first is None and second is None
    assert len(mailbox.wait_for(1)) == 1 and len(mailbox.settle(0.2)) == 1
    assert notices_of(db, user._patient)[0].attempts == 1


def test_attachments_go_with_the_email_and_context_is_whitelisted(app, db, mailbox, sms_outbox, texting_patient,
                                                                   daytime):
    user = texting_patient({"appointment_confirmation": "both"})
    starts = datetime(2026, 12, 9, 15, 30, tzinfo=timezone.utc)  # 09:30 in Chicago
    ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
    notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_CONFIRMATION, link=LINK,
               attachments=[("appointment.ics", "text/calendar", ics)],
               context={"starts_at": starts, "provider_specialty": "Cardiology"})
    msg = mailbox.wait_for_to(user.email)
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "appointment.ics" and attachment.get_content_type() == "text/calendar"
    assert attachment.get_payload(decode=True) == ics
    assert "Wednesday 9 December 2026, 9:30 AM" in msg.get_body(("plain",)).get_content()
    [text] = sms_outbox.to(PHONE)
    assert "Wed 9 Dec, 9:30 AM" in text
    assert "Cardiology" not in msg.get_body(("plain",)).get_content() + text
    email_row, sms_row = notices_of(db, user._patient)
    assert email_row.context == {"starts_at": starts.isoformat()} == sms_row.context


def test_notify_costs_a_fixed_number_of_statements(app, db, texting_patient, make_user, daytime):
    from portal.notifications.services import notify

    texting = texting_patient({"message_reply": "both"})
    plain = make_user("patient")
    counts = []
    engine = db.session.get_bind().engine

    def count(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            counts[-1].append(statement.split(" FROM ")[-1][:40] if statement.startswith("SELECT") else statement[:30])

    event.listen(engine, "before_cursor_execute", count)
    try:
        with app.test_request_context():
            for who in (plain, texting):
                counts.append([])
                notify(who._patient, NoticeKind.MESSAGE_REPLY, link=LINK)
            db.session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # reads: account, settings, opt-out check (texting only); then the inserts, one per channel (one
    # batched statement on PostgreSQL)
    reads = [[s for s in c if not s.startswith("INSERT")] for c in counts]
    writes = [len(c) - len(r) for c, r in zip(counts, reads)]
    assert [len(r) for r in reads] == [2, 3] and writes[0] == 1 and writes[1] in (1, 2), counts


def test_sweep_grace_leaves_fresh_retries_to_the_worker(app, db, make_user):
    from portal.notifications import services

    user = make_user("patient")
    now = utcnow()
    for delay in (0, 90, 300):
        db.session.add(Notice(patient_id=user._patient.id, user_id=user.id, kind="new_result", channel="email",
                              to_address=user.email, link=LINK, context={}, status="queued", attempts=1,
                              next_attempt_at=now - timedelta(seconds=delay)))
    db.session.flush()
    ids = [n.id for n in notices_of(db, user._patient)]
    assert services.due_notice_ids(now, eager=False) == ids[2:]  # only overdue by more than 2 minutes
    assert services.due_notice_ids(now, eager=True) == ids


def test_stale_claims_end_as_failed_not_sent_twice(app, db, make_user):
    from portal.notifications import services

    user = make_user("patient")
    now = utcnow()
    db.session.add(Notice(patient_id=user._patient.id, user_id=user.id, kind="new_result", channel="email",
                          to_address=user.email, link=LINK, context={}, status="sending", attempts=1,
                          claimed_at=now - timedelta(minutes=20), next_attempt_at=now))
    db.session.flush()
    assert services.fail_stale(now) == 1
    [row] = notices_of(db, user._patient)
    assert row.status == "failed" and "unknown" in row.last_error


@pytest.mark.parametrize("bad", ["", None, "x" * 1001])
def test_a_bad_link_is_a_programming_error(app, db, make_user, bad):
    from portal.notifications.services import notify

    user = make_user("patient")
    with app.test_request_context(), pytest.raises(ValueError):
        notify(user._patient, NoticeKind.NEW_RESULT, link=bad)


def test_an_unconfirmed_address_gets_security_notices_only(app, db, mailbox, make_user):
    """A mistyped, unconfirmed address must not learn that someone is a patient here."""
    user = make_user("patient", verified=False)
    assert notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link=LINK) is False
    assert notices_of(db, user._patient) == []
    assert notify_now(app, db, user, NoticeKind.SECURITY, link=LINK) is True
    [msg] = mailbox.wait_for(1)
    assert msg["To"] == user.email and "Security" in msg["Subject"]

"""/sms/inbound (Twilio's webhook): signature checked with the library's RequestValidator, replays
harmless, STOP/START/HELP, the handler registry, unrecognised texts to the support queue, and what staff
see (the queue, the section of the support patient page)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.core.audit import AuditEvent
from portal.notifications import inbound
from portal.notifications.kinds import NoticeKind
from portal.notifications.models import InboundText, Notice, NotificationSettings, SmsOptOut
from tests.helpers import post_form
from tests.notifications.conftest import PHONE, inbound_params, notices_of, notify_now, post_inbound, sign, \
    twiml_message
from tests.security.helpers import row_counts, table_names

STRANGER = "+13125550177"


@pytest.fixture()
def handlers():
    """Register handlers for one test only, alone (the domains' own handlers, such as scheduling's
    "C/R", are set aside and put back afterwards)."""
    saved = dict(inbound._handlers)
    inbound._handlers.clear()

    def add(name, handler, order=100):
        inbound.register(name, handler, order)

    yield add
    inbound._handlers.clear()
    inbound._handlers.update(saved)


def _rows(db):
    db.session.expire_all()
    return db.session.execute(select(InboundText).order_by(InboundText.id)).scalars().all()


def test_unsigned_or_wrongly_signed_requests_get_403_and_change_nothing(app, db, client, texting_patient):
    texting_patient()
    db.session.commit()
    tables = table_names(db)
    before = row_counts(db, tables)
    params = inbound_params("STOP")
    good = sign(app, "/sms/inbound", params)
    tampered = dict(params, Body="START")
    for data, headers in [
        (params, {}),  # no signature
        (params, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}),  # wrong
        (tampered, {"X-Twilio-Signature": good}),  # signed for another body
        (params, {"X-Twilio-Signature": sign(app, "/sms/inbound?x=1", params)}),  # signed for another URL
    ]:
        r = client.post("/sms/inbound", data=data, headers=headers)
        assert r.status_code == 403
    saved = app.config["TWILIO_AUTH_TOKEN"]
    app.config["TWILIO_AUTH_TOKEN"] = None  # not configured: nothing is accepted
    try:
        assert client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": good}).status_code == 403
    finally:
        app.config["TWILIO_AUTH_TOKEN"] = saved
    assert row_counts(db, tables) == before


def test_help_and_replays_are_answered_once(app, db, client, texting_patient):
    texting_patient()
    r = post_inbound(client, app, "help", sid="SM" + "a" * 32)
    assert r.status_code == 200 and r.mimetype == "text/xml"
    reply = twiml_message(r)
    assert reply == ("Riverside Family Clinic: for help call (555) 010-2000. Msg & data rates may apply. "
                     "Reply STOP to opt out.")
    again = post_inbound(client, app, "help", sid="SM" + "a" * 32)  # Twilio retried the same webhook
    assert again.status_code == 200 and twiml_message(again) == reply
    [row] = _rows(db)
    assert (row.status, row.handled_by, row.from_phone) == ("handled", "help", PHONE)


def test_stop_then_a_reminder_sends_no_text_and_start_turns_texts_back_on(app, db, client, texting_patient, mailbox,
                                                                          sms_outbox, login_as, daytime):
    user = texting_patient({"appointment_reminder": "sms"})
    r = post_inbound(client, app, "Stop", sid="SM" + "b" * 32)
    assert twiml_message(r) == ("Riverside Family Clinic: you will get no more texts from us. Reply START to get "
                                "them again.")
    post_inbound(client, app, "Stop", sid="SM" + "b" * 32)  # replayed: one opt-out, one audit row
    assert db.session.execute(select(func.count()).select_from(SmsOptOut)).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "notifications.sms.opted_out")).scalar_one() == 1
    notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_REMINDER, link="http://127.0.0.1:5000/appointments")
    assert sms_outbox.texts() == []  # nothing texted after STOP
    assert [n.channel for n in notices_of(db, user._patient)] == ["email"]  # told by email instead
    assert mailbox.wait_for_to(user.email)["Subject"] == "Reminder: your appointment is coming up"
    patient_client, _ = login_as(user)
    assert "You replied STOP, so we do not text you" in patient_client.get("/account/notifications").get_data(
        as_text=True)
    # choices can still be changed, texts included: they go by email until START
    choices = {k.value: "email" for k in NoticeKind if k != NoticeKind.SECURITY}
    r = post_form(patient_client, "/account/notifications", {**choices, "appointment_reminder": "sms",
                                                             "payment_receipt": "off"})
    assert r.status_code == 302
    r = post_form(patient_client, "/account/notifications", {**choices, "appointment_reminder": "sms",
                                                             "new_result": "both"})
    assert r.status_code == 302
    r = post_inbound(client, app, "START")
    assert twiml_message(r).startswith("Riverside Family Clinic: texts are back on.")
    assert db.session.execute(select(func.count()).select_from(SmsOptOut)).scalar_one() == 0
    notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_REMINDER, link="http://127.0.0.1:5000/appointments")
    assert len(sms_outbox.to(PHONE)) == 1


def test_spanish_and_french_keywords(app, db, client):
    assert twiml_message(post_inbound(client, app, "BAJA", sender=STRANGER)).startswith(
        "Riverside Family Clinic: ya no le enviaremos textos. Responda ALTA")
    assert twiml_message(post_inbound(client, app, "alta", sender=STRANGER)).startswith(
        "Riverside Family Clinic: los textos vuelven a estar activos.")
    assert twiml_message(post_inbound(client, app, "ARRET", sender=STRANGER)).startswith(
        "Riverside Family Clinic: you will get no more texts")
    assert twiml_message(post_inbound(client, app, "ayuda", sender=STRANGER)).startswith(
        "Riverside Family Clinic: para ayuda llame al (555) 010-2000.")


def test_an_unknown_number_gets_the_same_answers_as_a_patient(app, db, client, texting_patient):
    texting_patient(language="es")
    for text in ("Hello, when do you open?", "help", "stop", "start"):
        known = twiml_message(post_inbound(client, app, text, sender=PHONE))
        unknown = twiml_message(post_inbound(client, app, text, sender=STRANGER))
        assert known == unknown and known, text
    rows = _rows(db)
    assert [r.patient_id is not None for r in rows[:2]] == [True, False]
    assert "got your text" in rows[0].reply and "Recibimos su texto" in rows[0].reply


def test_handlers_run_in_order_after_the_keywords(app, db, client, texting_patient, handlers):
    user = texting_patient(language="es")
    seen = []

    def broken(ctx):
        db.session.add(SmsOptOut(phone_e164="+13125550999", keyword="X"))  # undone: the handler raised
        db.session.flush()
        raise RuntimeError("bug in a handler")

    def not_mine(ctx):
        seen.append(("not_mine", ctx.keyword))
        return None

    def confirm(ctx):
        seen.append(("confirm", ctx.keyword))
        if ctx.keyword != "C":
            return None
        assert ctx.patient.id == user._patient.id and ctx.user.id == user.id and ctx.phone == PHONE
        assert ctx.text == " c " and ctx.received_at.tzinfo is not None and ctx.language == "es"
        with inbound.language(ctx):
            from flask_babel import gettext

            return gettext("Confirm my number")  # any catalogued string: the reply is in Spanish

    handlers("test.confirm", confirm, order=50)
    handlers("test.broken", broken, order=10)
    handlers("test.not_mine", not_mine, order=20)
    assert twiml_message(post_inbound(client, app, " c ")) == "Confirmar mi número"
    assert seen == [("not_mine", "C"), ("confirm", "C")]
    assert db.session.execute(select(SmsOptOut).where(SmsOptOut.phone_e164 == "+13125550999")).first() is None
    # keywords come first; "yes" from a number that never opted out is an answer for the handlers
    seen.clear()
    post_inbound(client, app, "STOP")
    post_inbound(client, app, "START")
    post_inbound(client, app, "yes")
    assert seen == [("not_mine", "YES"), ("confirm", "YES")]
    # handlers never run for a number that is not a patient's
    seen.clear()
    post_inbound(client, app, "C", sender=STRANGER)
    assert seen == []
    rows = _rows(db)
    assert [(r.handled_by, r.status) for r in rows] == [
        ("test.confirm", "handled"), ("stop", "handled"), ("start", "handled"), ("messaging", "handled"),
        (None, "unhandled")]


def test_unrecognised_texts_go_through_route_unrecognised(app, db, client, texting_patient, monkeypatch):
    from portal.notifications import services

    texting_patient()
    routed = []
    original = services.route_unrecognised
    monkeypatch.setattr(services, "route_unrecognised", lambda row: (routed.append(row.body), original(row)))
    post_inbound(client, app, "Can I bring my daughter?\x00")
    post_inbound(client, app, "HELP")
    assert routed == ["Can I bring my daughter?"]
    row = _rows(db)[0]
    assert (row.status, row.routed_to, row.body) == ("handled", "messaging", "Can I bring my daughter?")
    # a patient's text opens a thread in the shared inbox (messaging's open_thread), once per MessageSid
    from portal.messaging.models import Thread

    thread = db.session.execute(select(Thread)).scalars().one()
    assert (thread.patient_id, thread.channel, thread.topic, thread.last_preview) == (
        row.patient_id, "sms", "other", "Can I bring my daughter?")
    # a text from a number that is no patient's stays in the support queue
    post_inbound(client, app, "Who is this?", sender=STRANGER)
    assert (_rows(db)[-1].status, _rows(db)[-1].routed_to) == ("unhandled", "support_queue")


def test_support_works_the_queue(app, db, client, texting_patient, login_as, monkeypatch):
    from portal.notifications import services

    def queue_only(row):  # a patient's text queued before the shared inbox took them (now: messaging)
        row.status, row.routed_to = "unhandled", "support_queue"

    monkeypatch.setattr(services, "route_unrecognised", queue_only)
    user = texting_patient()
    post_inbound(client, app, "Is the clinic open on Saturday?")
    post_inbound(client, app, "Got a new phone, this is Ana", sender=STRANGER)
    support, staff = login_as("support")
    home = support.get("/staff").get_data(as_text=True)
    assert "2 texts are waiting" in home and 'href="/notices/texts"' in home
    page = support.get("/notices/texts")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Is the clinic open on Saturday?" in html and "Got a new phone, this is Ana" in html
    assert f'href="/support/patients/{user._patient.public_id}"' in html and "not a confirmed patient number" in html
    viewed = db.session.execute(select(AuditEvent).where(
        AuditEvent.actor_id == staff.id, AuditEvent.action == "patient.view",
        AuditEvent.patient_id == user._patient.id)).scalars().one()
    assert viewed.category == "text_messages"
    first = _rows(db)[0]
    for _ in range(2):  # a double click: one change, one audit row
        r = post_form(support, f"/notices/texts/{first.public_id}/resolve", {}, get_path="/notices/texts")
        assert r.status_code == 302
    assert _rows(db)[0].status == "resolved" and _rows(db)[0].resolved_by_id == staff.id
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "notifications.inbound.resolved")).scalar_one() == 1
    assert "Is the clinic open on Saturday?" not in support.get("/notices/texts").get_data(as_text=True)
    for role in ("clinician", "billing", "patient"):
        other, _ = login_as(role)
        assert other.get("/notices/texts").status_code == 403


def test_support_patient_page_shows_the_channel_and_failed_notices(app, db, texting_patient, login_as):
    user = texting_patient({"appointment_reminder": "sms", "statement_ready": "off"})
    db.session.add(Notice(patient_id=user._patient.id, user_id=user.id, kind="statement_ready", channel="email",
                          to_address=user.email, link="http://x", context={}, status="failed", attempts=8,
                          last_error="SMTP 451"))
    db.session.add(SmsOptOut(phone_e164=PHONE, keyword="STOP"))
    db.session.commit()
    support, staff = login_as("support")
    html = support.get(f"/support/patients/{user._patient.public_id}").get_data(as_text=True)
    section = html.split('id="notices-panel-h"', 1)[1]
    assert "(312) 555-0123" in section and "Yes: no texts until the patient replies START" in section
    assert "SMTP 451" in section and "Could not be sent" in section
    assert "by email until texts are possible" in section  # reminders by text, but the number replied STOP
    assert "<form" not in section  # staff see, they do not change
    assert db.session.execute(select(AuditEvent).where(
        AuditEvent.actor_id == staff.id, AuditEvent.category == "notification_settings",
        AuditEvent.patient_id == user._patient.id)).scalars().one().action == "patient.view"
    queue = support.get("/notices/texts").get_data(as_text=True)
    assert "SMTP 451" in queue.split('id="failed-h"', 1)[1]
    for role in ("clinician", "billing"):  # they may open the page, not this section
        other, _ = login_as(role)
        page = other.get(f"/support/patients/{user._patient.public_id}")
        assert page.status_code == 200 and "notices-panel-h" not in page.get_data(as_text=True)
    settings = db.session.execute(select(NotificationSettings)
                                  .where(NotificationSettings.patient_id == user._patient.id)).scalars().one()
    assert settings.choices == {"appointment_reminder": "sms", "statement_ready": "off"}

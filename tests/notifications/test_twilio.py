"""The twilio backend. Twilio cannot be reached from here, so the real twilio library is pointed at a
local HTTP server (fixture `fake_twilio`) that records the REST calls it makes and answers like
Twilio's Messages API (201 with a message resource, or an error body); TWILIO_API_BASE_URL is the only
difference from production."""

from __future__ import annotations

import base64

from sqlalchemy import select

from portal.notifications import tasks
from portal.notifications.kinds import NoticeKind
from portal.notifications.models import SmsOptOut
from tests.notifications.conftest import PHONE, notices_of, notify_now

LINK = "http://127.0.0.1:5000/messages/0123456789abcdef0123456789abcdef"


def test_a_text_is_one_messages_create_call(app, db, texting_patient, fake_twilio, mailbox, daytime):
    user = texting_patient({"message_reply": "sms"})
    notify_now(app, db, user._patient, NoticeKind.MESSAGE_REPLY, link=LINK)
    [call] = fake_twilio.calls
    sid = app.config["TWILIO_ACCOUNT_SID"]
    assert call["method"] == "POST" and call["path"] == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert call["form"] == {"To": PHONE, "From": "+13125550000",
                            "Body": f"You have a new message from Riverside Family Clinic: {LINK}"}
    assert call["auth"] == "Basic " + base64.b64encode(f"{sid}:{app.config['TWILIO_AUTH_TOKEN']}".encode()).decode()
    assert call["user_agent"].startswith("twilio-python/")
    [row] = notices_of(db, user._patient)
    assert (row.status, row.provider_id, row.attempts) == ("sent", "SM" + f"{1:032x}", 1)
    # with a Messaging Service instead of a sender number
    app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "2" * 32
    notify_now(app, db, user._patient, NoticeKind.MESSAGE_REPLY, link=LINK)
    assert fake_twilio.calls[1]["form"]["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in fake_twilio.calls[1]["form"]


def test_twilio_refusing_then_accepting_is_delivered_exactly_once(app, db, texting_patient, fake_twilio, daytime):
    fake_twilio.script = [503, 429, 201]
    user = texting_patient({"appointment_change": "sms"})
    notify_now(app, db, user._patient, NoticeKind.APPOINTMENT_CHANGE, link=LINK)
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "Twilio 503 error 20500")
    for wait in (31, 61):
        daytime.shift(wait)
        with app.test_request_context():
            assert tasks.sweep_once()["due"] == 1
    daytime.shift(7200)
    with app.test_request_context():
        assert tasks.sweep_once()["due"] == 0
    assert len(fake_twilio.calls) == 3  # two refused, one accepted, none after
    assert len({c["form"]["Body"] for c in fake_twilio.calls}) == 1
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts, row.provider_id) == ("sent", 3, "SM" + f"{3:032x}")


def test_a_carrier_opt_out_fails_at_once_and_is_remembered(app, db, texting_patient, fake_twilio, mailbox,
                                                           daytime):
    fake_twilio.script = [400]
    fake_twilio.error_code = 21610  # "Attempt to send to unsubscribed recipient"
    user = texting_patient({"new_result": "sms"})
    notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link=LINK)
    [row] = notices_of(db, user._patient)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "Twilio 400 error 21610")
    assert db.session.execute(select(SmsOptOut.keyword).where(SmsOptOut.phone_e164 == PHONE)).scalar() == "CARRIER"
    # from now on the patient is told by email
    notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link=LINK)
    assert notices_of(db, user._patient)[-1].channel == "email" and len(fake_twilio.calls) == 1


def test_verification_codes_go_through_twilio_too(app, db, login_as, fake_twilio):
    from tests.helpers import post_form

    client, user = login_as("patient")
    r = post_form(client, "/account/notifications/phone", {"phone": "312-555-0123", "consent": "y"},
                  get_path="/account/notifications")
    assert r.status_code == 302
    [call] = fake_twilio.calls
    assert call["form"]["To"] == PHONE and "code:" in call["form"]["Body"]

"""/account/notifications: per-kind choices, a mobile number confirmed by a texted code (throttled,
expiring, stored hashed, claimed once), consent with its time, removing the number."""

from __future__ import annotations

import re
import pytest
from sqlalchemy import func, select

from portal.core.audit import AuditEvent
from portal.notifications.kinds import NoticeKind
from portal.notifications.models import NotificationSettings, PhoneVerification, SmsOptOut
from tests.helpers import post_form
from tests.notifications.conftest import PHONE, notices_of, notify_now

PAGE = "/account/notifications"
ALL_EMAIL = {k.value: "email" for k in NoticeKind if k != NoticeKind.SECURITY}


def _settings(db, user):
    db.session.expire_all()
    return db.session.execute(select(NotificationSettings)
                              .where(NotificationSettings.patient_id == user._patient.id)).scalars().first()


def _code(outbox, phone=PHONE) -> str:
    texts = outbox.to(phone)
    assert texts, "no code was texted"
    return re.search(r"\b(\d{6})\b", texts[-1]).group(1)


def _events(db, action, user):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action,
                                                       AuditEvent.actor_id == user.id)).scalars().all()


def test_page_is_reachable_from_home_and_saves_choices(app, db, login_as, mailbox):
    client, user = login_as("patient")
    home = client.get("/home").get_data(as_text=True)
    assert "Notifications: how we reach you" in home and f'href="{PAGE}"' in home
    page = client.get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "What we tell you, and how" in html
    assert "Always by email" in html  # security cannot be turned off
    r = post_form(client, PAGE, {**ALL_EMAIL, "statement_ready": "off", "new_result": "email"})
    assert r.status_code == 302 and r.location.endswith(PAGE)
    assert _settings(db, user).choices["statement_ready"] == "off"
    [ev] = _events(db, "notifications.preferences.changed", user)
    assert ev.patient_id == user._patient.id and '"statement_ready":"off"' in ev.detail
    html = client.get(PAGE).get_data(as_text=True)
    assert re.search(r'<input checked id="statement_ready-3" name="statement_ready" required type="radio" value="off">', html)
    assert notify_now(app, db, user._patient, NoticeKind.STATEMENT_READY, link="http://x/s") is False


def test_text_needs_a_confirmed_number_and_bad_input_keeps_the_values(app, db, login_as):
    client, user = login_as("patient")
    r = post_form(client, PAGE, {**ALL_EMAIL, "appointment_reminder": "sms", "message_reply": "off"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "first add your mobile number" in html
    assert re.search(r'value="off"[^>]*checked|checked[^>]*value="off"', html)  # what was chosen is kept
    r = post_form(client, PAGE, {**ALL_EMAIL, "new_result": "carrier pigeon"})
    assert r.status_code == 400 and "Not a valid choice" in r.get_data(as_text=True)
    assert _settings(db, user) is None or _settings(db, user).choices == {}


def test_phone_verification_by_text(app, db, login_as, sms_outbox, daytime):
    client, user = login_as("patient")
    r = post_form(client, f"{PAGE}/phone", {"phone": "(312) 555-0123", "consent": "y"}, get_path=PAGE)
    assert r.status_code == 302
    code = _code(sms_outbox)
    assert "expires in 10 minutes" in sms_outbox.to(PHONE)[-1]
    html = client.get(PAGE).get_data(as_text=True)
    assert "We texted a 6-digit code to (312) 555-0123" in html
    # the code is stored only as an HMAC
    row = db.session.execute(select(PhoneVerification)
                             .where(PhoneVerification.patient_id == user._patient.id)).scalars().one()
    assert code not in row.code_hash and len(row.code_hash) == 64
    wrong = "000000" if code != "000000" else "111111"
    r = post_form(client, f"{PAGE}/phone/verify", {"code": wrong}, get_path=PAGE)
    assert r.status_code == 400 and "That code is not right" in r.get_data(as_text=True)
    r = post_form(client, f"{PAGE}/phone/verify", {"code": code}, get_path=PAGE)
    assert r.status_code == 302
    settings = _settings(db, user)
    assert settings.phone_e164 == PHONE and settings.phone_verified_at and settings.sms_consent_at
    assert settings.sms_consent_at <= settings.phone_verified_at  # consent was given when the code was asked
    assert len(_events(db, "notifications.phone.verified", user)) == 1
    assert len(_events(db, "notifications.phone.code_failed", user)) == 1
    html = client.get(PAGE).get_data(as_text=True)
    assert "(312) 555-0123" in html and "Stop texts and remove this number" in html
    # the same code cannot be used again (claimed once)
    r = post_form(client, f"{PAGE}/phone/verify", {"code": code}, get_path=PAGE)
    assert r.status_code == 400
    # now texts can be chosen, and they arrive
    r = post_form(client, PAGE, {**ALL_EMAIL, "message_reply": "sms"})
    assert r.status_code == 302
    sms_outbox.clear()
    notify_now(app, db, user._patient, NoticeKind.MESSAGE_REPLY, link="http://127.0.0.1:5000/messages")
    assert sms_outbox.to(PHONE) == ["You have a new message from Riverside Family Clinic: "
                                    "http://127.0.0.1:5000/messages"]
    # removing the number stops texts: what was texted now goes by email
    r = post_form(client, f"{PAGE}/phone/remove", {}, get_path=PAGE)
    assert r.status_code == 302
    settings = _settings(db, user)
    assert settings.phone_e164 is None and settings.sms_consent_at is None
    assert settings.choices["message_reply"] == "email"


@pytest.mark.parametrize("data,field_error", [
    ({"phone": "(312) 555-0123"}, "Tick the box to agree to texts"),
    ({"phone": "555-0100", "consent": "y"}, "not a valid phone number"),
    ({"phone": "+1 800 555 0100", "consent": "y"}, "cannot receive texts"),
    ({"phone": "call me maybe", "consent": "y"}, "Use digits only"),
    ({"phone": "3" * 40, "consent": "y"}, "Field cannot be longer than 32 characters"),
    ({"phone": "312\x00555", "consent": "y"}, "Use digits only"),
])
def test_bad_numbers_are_refused_with_a_field_error(app, db, login_as, sms_outbox, data, field_error):
    client, user = login_as("patient")
    r = post_form(client, f"{PAGE}/phone", data, get_path=PAGE)
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and field_error in html, re.search(r'<form method="post" action="/account/notifications/phone".*?</form>', html, re.S).group(0)
    assert sms_outbox.texts() == []
    if "\x00" not in data["phone"] and len(data["phone"]) < 32:
        assert f'value="{data["phone"]}"' in html  # the number typed is kept


def test_a_number_that_replied_stop_cannot_be_added(app, db, login_as, sms_outbox):
    client, _ = login_as("patient")
    db.session.add(SmsOptOut(phone_e164=PHONE, keyword="STOP"))
    db.session.commit()
    r = post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
    assert r.status_code == 400 and "replied STOP" in r.get_data(as_text=True)
    assert sms_outbox.texts() == []


def test_codes_are_throttled_and_expire(app, db, login_as, sms_outbox, daytime):
    client, user = login_as("patient")
    for n in range(3):
        r = post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
        assert r.status_code == 302, n
        if n < 2:  # "use a different number" to get the phone form back
            post_form(client, f"{PAGE}/phone/cancel", {}, get_path=PAGE)
    first_code, last_code = (re.search(r"\d{6}", t).group(0) for t in (sms_outbox.to(PHONE)[0],
                                                                       sms_outbox.to(PHONE)[-1]))
    r = post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
    assert r.status_code == 400 and "Wait 15 minutes" in r.get_data(as_text=True)
    assert len(sms_outbox.to(PHONE)) == 3
    # an older code stopped working when a new one was sent
    if first_code != last_code:
        r = post_form(client, f"{PAGE}/phone/verify", {"code": first_code}, get_path=PAGE)
        assert r.status_code == 400
    # ten minutes later the newest code has expired
    daytime.shift(11 * 60)
    r = post_form(client, f"{PAGE}/phone/verify", {"code": last_code}, get_path=PAGE)
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    assert _settings(db, user).phone_e164 is None
    daytime.shift(5 * 60)  # 16 minutes after the first: a new code may be sent
    r = post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
    assert r.status_code == 302 and len(sms_outbox.to(PHONE)) == 4


def test_five_wrong_guesses_kill_the_code(app, db, login_as, sms_outbox, daytime):
    client, user = login_as("patient")
    post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
    code = _code(sms_outbox)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert post_form(client, f"{PAGE}/phone/verify", {"code": wrong}, get_path=PAGE).status_code == 400
    r = post_form(client, f"{PAGE}/phone/verify", {"code": code}, get_path=PAGE)
    assert r.status_code == 400 and "expired or was used" in r.get_data(as_text=True)
    assert _settings(db, user).phone_e164 is None


def test_one_number_gets_at_most_five_codes_a_day(app, db, login_as, sms_outbox, daytime):
    for n in range(6):
        client, _ = login_as("patient")
        r = post_form(client, f"{PAGE}/phone", {"phone": PHONE, "consent": "y"}, get_path=PAGE)
        assert r.status_code == (302 if n < 5 else 400), n
    assert len(sms_outbox.to(PHONE)) == 5


def test_staff_cannot_use_the_page_and_get_changes_nothing(app, db, login_as):
    client, _ = login_as("support")
    assert client.get(PAGE).status_code == 403
    patient_client, user = login_as("patient")
    before = db.session.execute(select(func.count()).select_from(NotificationSettings)).scalar_one()
    assert patient_client.get(PAGE).status_code == 200
    assert db.session.execute(select(func.count()).select_from(NotificationSettings)).scalar_one() == before


def test_simultaneous_confirmations_of_one_code_confirm_once(committing_app, tmp_path):
    """Six requests with the same right code at once: one confirms (the conditional UPDATE claims the
    code), the others are told it was used; one audit row. On PostgreSQL when TEST_DATABASE_URL is set."""
    from portal.core.errors import DomainError
    from portal.extensions import db as _db
    from portal.notifications import services
    from tests.concurrency import race
    from tests.factories import create_user

    app = committing_app
    app.config.update(SMS_FILE_DIR=str(tmp_path / "sms"), SMS_BACKEND="file", SMS_QUIET_HOURS="")
    with app.test_request_context():
        user = create_user("patient")
        _db.session.commit()
        user_id = user.id
        services.start_phone_verification(user, PHONE, True)
        _db.session.commit()
    body = next((tmp_path / "sms").glob("*.txt")).read_text().partition("\n\n")[2]
    code = re.search(r"\b\d{6}\b", body).group(0)

    def attempt():
        from portal.accounts.models import User

        with app.test_request_context():
            try:
                services.confirm_phone(_db.session.get(User, user_id), code)
                _db.session.commit()
                return "confirmed"
            except DomainError:
                _db.session.commit()
                return "refused"
            finally:
                _db.session.remove()

    results = race(6, attempt)
    assert sorted(results) == ["confirmed"] + ["refused"] * 5, results
    with app.app_context():
        rows = _db.session.execute(select(func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.action == "notifications.phone.verified")).scalar_one()
        assert rows == 1
        _db.session.remove()


def test_recent_notices_are_listed_for_the_patient(app, db, login_as, mailbox):
    client, user = login_as("patient")
    notify_now(app, db, user._patient, NoticeKind.NEW_RESULT, link="http://127.0.0.1:5000/record")
    assert [n.status for n in notices_of(db, user._patient)] == ["sent"]
    html = client.get(PAGE).get_data(as_text=True)
    table = html.split('id="recent-notices"', 1)[1]
    assert "New test results" in table and "Sent" in table


def test_spanish_page(app, db, login_as):
    client, user = login_as("patient", preferred_language="es")
    html = client.get(PAGE).get_data(as_text=True)
    assert "Avisos: cómo nos comunicamos con usted" in html and 'lang="es"' in html
    assert "Guardar mis opciones" in html and "Siempre por correo electrónico" in html


def test_the_page_costs_the_same_statements_with_many_notices(app, db, login_as):
    """PERFORMANCE.md G7: the same number of statements for 1 or 60 notices (the list shows the newest 10),
    and G8: the recent-notices query uses the (patient_id, created_at) index."""
    from sqlalchemy import event, text

    from portal.core.db import utcnow
    from portal.notifications.models import Notice

    client, user = login_as("patient")
    counts = []

    def add(n):
        for _ in range(n):
            db.session.add(Notice(patient_id=user._patient.id, user_id=user.id, kind="new_result", channel="email",
                                  to_address=user.email, link="http://x", context={}, status="sent", attempts=1,
                                  next_attempt_at=utcnow()))
        db.session.commit()

    engine = db.session.get_bind().engine
    statements = []

    def count(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")):
            statements.append(statement)

    for n in (1, 59):
        add(n)
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(PAGE).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 12, counts
    sql = ("SELECT id FROM notices WHERE patient_id = :p ORDER BY created_at DESC, id DESC LIMIT 10")
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: ask what the planner can use
        plan = "\n".join(db.session.execute(text("EXPLAIN " + sql), {"p": user._patient.id}).scalars())
    else:
        plan = "\n".join(str(r[-1]) for r in db.session.execute(text("EXPLAIN QUERY PLAN " + sql),
                                                                  {"p": user._patient.id}))
    assert "ix_notices_patient_created" in plan, plan

import re

from sqlalchemy import select

from portal.accounts.models import UserSession
from portal.core.audit import AuditEvent
from tests.conftest import sign_in_session
from tests.factories import DEFAULT_PASSWORD
from tests.helpers import post_form

NEW = "amber lighthouse pepper 9"


def test_change_password_needs_current_and_ends_other_sessions(app, db, login_as, mailbox):
    client, user = login_as("patient")
    other = app.test_client()
    sign_in_session(other, user)
    r = post_form(client, "/account/password", {"current_password": "wrong wrong wrong", "password": NEW})
    assert r.status_code == 400 and "not correct" in r.get_data(as_text=True)
    r = post_form(client, "/account/password", {"current_password": DEFAULT_PASSWORD, "password": NEW})
    assert r.status_code == 302
    assert client.get("/record").status_code == 200  # this device stays signed in
    assert other.get("/record").status_code == 302  # the other one is out
    assert "auth.reauth" in db.session.execute(select(AuditEvent.action)).scalars().all()


def test_sessions_list_and_revoke_one(app, db, login_as):
    client, user = login_as("patient")
    other = app.test_client()
    rec = sign_in_session(other, user)
    html = client.get("/account/sessions").get_data(as_text=True)
    assert html.count("/revoke\"") == 2
    r = post_form(client, f"/account/sessions/{rec.public_id}/revoke", {}, get_path="/account/sessions")
    assert r.status_code == 302
    assert other.get("/record").status_code == 302
    assert client.get("/record").status_code == 200


def test_cannot_revoke_someone_elses_session(app, db, login_as):
    client, user = login_as("patient")
    victim_client, victim = login_as("patient")
    rec = db.session.execute(select(UserSession).where(UserSession.user_id == victim.id)).scalar_one()
    r = post_form(client, f"/account/sessions/{rec.public_id}/revoke", {}, get_path="/account/sessions")
    assert r.status_code == 404
    assert victim_client.get("/record").status_code == 200


def test_sign_out_everywhere(app, db, login_as):
    client, user = login_as("clinician")
    other = app.test_client()
    sign_in_session(other, user)
    r = post_form(client, "/account/sessions/revoke-all", {}, get_path="/account/sessions")
    assert r.status_code == 302 and "cookies" in r.headers["Clear-Site-Data"]
    assert client.get("/account").status_code == 302
    assert other.get("/account").status_code == 302


def test_regenerate_recovery_codes_requires_password(db, login_as):
    client, user = login_as("patient")
    r = post_form(client, "/account/recovery-codes", {"current_password": "nope nope nope"})
    assert r.status_code == 400
    r = post_form(client, "/account/recovery-codes", {"current_password": DEFAULT_PASSWORD})
    codes = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", r.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10


def test_keepalive_extends_and_answers_401_when_signed_out(app, db, login_as, csrf_token):
    client, user = login_as("patient")
    token = csrf_token(client, "/account")
    r = client.post("/account/keepalive", headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert r.status_code == 200 and r.json["ok"] is True
    anon = app.test_client()
    token = csrf_token(anon, "/signin")
    r = anon.post("/account/keepalive", headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert r.status_code == 401


def test_account_page_shows_security_state(db, login_as):
    client, user = login_as("patient")
    html = client.get("/account").get_data(as_text=True)
    assert user.email in html and "Who viewed my record" in html

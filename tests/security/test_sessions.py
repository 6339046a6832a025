"""SECURITY.md §2: session identifiers and cookies (§9), idle and absolute timeouts (§10), server-side
invalidation (§11), and §5.25 (no-store, Clear-Site-Data)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone

import pyotp
import time_machine
from sqlalchemy import select

from portal.accounts.models import User, UserSession
from portal.core.crypto import keyed_hash
from tests.conftest import PASSWORD, sign_in_session
from tests.security.helpers import (
    form_csrf,
    full_sign_in,
    production_probe,
    replay_client,
    session_cookie,
    sign_in_with_password,
    submit_code,
)


def _sid(app, cookie_value: str | None) -> str | None:
    if cookie_value is None:  # an anonymous visitor has no session cookie (G3: only a CSRF secret cookie)
        return None
    return app.session_interface.get_signing_serializer(app).loads(cookie_value).get("sid")


def _record(db, user) -> UserSession:
    db.session.expire_all()
    return db.session.execute(select(UserSession).where(UserSession.user_id == user.id)
                              .order_by(UserSession.id.desc())).scalars().first()


def _assert_locked_out(app, cookie_value: str, mrn: str, path: str = "/record"):
    """The replayed cookie gets a redirect to sign-in and not one byte of patient data."""
    r = replay_client(app, cookie_value).get(path)
    body = r.get_data(as_text=True)
    assert r.status_code == 302, r.status_code
    assert r.headers["Location"].startswith("/signin"), r.headers["Location"]
    assert mrn not in body


# --- cookie flags ------------------------------------------------------------------------------

def _set_cookie_headers(response) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def test_session_cookie_flags_in_testing_config(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    r = sign_in_with_password(client, user.email, PASSWORD)
    cookies = [c for c in _set_cookie_headers(r) if c.startswith(app.config["SESSION_COOKIE_NAME"] + "=")]
    assert cookies, _set_cookie_headers(r)
    attrs = [a.strip().lower() for a in cookies[-1].split(";")[1:]]
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain=") for a in attrs)
    assert not any(a.startswith(("expires=", "max-age=")) for a in attrs), "session cookie must not persist"


def test_production_cookie_is_host_prefixed_and_secure():
    probe = production_probe()
    assert probe["status"] == 200
    cookie = next(c for c in probe["cookies"] if c.startswith("__Host-"))
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert not any(a.startswith("domain=") for a in attrs)
    assert probe["hsts"] and "max-age=" in probe["hsts"] and probe["static_hsts"]
    assert probe["remember"] == 0 and probe["server"] is None


# --- identifier renewal -----------------------------------------------------------------------------

def test_session_id_renewed_at_signin_and_after_mfa(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    client.get("/signin")
    anonymous_cookie = session_cookie(client, app)
    r = sign_in_with_password(client, user.email, PASSWORD)
    assert r.status_code == 302
    pending_cookie = session_cookie(client, app)
    pending_sid = _sid(app, pending_cookie)
    record = _record(db, user)
    pending_hash = record.token_hash
    assert pending_sid and pending_hash == keyed_hash(pending_sid, "session")
    assert pending_cookie != anonymous_cookie and _sid(app, anonymous_cookie) is None
    r = submit_code(client, pyotp.TOTP(user._totp_secret).now())
    assert r.status_code == 302 and r.headers["Location"].endswith("/home")
    final_cookie = session_cookie(client, app)
    final_sid = _sid(app, final_cookie)
    record = _record(db, user)
    assert final_sid != pending_sid and final_cookie != pending_cookie
    assert record.token_hash != pending_hash and record.token_hash == keyed_hash(final_sid, "session")
    assert record.mfa_verified_at is not None
    assert len(base64.urlsafe_b64decode(final_sid + "=" * (-len(final_sid) % 4))) * 8 >= 128
    assert final_sid not in record.token_hash and db.session.execute(
        select(UserSession).where(UserSession.token_hash == final_sid)).first() is None
    # the pre-MFA cookie is dead
    assert replay_client(app, pending_cookie).get("/record").status_code == 302
    assert client.get("/record").status_code == 200


def test_no_remember_me_cookie(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    sign_in_with_password(client, user.email, PASSWORD)
    pyotp_code = pyotp.TOTP(user._totp_secret).now()
    r = submit_code(client, pyotp_code)
    names = {c.split("=", 1)[0] for c in _set_cookie_headers(r)}
    # the session, and the remembered-device cookie (it signs nothing in: it only keeps this device's
    # failure counter apart from strangers', see accounts/devices.py)
    assert names == {app.config["SESSION_COOKIE_NAME"], "portal_device"}
    device = [c for c in _set_cookie_headers(r) if c.startswith("portal_device=")][0]
    assert "HttpOnly" in device and "SameSite=Lax" in device
    assert client.get_cookie("remember_token") is None
    assert app.config["REMEMBER_COOKIE_DURATION"].total_seconds() == 0


# --- timeouts ----------------------------------------------------------------------------------------

START = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)


def test_idle_timeout_is_enforced_on_the_server(app, db, make_user):
    user = make_user("patient")
    idle = app.config["SESSION_IDLE_SECONDS"]
    assert idle == 15 * 60
    with time_machine.travel(START, tick=False) as clock:
        client = app.test_client()
        record = sign_in_session(client, user)
        clock.shift(timedelta(seconds=idle - 1))
        assert client.get("/record").status_code == 200  # activity renews the idle clock
        clock.shift(timedelta(seconds=idle - 1))
        assert client.get("/record").status_code == 200
        cookie = session_cookie(client, app)
        clock.shift(timedelta(seconds=idle + 1))
        _assert_locked_out(app, cookie, user._patient.mrn)
        db.session.expire_all()
        record = db.session.get(UserSession, record.id)
        assert record.revoked_at is not None and record.revoked_reason == "idle"


def test_absolute_timeout_is_enforced_on_the_server(app, db, make_user):
    user = make_user("patient")
    absolute = app.config["SESSION_ABSOLUTE_SECONDS"]
    assert absolute == 12 * 3600
    with time_machine.travel(START, tick=False) as clock:
        client = app.test_client()
        record = sign_in_session(client, user)
        token = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
        token = _sid(app, token.value)
        elapsed = 0
        while elapsed + 14 * 60 < absolute:  # busy all day: never idle
            clock.shift(timedelta(minutes=14))
            elapsed += 14 * 60
            with client.session_transaction() as sess:  # a browser that keeps the cookie fresh
                sess["sid"] = token
            assert client.get("/home").status_code == 200, elapsed
        clock.shift(timedelta(seconds=absolute - elapsed + 60))
        with client.session_transaction() as sess:
            sess["sid"] = token
        r = client.get("/record")
        assert r.status_code == 302 and r.headers["Location"].startswith("/signin")
        assert user._patient.mrn not in r.get_data(as_text=True)
        db.session.expire_all()
        assert db.session.get(UserSession, record.id).revoked_reason == "absolute"


# --- invalidation ------------------------------------------------------------------------------------

def test_signout_kills_the_server_session(app, db, make_user, token_for):
    user = make_user("patient")
    client = app.test_client()
    full_sign_in(client, user, PASSWORD)
    assert user._patient.mrn in client.get("/record").get_data(as_text=True)
    cookie = session_cookie(client, app)
    r = client.post("/signout", data={"csrf_token": token_for(client)})
    assert r.status_code == 302
    assert r.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    _assert_locked_out(app, cookie, user._patient.mrn)
    assert _record(db, user).revoked_reason == "signout"


def test_signout_everywhere(app, db, make_user, token_for):
    user = make_user("patient")
    phone, laptop = app.test_client(), app.test_client()
    sign_in_session(phone, user)
    sign_in_session(laptop, user)
    cookies = [session_cookie(phone, app), session_cookie(laptop, app)]
    r = laptop.post("/account/sessions/revoke-all", data={"csrf_token": token_for(laptop)})
    assert r.status_code == 302 and "Clear-Site-Data" in r.headers
    for cookie in cookies:
        _assert_locked_out(app, cookie, user._patient.mrn)


def test_password_change_ends_other_sessions_only(app, db, make_user):
    user = make_user("patient")
    phone, laptop = app.test_client(), app.test_client()
    sign_in_session(phone, user)
    sign_in_session(laptop, user)
    phone_cookie = session_cookie(phone, app)
    page = laptop.get("/account/password").get_data(as_text=True)
    r = laptop.post("/account/password", data={"csrf_token": form_csrf(page), "current_password": PASSWORD,
                                               "password": "a brand new passphrase for 2026"})
    assert r.status_code == 302
    _assert_locked_out(app, phone_cookie, user._patient.mrn)
    assert laptop.get("/record").status_code == 200


def test_password_reset_ends_all_sessions(app, db, make_user):
    from portal.accounts import services

    user = make_user("patient")
    phone = app.test_client()
    sign_in_session(phone, user)
    cookie = session_cookie(phone, app)
    link = f"/password/reset/{services.make_reset_token(user)}"
    anon = app.test_client()
    anon.get(link)  # the token moves into the session
    r = anon.post("/password/reset", data={"csrf_token": form_csrf(anon.get("/password/reset").get_data(as_text=True)),
                                           "password": "a brand new passphrase for 2026"})
    assert r.status_code == 302
    _assert_locked_out(app, cookie, user._patient.mrn)
    again = app.test_client()
    again.get(link)
    r = again.get("/password/reset")  # the link is single-use: it died with the old hash
    assert r.status_code == 302 and r.headers["Location"].endswith("/password/forgot")


def test_mfa_reset_by_support_ends_the_patients_sessions(app, db, make_user, login_as):
    user = make_user("patient")
    patient_client = app.test_client()
    sign_in_session(patient_client, user)
    cookie = session_cookie(patient_client, app)
    support, _ = login_as("support")
    pid = user._patient.public_id
    page = support.get(f"/support/patients/{pid}").get_data(as_text=True)
    r = support.post(f"/support/patients/{pid}/mfa-reset", data={
        "csrf_token": form_csrf(page), "method": "photo_id_in_person", "birth_date_confirmed": "y"})
    assert r.status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, user.id).mfa_enabled
    _assert_locked_out(app, cookie, user._patient.mrn)


def test_role_change_and_disabling_end_the_staff_members_sessions(app, db, make_user, login_as):
    victim = make_user("patient")
    pid = victim._patient.public_id
    admin, _ = login_as("admin")
    for action, data in (("role", {"role": "billing", "confirmed": "1"}), ("disable", {"confirmed": "1"})):
        staff_user = make_user("support")
        staff_client = app.test_client()
        sign_in_session(staff_client, staff_user)
        assert victim._patient.mrn in staff_client.get(f"/support/patients/{pid}").get_data(as_text=True)
        cookie = session_cookie(staff_client, app)
        page = admin.get("/admin/staff").get_data(as_text=True)
        r = admin.post(f"/admin/staff/{staff_user.public_id}/{action}", data={"csrf_token": form_csrf(page), **data})
        assert r.status_code == 302
        _assert_locked_out(app, cookie, victim._patient.mrn, path=f"/support/patients/{pid}")
        reason = _record(db, staff_user).revoked_reason
        assert reason == ("role_changed" if action == "role" else "disabled")


def test_list_and_revoke_one_session(app, db, make_user, token_for):
    user = make_user("patient")
    phone, laptop = app.test_client(), app.test_client()
    phone_record = sign_in_session(phone, user)
    laptop_record = sign_in_session(laptop, user)
    phone_cookie = session_cookie(phone, app)
    page = laptop.get("/account/sessions").get_data(as_text=True)
    assert phone_record.public_id in page and laptop_record.public_id in page
    r = laptop.post(f"/account/sessions/{phone_record.public_id}/revoke", data={"csrf_token": form_csrf(page)})
    assert r.status_code == 302
    _assert_locked_out(app, phone_cookie, user._patient.mrn)
    assert laptop.get("/record").status_code == 200
    assert phone_record.public_id not in laptop.get("/account/sessions").get_data(as_text=True)


# --- caching -------------------------------------------------------------------------------------

def test_authenticated_pages_are_not_cached(app, db, login_as):
    for role, paths in (("patient", ["/home", "/record", "/account", "/account/sessions"]),
                        ("admin", ["/staff", "/support", "/admin/staff", "/admin/audit", "/admin/audit/export.csv"])):
        client, _ = login_as(role)
        for path in paths:
            r = client.get(path)
            assert r.status_code == 200, path
            assert "no-store" in r.headers.get("Cache-Control", ""), path


def test_email_change_ends_other_sessions(app, db, make_user, mailbox):
    user = make_user("patient")
    phone, laptop = app.test_client(), app.test_client()
    sign_in_session(phone, user)
    sign_in_session(laptop, user)
    phone_cookie = session_cookie(phone, app)
    page = laptop.get("/account/email").get_data(as_text=True)
    r = laptop.post("/account/email", data={"csrf_token": form_csrf(page), "current_password": PASSWORD,
                                            "email": "moved@test.example"})
    assert r.status_code == 302
    msg = next(m for m in mailbox.wait_for(1) if m["To"] == "moved@test.example")
    link = re.search(r"/account/email/confirm/\S+", msg.get_content()).group(0)
    assert laptop.get(link).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "moved@test.example"
    _assert_locked_out(app, phone_cookie, user._patient.mrn)
    assert laptop.get("/record").status_code == 200


def test_authenticator_change_ends_other_sessions_once_the_new_app_is_in_force(app, db, make_user):
    user = make_user("patient")
    phone, laptop = app.test_client(), app.test_client()
    sign_in_session(phone, user)
    sign_in_session(laptop, user)
    phone_cookie = session_cookie(phone, app)
    page = laptop.get("/account/authenticator").get_data(as_text=True)
    r = laptop.post("/account/authenticator", data={"csrf_token": form_csrf(page), "current_password": PASSWORD,
                                                    "code": pyotp.TOTP(user._totp_secret).now()})
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/authenticator/new")
    assert phone.get("/record").status_code == 200  # nothing changes until the new app is confirmed
    page = laptop.get("/account/authenticator/new").get_data(as_text=True)
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)
    r = laptop.post("/account/authenticator/new", data={"csrf_token": form_csrf(page),
                                                        "code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    _assert_locked_out(app, phone_cookie, user._patient.mrn)
    assert laptop.get("/record").status_code == 200


# --- sensitive changes need the current password (SECURITY.md §1.8) --------------------------------

SENSITIVE = [
    ("/account/password", {"password": "a brand new passphrase for 2026"}),
    ("/account/email", {"email": "moved@test.example"}),
    ("/account/recovery-codes", {}),
    ("/account/authenticator", {"code": "CURRENT"}),
]


def test_sensitive_changes_refuse_a_wrong_current_password(app, db, make_user):
    from portal.accounts import mfa

    user = make_user("patient")
    mfa.new_recovery_codes(user)
    client = app.test_client()
    sign_in_session(client, user)
    db.session.expire_all()
    before = db.session.get(User, user.id)
    state = (before.email, before.password_hash, before.totp_secret_enc, mfa.unused_recovery_count(before))
    for path, data in SENSITIVE:
        data = {k: (pyotp.TOTP(user._totp_secret).now() if v == "CURRENT" else v) for k, v in data.items()}
        page = client.get(path).get_data(as_text=True)
        r = client.post(path, data={"csrf_token": form_csrf(page), "current_password": "not my password at all",
                                    **data})
        assert r.status_code == 400, (path, r.status_code)
        assert "current password is not correct" in r.get_data(as_text=True), path
    db.session.expire_all()
    after = db.session.get(User, user.id)
    assert (after.email, after.password_hash, after.totp_secret_enc, mfa.unused_recovery_count(after)) == state
    from portal.accounts.lockout import account_key
    from portal.accounts.models import LoginFailure

    # each wrong password counts towards a lock: this signed-in session's own counter (so strangers who
    # lock the address cannot block the owner), linked to the address for unlocks and resets
    counted = db.session.execute(select(LoginFailure.failures).where(
        LoginFailure.email_key == account_key(user.email))).scalars().all()
    assert counted == [len(SENSITIVE)]
    assert client.get("/record").status_code == 200


def test_authenticator_change_also_needs_a_current_code(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    sign_in_session(client, user)
    page = client.get("/account/authenticator").get_data(as_text=True)
    wrong = "000000" if pyotp.TOTP(user._totp_secret).now() != "000000" else "111111"
    r = client.post("/account/authenticator", data={"csrf_token": form_csrf(page), "current_password": PASSWORD,
                                                    "code": wrong})
    assert r.status_code == 400
    db.session.expire_all()
    assert db.session.get(User, user.id).mfa_enabled


# --- redirect after sign-in (SECURITY.md §4.21, partly) ------------------------------------------------

def test_next_parameter_only_allows_same_site_paths(app, db, make_user):
    cases = {"/record": "/record", "//evil.example/x": "/home", "https://evil.example/": "/home",
             "/\\evil.example": "/home", "javascript:alert(1)": "/home", "record": "/home"}
    for nxt, expected in cases.items():
        user = make_user("patient")
        client = app.test_client()
        page = client.get("/signin", query_string={"next": nxt}).get_data(as_text=True)
        m = re.search(r'id="next"[^>]*value="([^"]*)"', page)  # the sign-in form's hidden field
        client.post("/signin", data={"csrf_token": form_csrf(page), "email": user.email, "password": PASSWORD,
                                     "next": nxt})
        r = submit_code(client, pyotp.TOTP(user._totp_secret).now())
        assert r.status_code == 302 and r.headers["Location"] == expected, (nxt, r.headers["Location"])
        assert m is None or "evil" not in m.group(1)

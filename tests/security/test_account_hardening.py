"""SECURITY.md §11 (45, 46, 48, 50): regression tests for the independent probe's findings on the
accounts side, each failing before its fix, on SQLite and PostgreSQL.

1. Changing the authenticator left the account password-only (the old factor stays in force now).
4. Consecutive failures were unbounded (escalating locks, a cap, remembered devices).
6. Tokens in logged URLs (the reset link moves its token into the session; logs redact).
7. Reset timing told known emails (same mail work either way; per-recipient cap).
10. An admin could reset their own MFA with a bare POST.
Plus two rules the suite did not guard: the TOTP step claim on SQLite, NFKC on hashing and checking.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pyotp
import pytest
import requests
from sqlalchemy import func, select

from portal.accounts import devices, lockout, mfa
from portal.accounts.models import LoginFailure, User, UserSession
from portal.core.audit import AuditEvent
from portal.core.db import utcnow
from tests.accounts.mfa_helpers import pending_secret
from tests.concurrency import live_http
from tests.conftest import PASSWORD, sign_in_session
from tests.helpers import form_token, post_form, sign_in, totp_now
from tests.security.helpers import sign_in_with_password


def _age(db, record, seconds: int) -> None:
    record = db.session.get(UserSession, record.id)
    record.created_at = utcnow() - timedelta(seconds=seconds)
    db.session.commit()


# --- 1. replacing the authenticator ------------------------------------------------------------

def test_authenticator_change_on_a_session_older_than_the_pending_limit_keeps_the_old_factor(app, db, make_user):
    user = make_user("patient")
    owner = app.test_client()
    record = sign_in_session(owner, user)
    _age(db, record, 11 * 60)  # older than the 10-minute pending limit
    r = post_form(owner, "/account/authenticator", {"current_password": PASSWORD,
                                                    "code": totp_now(user._totp_secret)})
    assert r.status_code == 302 and r.location.endswith("/account/authenticator/new")
    # the owner's session is still fully signed in, on the new-app page (not dropped to a pending step)
    assert owner.get("/account/authenticator/new").status_code == 200
    assert owner.get("/record").status_code == 200
    db.session.expire_all()
    assert db.session.get(User, user.id).mfa_enabled
    # someone with only the password gets the code step, never an enrolment
    thief = app.test_client()
    r = sign_in_with_password(thief, user.email, PASSWORD)
    assert r.status_code == 302 and r.location.endswith("/signin/verify")
    r = thief.get("/signin/setup")
    assert r.status_code == 302 and r.location.endswith("/signin/verify")
    assert thief.get("/record").status_code == 302
    # the owner finishes with the new app: it replaces the old one
    new_secret = pending_secret(db, user)
    r = post_form(owner, "/account/authenticator/new", {"code": totp_now(new_secret)})
    assert r.status_code == 200 and "Your recovery codes" in r.get_data(as_text=True)
    assert thief.get("/record").status_code == 302


def test_a_pending_setup_expires_from_its_own_start_not_the_sessions(app, db, make_user):
    user = make_user("patient")
    owner = app.test_client()
    record = sign_in_session(owner, user)
    post_form(owner, "/account/authenticator", {"current_password": PASSWORD, "code": totp_now(user._totp_secret)})
    row = db.session.get(UserSession, record.id)
    row.totp_pending_at = utcnow() - timedelta(seconds=mfa.PENDING_SECONDS + 5)
    db.session.commit()
    r = owner.get("/account/authenticator/new")
    assert r.status_code == 302 and r.location.endswith("/account/authenticator")
    assert owner.get("/record").status_code == 200  # the session itself is fine


def test_a_password_only_session_cannot_enrol_over_a_factor_enrolled_meanwhile(app, db, make_user):
    """Two sessions enrolling at once on an account without a factor: each has its own secret; the
    second confirmation is refused once the first has enrolled."""
    user = make_user("patient", mfa=False)
    first, second = app.test_client(), app.test_client()
    for c in (first, second):
        assert sign_in_with_password(c, user.email, PASSWORD).location.endswith("/signin/setup")
    page_1 = first.get("/signin/setup").get_data(as_text=True)
    page_2 = second.get("/signin/setup").get_data(as_text=True)
    secrets_ = [re.search(r'data-secret="([A-Z2-7]+)"', p).group(1) for p in (page_1, page_2)]
    assert secrets_[0] != secrets_[1]  # never the same pending secret in two sessions
    assert post_form(first, "/signin/setup", {"code": totp_now(secrets_[0])}).status_code == 200
    r = second.post("/signin/setup", data={"csrf_token": form_token(page_2), "code": totp_now(secrets_[1])})
    assert r.status_code == 302 and r.location.endswith("/signin/verify")  # a factor is in force now
    assert second.get("/record").status_code == 302
    db.session.expire_all()
    from portal.core.crypto import decrypt

    assert decrypt(db.session.get(User, user.id).totp_secret_enc) == secrets_[0]


# --- 4. consecutive failures: escalation, cap, remembered devices -----------------------------------

@pytest.fixture()
def small_window(app):
    """4 failures per window and a cap of 12 (production: 10 and 100), to keep these tests short."""
    saved = app.config["LOGIN_FAILURES_PER_WINDOW"], app.config.get("LOGIN_FAILURE_CAP", 100)
    app.config["LOGIN_FAILURES_PER_WINDOW"], app.config["LOGIN_FAILURE_CAP"] = 4, 12
    yield 4
    app.config["LOGIN_FAILURES_PER_WINDOW"], app.config["LOGIN_FAILURE_CAP"] = saved


def _fail(client, email, n, ip="192.0.2.50"):
    return [sign_in_with_password(client, email, "not the password, no", environ_base={"REMOTE_ADDR": ip}).status_code
            for _ in range(n)]


def test_locks_escalate_and_the_cap_requires_the_emailed_reset(app, db, make_user, mailbox, small_window):
    user = make_user("patient")
    key = lockout.account_key(user.email)
    if True:
        lengths = []
        for lock in range(3):
            statuses = _fail(app.test_client(), user.email, small_window, ip=f"192.0.2.{lock + 1}")
            assert statuses[-1] == 401 and 429 not in statuses
            row = db.session.get(LoginFailure, key, populate_existing=True)
            if lock < 2:
                lengths.append(round((row.locked_until - utcnow()).total_seconds() / 60))
                row.locked_until = utcnow() - timedelta(seconds=1)  # the lock runs out
                row.window_started_at = utcnow() - timedelta(hours=1)
                db.session.commit()
        assert lengths == [15, 30]  # each lock longer than the last
        assert lockout.lock_seconds(3) == 3600 and lockout.lock_seconds(20) == 24 * 3600
        assert row.consecutive == 12 and row.capped_at is not None
        # at the cap even the right password gets the reset page, however long one waits
        row.locked_until = None
        db.session.commit()
        r = sign_in_with_password(app.test_client(), user.email, PASSWORD)
        body = r.get_data(as_text=True)
        assert r.status_code == 429 and "until a new password is chosen" in body and "/password/forgot" in body
        assert app.config["CLINIC_PHONE"] in body
        # the emailed reset lifts it
        post_form(app.test_client(), "/password/forgot", {"email": user.email})
        link = re.search(r"http\S+/password/reset/\S+", mailbox.wait_for_to(user.email).get_content()).group(0)
        c = app.test_client()
        c.get("/" + link.split("/", 3)[3])
        assert post_form(c, "/password/reset", {"password": "brand new lantern meadow 7"}).status_code == 302
        assert db.session.get(LoginFailure, key, populate_existing=True) is None
        assert sign_in(app.test_client(), user.email, "brand new lantern meadow 7", user._totp_secret).status_code == 302


def test_the_cap_is_never_above_100():
    from flask import Flask

    app = Flask(__name__)
    app.config["LOGIN_FAILURE_CAP"] = 1000
    with app.app_context():
        assert lockout.cap() == 100


def test_warning_before_the_last_tries_for_known_and_unknown_emails(app, db, make_user, small_window):
    user = make_user("patient")
    for email in (user.email, "nobody-here@example.org"):
        client = app.test_client()
        bodies = [sign_in_with_password(client, email, "wrong wrong wrong").get_data(as_text=True) for _ in range(3)]
        assert "tries left" not in bodies[0]
        assert "2 tries left before sign-in pauses for 15 minutes" in bodies[1]
        assert "1 try left before sign-in pauses for 15 minutes" in bodies[2]


def test_a_remembered_device_signs_in_while_strangers_are_locked_out(app, db, make_user, small_window):
    user = make_user("patient")
    owner = app.test_client()
    assert sign_in(owner, user.email, PASSWORD, user._totp_secret).status_code == 302
    cookie = owner.get_cookie(devices.COOKIE)
    assert cookie is not None and cookie.http_only and user.public_id not in cookie.value
    owner.post("/signout", data={"csrf_token": form_token(owner.get("/account").get_data(as_text=True))})
    # a stranger locks the address
    stranger = app.test_client()
    _fail(stranger, user.email, small_window)
    assert sign_in_with_password(stranger, user.email, PASSWORD).status_code == 429
    # the owner's device (its cookie kept) still signs in, with password and code
    returning = app.test_client()
    returning.set_cookie(devices.COOKIE, cookie.value)
    db.session.execute(User.__table__.update().where(User.id == user.id).values(totp_last_step=None))
    db.session.commit()  # (the code step's replay guard: a later step in real life)
    r = sign_in(returning, user.email, PASSWORD, user._totp_secret)
    assert r.status_code == 302 and r.location.endswith("/home")
    # a forged or another account's cookie counts for nothing
    forged = app.test_client()
    forged.set_cookie(devices.COOKIE, cookie.value[:-4] + "AAAA")
    assert sign_in_with_password(forged, user.email, PASSWORD).status_code == 429
    # the device has its own counter: its own failures lock it, not the strangers'
    assert db.session.execute(select(func.count()).select_from(LoginFailure)
                              .where(LoginFailure.email_key == lockout.account_key(user.email))).scalar() == 0


# --- 6. tokens in logs --------------------------------------------------------------------------------

def test_reset_link_moves_its_token_into_the_session_and_no_log_line_carries_it(committing_app, caplog):
    from portal.extensions import db
    from tests.factories import create_user

    with committing_app.app_context():
        user = create_user("patient")
        db.session.commit()
        with committing_app.test_request_context():
            from portal.accounts.services import make_reset_token, make_verify_token

            reset, verify = make_reset_token(user), make_verify_token(user)
    from werkzeug.serving import WSGIRequestHandler, make_server
    import threading

    from tests.conftest import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, committing_app, threaded=True, request_handler=WSGIRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            s = requests.Session()
            r = s.get(f"{base}/password/reset/{reset}", allow_redirects=False)
            assert r.status_code == 302 and r.headers["Location"].endswith("/password/reset")
            page = s.get(f"{base}/password/reset")
            assert page.status_code == 200 and reset not in page.text and "Choose a new password" in page.text
            s.get(f"{base}/activate/verify/{verify}?token={verify}", allow_redirects=False)
    finally:
        server.shutdown()
        thread.join(5)
    logged = caplog.text
    assert "/password/reset" in logged and "[redacted]" in logged
    assert reset not in logged and verify not in logged


# --- 7. reset: same work both ways, capped per recipient ---------------------------------------------------

def _queued_after(app, email):
    from flask import g

    from portal.accounts import services
    from portal.extensions import db

    with app.test_request_context():
        g.request_id = "t"
        services.request_password_reset(email, "198.51.100.7")
        queued = list(db.session.info.get("outgoing_mail", []))
        db.session.rollback()
    return queued


def test_reset_queues_one_message_for_known_and_unknown_emails(app, db, make_user):
    user = make_user("patient")
    known, unknown = _queued_after(app, user.email), _queued_after(app, "nobody-here@example.org")
    assert len(known) == 1 and len(unknown) == 1
    assert "/password/reset/" in known[0] and "/password/reset/" not in unknown[0]
    assert "nobody-here@example.org" in unknown[0]


def test_an_unconfirmed_address_never_receives_a_reset_link(app, db, make_user):
    user = make_user("patient", verified=False)
    queued = _queued_after(app, user.email)
    assert len(queued) == 1 and "/password/reset/" not in queued[0]


def test_reset_mails_are_capped_per_recipient_per_hour(app, db, make_user, mailbox):
    user = make_user("patient")
    for i in range(5):
        r = post_form(app.test_client(), "/password/forgot", {"email": user.email.upper() if i % 2 else user.email},
                      environ_base={"REMOTE_ADDR": f"198.51.100.{i + 10}"})
        assert r.status_code == 200 and "Check your email" in r.get_data(as_text=True)
    msgs = [m for m in mailbox.settle(0.5) if m["To"] == user.email]
    assert len(msgs) == app.config.get("RESET_MAILS_PER_HOUR", 3)
    assert db.session.execute(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "account.password.reset_capped")).scalar() == 2


# --- 10. no self-service MFA reset through staff routes -----------------------------------------------

def test_an_admin_cannot_reset_their_own_mfa_through_the_admin_routes(app, db, login_as):
    client, admin = login_as("admin")
    before = admin.totp_secret_enc
    html = client.get("/admin/staff").get_data(as_text=True)
    r = client.post(f"/admin/staff/{admin.public_id}/mfa-reset",
                    data={"csrf_token": form_token(html), "method": "photo_id_in_person"})
    assert r.status_code == 403
    db.session.expire_all()
    assert db.session.get(User, admin.id).totp_secret_enc == before
    assert client.get("/admin/staff").status_code == 200  # still signed in, nothing revoked


# --- rules the suite did not guard -------------------------------------------------------------------------

def test_the_totp_step_claim_refuses_the_same_step_twice(db, make_user):
    """On SQLite BEGIN IMMEDIATE serialises racing threads, so only a direct test catches a `<=` for
    `<` in the claim: a stale copy of the user (the other request's) must not claim the step again."""
    user = make_user("patient")
    step = int(time.time() // 30)
    assert mfa._claim_step(user, step) is True
    assert mfa._claim_step(user, step) is False
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(user, "totp_last_step", None)  # what a concurrent request had read
    assert mfa.verify_totp(user, pyotp.TOTP(user._totp_secret).at(step * 30)) is False


def test_an_nfd_password_set_the_composed_one_signs_in(app, db, make_user):
    from portal.accounts import services
    from tests.security.helpers import sign_in_with_password as password_step

    composed = "café crème brûlée à la plage 1987"
    decomposed = composed.replace("é", "e\u0301").replace("è", "e\u0300").replace("û", "u\u0302")
    user = make_user("patient")
    services.reset_password(user, decomposed)
    db.session.commit()
    assert password_step(app.test_client(), user.email, composed).status_code == 302


def test_strangers_locking_the_address_do_not_stop_the_signed_in_owner_changing_the_password(app, db, make_user,
                                                                                             small_window):
    user = make_user("patient")
    owner = app.test_client()
    sign_in_session(owner, user)
    _fail(app.test_client(), user.email, small_window)
    assert sign_in_with_password(app.test_client(), user.email, PASSWORD).status_code == 429
    r = post_form(owner, "/account/password", {"current_password": PASSWORD, "password": "fresh copper lantern 2031"})
    assert r.status_code == 302 and r.location.endswith("/account")

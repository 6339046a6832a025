import time

import time_machine
from sqlalchemy import func, select

from portal.accounts.models import User, UserSession
from portal.core.audit import AuditEvent
from tests.factories import DEFAULT_PASSWORD
from tests.accounts.mfa_helpers import pending_secret
from tests.helpers import post_form, sign_in, totp_now


def test_two_step_sign_in_reaches_home(client, make_user):
    user = make_user("patient")
    r = post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 302 and r.location.endswith("/signin/verify")
    # password alone opens nothing
    assert client.get("/record").status_code == 302
    r = post_form(client, "/signin/verify", {"code": totp_now(user._totp_secret)})
    assert r.status_code == 302 and r.location.endswith("/home")
    page = client.get("/record")
    assert page.status_code == 200
    assert user._patient.mrn in page.get_data(as_text=True)


def test_email_is_case_insensitive_and_trimmed(client, make_user):
    user = make_user("patient")
    r = post_form(client, "/signin", {"email": "  " + user.email.upper(), "password": DEFAULT_PASSWORD})
    assert r.location.endswith("/signin/verify")


def test_wrong_password_rerenders_with_error_and_keeps_email(client, make_user):
    user = make_user("patient")
    r = post_form(client, "/signin", {"email": user.email, "password": "not the right one at all"})
    html = r.get_data(as_text=True)
    assert r.status_code == 401
    assert "do not match our records" in html
    assert f'value="{user.email}"' in html
    assert "not the right one" not in html  # the password is never echoed back


def test_staff_without_mfa_must_enrol_before_anything(client, make_user, db):
    staff = make_user("support", mfa=False)
    r = post_form(client, "/signin", {"email": staff.email, "password": DEFAULT_PASSWORD})
    assert r.location.endswith("/signin/setup")
    assert client.get("/support").status_code == 302
    html = client.get("/signin/setup").get_data(as_text=True)
    assert "<svg" in html and 'id="totp-secret"' in html
    secret = pending_secret(db, staff)
    assert secret.replace(" ", "") in html.replace(" ", "")
    r = post_form(client, "/signin/setup", {"code": totp_now(secret)})
    assert r.status_code == 200
    codes = r.get_data(as_text=True).count("<li><code>")
    assert codes == 10
    assert client.get("/support").status_code == 200


def test_wrong_enrolment_code_keeps_secret_and_shows_error(client, make_user, db):
    staff = make_user("billing", mfa=False)
    post_form(client, "/signin", {"email": staff.email, "password": DEFAULT_PASSWORD})
    client.get("/signin/setup")
    pending = pending_secret(db, staff)
    r = post_form(client, "/signin/setup", {"code": "000000"})
    assert r.status_code == 400
    assert "did not match" in r.get_data(as_text=True)
    db.session.refresh(staff)
    assert pending_secret(db, staff) == pending and staff.totp_enabled_at is None


def test_recovery_code_signs_in_once(client, app, make_user, db):
    from portal.accounts import mfa

    user = make_user("patient")
    codes = mfa.new_recovery_codes(user)
    db.session.commit()
    post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD})
    r = post_form(client, "/signin/recovery", {"code": codes[0].lower()})
    assert r.status_code == 302 and r.location.endswith("/home")
    c2 = app.test_client()
    post_form(c2, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD})
    r = post_form(c2, "/signin/recovery", {"code": codes[0]})
    assert r.status_code == 401


def test_next_is_kept_only_for_same_site_paths(client, make_user):
    user = make_user("patient")
    r = client.get("/account")
    assert r.status_code == 302 and "next=" in r.location
    html = client.get("/signin?next=/account").get_data(as_text=True)
    assert 'value="/account"' in html
    r = post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD, "next": "/account"},
                  get_path="/signin?next=/account")
    r = post_form(client, "/signin/verify", {"code": totp_now(user._totp_secret)})
    assert r.location.endswith("/account")


def test_offsite_next_is_dropped(client, make_user):
    from portal.accounts.routes import safe_next

    for bad in ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", "http:/x",
                "\\\\evil", "/ok\r\nX: y"]:
        assert safe_next(bad) is None, bad
    assert safe_next("/record?x=1") == "/record?x=1"
    user = make_user("patient")
    post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD, "next": "//evil.example"})
    r = post_form(client, "/signin/verify", {"code": totp_now(user._totp_secret)})
    assert r.location.endswith("/home")


def test_sign_in_writes_audit_rows(client, make_user, db):
    user = make_user("patient")
    sign_in(client, user.email, DEFAULT_PASSWORD, user._totp_secret)
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.actor_id == user.id)).scalars().all()
    assert "auth.signin.success" in actions and "auth.mfa.success" in actions


def test_pending_session_expires_after_ten_minutes(client, make_user):
    user = make_user("patient")
    with time_machine.travel(time.time(), tick=True) as traveller:
        post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD})
        assert client.get("/signin/verify").status_code == 200
        traveller.shift(11 * 60)
        assert client.get("/signin/verify").status_code == 302


def test_disabled_account_cannot_sign_in(client, make_user, db):
    from portal.core.db import utcnow

    user = make_user("clinician")
    user.disabled_at = utcnow()
    db.session.commit()
    r = post_form(client, "/signin", {"email": user.email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 401


def test_unconfirmed_patient_signs_in_and_can_ask_for_the_link_again(client, make_user, mailbox):
    """Activation proved the code and birth date; the unconfirmed address only lacks reset emails. The
    account page says so and offers the link again."""
    user = make_user("patient", verified=False)
    r = sign_in(client, user.email, DEFAULT_PASSWORD, user._totp_secret)
    assert r.status_code == 302 and r.location.endswith("/home")
    page = client.get("/account").get_data(as_text=True)
    assert "Please confirm your email address" in page and "Send the link again" in page
    r = post_form(client, "/account/email/resend", {}, get_path="/account")
    assert r.status_code == 302
    msg = mailbox.wait_for_to(user.email)
    assert msg is not None and "/activate/verify/" in msg.get_content()


def test_session_count_one_row_per_sign_in(client, make_user, db):
    user = make_user("patient")
    sign_in(client, user.email, DEFAULT_PASSWORD, user._totp_secret)
    n = db.session.execute(select(func.count()).select_from(UserSession)
                           .where(UserSession.user_id == user.id)).scalar()
    assert n == 1
    assert db.session.get(User, user.id).last_sign_in_at is not None

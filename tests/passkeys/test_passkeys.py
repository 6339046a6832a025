"""Passkeys, driven through the real routes with a software authenticator (real P-256 keys and
signatures): enrol, sign in alone and as the second factor, every refusal the issue lists (wrong
origin, wrong RP id, replayed and expired challenges, a counter going backwards, another account's
credential, user verification missing) refused *and* audited, removal, and support's reset."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.accounts.models import Passkey, UserSession, WebAuthnChallenge
from portal.core.audit import AuditEvent
from portal.core.db import utcnow
from tests.conftest import sign_in_session
from tests.helpers import post_form, totp_now
from tests.passkeys.conftest import options, submit

pytestmark = pytest.mark.usefixtures("rp")


def events(db, action, **where):
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars().all()
    out = []
    for row in rows:
        detail = json.loads(row.detail) if row.detail else {}
        if all(detail.get(k) == v for k, v in where.items()):
            out.append(row)
    return out


def enrol(client, soft, name="My phone"):
    opts = options(client, "/account/passkeys/options", "/account/passkeys/add")
    return submit(client, "/account/passkeys/add", "/account/passkeys/add", soft.create(opts), name=name)


def passkey_signin(client, soft, **kw):
    opts = options(client, "/signin/passkey/options", "/signin")
    return submit(client, "/signin/passkey", "/signin", soft.get(opts, **kw))


@pytest.fixture()
def enrolled(login_as, authenticator, db):
    """A patient with the app (TOTP) and one passkey, enrolled through the account page."""
    client, user = login_as("patient")
    soft = authenticator()
    r = enrol(client, soft)
    assert r.status_code == 302 and r.location.endswith("/account/passkeys"), r.get_data(as_text=True)[:2000]
    return client, user, soft


# --- enrolment -------------------------------------------------------------------------------------

def test_enrol_from_the_account_page_stores_the_public_key_audits_and_sends_the_notice(enrolled, db, app):
    client, user, soft = enrolled
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    assert row.credential_id == soft.id and row.name == "My phone" and row.sign_count == 0
    assert row.backup_eligible and row.backed_up
    assert user.webauthn_user_id and soft.user_handle and len(soft.user_handle) == 32
    assert len(events(db, "auth.passkey.added")) == 1
    from portal.notifications.models import Notice

    notices = db.session.execute(select(Notice).where(Notice.kind == "security")).scalars().all()
    assert any(n.channel == "email" for n in notices)
    page = client.get("/account/passkeys").get_data(as_text=True)
    assert "My phone" in page and "Not used yet" in page


def test_adding_needs_a_recent_password(login_as, authenticator, db):
    client, user = login_as("patient")
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id)
                       .values(reauth_at=utcnow() - timedelta(minutes=6)))
    db.session.commit()
    r = client.get("/account/passkeys/add")
    assert r.status_code == 302 and r.location.endswith("/account/passkeys/confirm")
    token_page = client.get("/account/passkeys").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf-token" content="([^"]+)"', token_page).group(1)
    assert client.post("/account/passkeys/options", headers={"X-CSRFToken": token}).status_code == 403
    r = post_form(client, "/account/passkeys/confirm", {"current_password": "wrong password here"})
    assert r.status_code == 400
    from tests.conftest import PASSWORD

    r = post_form(client, "/account/passkeys/confirm", {"current_password": PASSWORD})
    assert r.status_code == 302 and r.location.endswith("/account/passkeys/add")
    assert enrol(client, authenticator()).status_code == 302


def test_registration_refused_for_wrong_origin_wrong_rp_id_no_user_verification_and_replay(login_as, authenticator,
                                                                                              db):
    client, user = login_as("patient")
    cases = [({"origin": "https://portal.clinic.example.evil.test"}, "wrong_origin"),
             ({"rp_id": "evil.test"}, "wrong_rp_id"),
             ({"uv": False}, "user_not_verified")]
    for kw, reason in cases:
        opts = options(client, "/account/passkeys/options", "/account/passkeys/add")
        r = submit(client, "/account/passkeys/add", "/account/passkeys/add", authenticator().create(opts, **kw))
        assert r.status_code == 400, reason
        assert events(db, "auth.passkey.refused", reason=reason), reason
    soft = authenticator()
    opts = options(client, "/account/passkeys/options", "/account/passkeys/add")
    answer = soft.create(opts)
    assert submit(client, "/account/passkeys/add", "/account/passkeys/add", answer).status_code == 302
    r = submit(client, "/account/passkeys/add", "/account/passkeys/add", answer)
    assert r.status_code == 400 and "already used" in r.get_data(as_text=True)
    assert events(db, "auth.passkey.refused", reason="replayed")
    assert db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().all().__len__() == 1


# --- signing in ------------------------------------------------------------------------------------

def test_sign_in_with_a_passkey_alone_starts_a_normal_server_side_session(enrolled, app, db):
    _client, user, soft = enrolled
    browser = app.test_client()
    r = passkey_signin(browser, soft)
    assert r.status_code == 302 and "/signin" not in r.location, r.get_data(as_text=True)[:1500]
    assert browser.get("/account").status_code == 200
    record = db.session.execute(select(UserSession).where(UserSession.user_id == user.id)
                                .order_by(UserSession.id.desc())).scalars().first()
    assert record.mfa_verified_at is not None and record.revoked_at is None
    assert events(db, "auth.signin.success", step="passkey") and events(db, "auth.mfa.success", method="passkey")
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    assert row.sign_count == 1 and row.last_used_at is not None
    # Sign-out revokes it like any other session.
    post_form(browser, "/signout", {}, get_path="/account")
    assert browser.get("/account").status_code == 302


def test_sign_in_page_offers_passkeys_in_the_email_autofill(client):
    page = client.get("/signin").get_data(as_text=True)
    assert 'autocomplete="username webauthn"' in page and "data-passkey-conditional" in page
    assert "js/passkeys.js" in page and "<script>" not in page


def test_password_then_passkey_as_the_second_factor(enrolled, app, db):
    _client, user, soft = enrolled
    from tests.conftest import PASSWORD

    browser = app.test_client()
    r = post_form(browser, "/signin", {"email": user.email, "password": PASSWORD})
    assert r.status_code == 302 and r.location.endswith("/signin/verify")
    page = browser.get("/signin/verify").get_data(as_text=True)
    assert "Use my passkey" in page
    assert browser.get("/account").status_code == 302  # nothing before the second factor
    opts = options(browser, "/signin/verify/passkey/options", "/signin/verify")
    assert [c["id"] for c in opts["allowCredentials"]] == [soft.id]
    r = submit(browser, "/signin/verify/passkey", "/signin/verify", soft.get(opts))
    assert r.status_code == 302 and "/signin" not in r.location
    assert browser.get("/account").status_code == 200


def test_replayed_assertion_is_refused_and_audited(enrolled, app, db):
    _client, _user, soft = enrolled
    browser = app.test_client()
    opts = options(browser, "/signin/passkey/options", "/signin")
    answer = soft.get(opts)
    assert submit(browser, "/signin/passkey", "/signin", answer).status_code == 302
    other = app.test_client()
    with browser.session_transaction() as s:
        value = s.get("webauthn")
    with other.session_transaction() as s:
        s["webauthn"] = value  # even with the same browser session value
    r = submit(other, "/signin/passkey", "/signin", answer)
    assert r.status_code == 401
    assert events(db, "auth.passkey.refused", reason="replayed")


def test_expired_challenge_is_refused(enrolled, app, db):
    _client, _user, soft = enrolled
    browser = app.test_client()
    opts = options(browser, "/signin/passkey/options", "/signin")
    db.session.execute(update(WebAuthnChallenge).where(WebAuthnChallenge.challenge == opts["challenge"])
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    r = submit(browser, "/signin/passkey", "/signin", soft.get(opts))
    assert r.status_code == 401 and "5 minutes" in r.get_data(as_text=True)
    assert events(db, "auth.passkey.refused", reason="expired")
    assert browser.get("/account").status_code == 302


def test_challenge_is_bound_to_the_browser_session_that_asked(enrolled, app, db):
    _client, _user, soft = enrolled
    asker, thief = app.test_client(), app.test_client()
    opts = options(asker, "/signin/passkey/options", "/signin")
    r = submit(thief, "/signin/passkey", "/signin", soft.get(opts))
    assert r.status_code == 401
    assert events(db, "auth.passkey.refused", reason="wrong_session")


@pytest.mark.parametrize("kw,reason", [
    ({"origin": "https://portal-clinic.example"}, "wrong_origin"),
    ({"origin": "http://portal.clinic.example"}, "wrong_origin"),
    ({"rp_id": "clinic.example"}, "wrong_rp_id"),
    ({"uv": False}, "user_not_verified"),
])
def test_assertion_refusals_are_audited_and_counted(enrolled, app, db, kw, reason):
    _client, user, soft = enrolled
    browser = app.test_client()
    r = passkey_signin(browser, soft, **kw)
    assert r.status_code == 401
    assert events(db, "auth.passkey.refused", reason=reason)
    assert events(db, "auth.signin.failure", reason=f"passkey:{reason}")
    assert browser.get("/account").status_code == 302


def test_counter_going_backwards_is_the_clone_signal(enrolled, app, db):
    _client, user, soft = enrolled
    assert passkey_signin(app.test_client(), soft, counter=5).status_code == 302
    r = passkey_signin(app.test_client(), soft, counter=3)
    assert r.status_code == 401 and "call the clinic" in r.get_data(as_text=True)
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    assert row.clone_suspected_at is not None and row.sign_count == 5
    clone = events(db, "auth.passkey.clone_suspected")
    assert clone and json.loads(clone[0].detail) == {"stored": 5, "received": 3}
    # A counter that stays put is refused too; one that moves on is accepted (the mark stays).
    assert passkey_signin(app.test_client(), soft, counter=5).status_code == 401
    assert passkey_signin(app.test_client(), soft, counter=6).status_code == 302


def test_authenticators_that_do_not_count_are_accepted(login_as, authenticator, app, db):
    client, _user = login_as("patient")
    soft = authenticator(counts=False)
    assert enrol(client, soft).status_code == 302
    assert passkey_signin(app.test_client(), soft).status_code == 302
    assert passkey_signin(app.test_client(), soft).status_code == 302


def test_another_accounts_passkey_is_refused_as_second_factor(enrolled, login_as, authenticator, app, db):
    _client, _owner, soft = enrolled
    _c, victim = login_as("patient")
    from tests.conftest import PASSWORD

    other_soft = authenticator()
    assert enrol(_c, other_soft).status_code == 302
    browser = app.test_client()
    assert post_form(browser, "/signin", {"email": victim.email, "password": PASSWORD}).status_code == 302
    opts = options(browser, "/signin/verify/passkey/options", "/signin/verify")
    r = submit(browser, "/signin/verify/passkey", "/signin/verify", soft.get(opts))
    assert r.status_code == 401 and "different account" in r.get_data(as_text=True)
    assert events(db, "auth.passkey.refused", reason="other_account")
    assert browser.get("/account").status_code == 302


def test_user_handle_must_name_the_credentials_owner(enrolled, app, db):
    _client, _user, soft = enrolled
    r = passkey_signin(app.test_client(), soft, user_handle=b"\x01" * 32)
    assert r.status_code == 401
    assert events(db, "auth.passkey.refused", reason="wrong_user_handle")


def test_unknown_credential_is_refused(authenticator, app, db):
    stranger = authenticator()
    stranger.user_handle = b"\x02" * 32
    r = passkey_signin(app.test_client(), stranger)
    assert r.status_code == 401 and "not registered" in r.get_data(as_text=True)
    assert events(db, "auth.passkey.refused", reason="unknown_credential")


# --- removal, first enrolment, support's reset ---------------------------------------------------------

def test_removing_the_last_passkey_needs_password_and_code_and_it_never_signs_in_again(enrolled, app, db):
    client, user, soft = enrolled
    from tests.conftest import PASSWORD

    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    path = f"/account/passkeys/{row.public_id}/remove"
    r = post_form(client, path, {"current_password": PASSWORD})
    assert r.status_code == 400 and "last passkey" in r.get_data(as_text=True)
    r = post_form(client, path, {"current_password": PASSWORD, "code": totp_now(user._totp_secret)})
    assert r.status_code == 302
    assert db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).first() is None
    db.session.refresh(user)
    assert user.passkeys_enabled_at is None and user.mfa_enabled
    assert events(db, "auth.passkey.removed", last=True)
    r = passkey_signin(app.test_client(), soft)
    assert r.status_code == 401
    assert events(db, "auth.passkey.refused", reason="unknown_credential")


def test_removing_someone_elses_passkey_is_a_404_with_a_denied_row(enrolled, login_as, db):
    _client, owner, _soft = enrolled
    row = db.session.execute(select(Passkey).where(Passkey.user_id == owner.id)).scalars().one()
    other, _u = login_as("patient")
    assert other.get(f"/account/passkeys/{row.public_id}/remove").status_code == 404
    assert events(db, "access.denied")


def test_a_passkey_can_be_the_first_second_factor(make_user, authenticator, app, db):
    user = make_user("patient", mfa=False)
    browser = app.test_client()
    sign_in_session(browser, user, mfa_done=False)
    assert "Set up a passkey" in browser.get("/signin/setup").get_data(as_text=True)
    assert browser.get("/account").status_code == 302
    soft = authenticator()
    opts = options(browser, "/signin/setup/passkey/options", "/signin/setup/passkey")
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    r = submit(browser, "/signin/setup/passkey", "/signin/setup/passkey", soft.create(opts), name="Phone")
    assert r.status_code == 200 and "recovery" in r.get_data(as_text=True).lower()
    db.session.refresh(user)
    assert user.mfa_enabled and not user.totp_enabled
    assert browser.get("/account").status_code == 200
    assert events(db, "auth.mfa.enrolled", method="passkey")
    # Next time: the password, then the passkey (no code form for an account without the app).
    from tests.conftest import PASSWORD

    again = app.test_client()
    assert post_form(again, "/signin", {"email": user.email, "password": PASSWORD}).location.endswith("/signin/verify")
    page = again.get("/signin/verify").get_data(as_text=True)
    assert "Use my passkey" in page and 'name="code"' not in page


def test_support_mfa_reset_removes_passkeys_too(enrolled, db):
    _client, user, _soft = enrolled
    from portal.accounts import services
    from tests.factories import create_user

    staff = create_user(role="support")
    services.reset_mfa(staff, user, "photo_id_in_person", True, patient=user._patient)
    db.session.flush()
    assert db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).first() is None
    assert user.passkeys_enabled_at is None and not user.mfa_enabled


def test_passkeys_are_not_offered_on_an_ip_address(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    assert "Sign in with a passkey" not in client.get("/signin").get_data(as_text=True)
    assert client.post("/signin/passkey/options").status_code in (400, 404)


def test_support_sees_passkeys_and_the_clone_signal(enrolled, login_as, app, db):
    _client, user, soft = enrolled
    assert passkey_signin(app.test_client(), soft, counter=5).status_code == 302
    assert passkey_signin(app.test_client(), soft, counter=2).status_code == 401
    support, _staff = login_as("support")
    page = support.get(f"/support/patients/{user._patient.public_id}").get_data(as_text=True)
    assert "Passkeys: 1" in page and "My phone" in page and "counter went backwards" in page


def test_a_passkey_only_account_signs_in_with_a_recovery_code_too(make_user, authenticator, app, db):
    from tests.conftest import PASSWORD

    user = make_user("patient", mfa=False)
    browser = app.test_client()
    sign_in_session(browser, user, mfa_done=False)
    opts = options(browser, "/signin/setup/passkey/options", "/signin/setup/passkey")
    page = submit(browser, "/signin/setup/passkey", "/signin/setup/passkey", authenticator().create(opts))
    import re

    code = re.findall(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b", page.get_data(as_text=True))[0]
    again = app.test_client()
    assert post_form(again, "/signin", {"email": user.email, "password": PASSWORD}).status_code == 302
    r = post_form(again, "/signin/recovery", {"code": code})
    assert r.status_code == 302 and "/signin" not in r.location
    assert again.get("/account").status_code == 200


def test_removing_the_only_factor_of_a_passkey_only_account_is_refused(make_user, authenticator, app, db):
    from tests.conftest import PASSWORD

    user = make_user("patient", mfa=False)
    browser = app.test_client()
    sign_in_session(browser, user, mfa_done=False)
    opts = options(browser, "/signin/setup/passkey/options", "/signin/setup/passkey")
    submit(browser, "/signin/setup/passkey", "/signin/setup/passkey", authenticator().create(opts))
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    r = post_form(browser, f"/account/passkeys/{row.public_id}/remove", {"current_password": PASSWORD})
    assert r.status_code == 400 and "Add another passkey first" in r.get_data(as_text=True)
    assert db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).first() is not None


def test_a_passkey_only_account_can_add_an_app_then_remove_its_last_passkey(make_user, authenticator, app, db):
    import re

    import pyotp

    from tests.conftest import PASSWORD

    user = make_user("patient", mfa=False)
    browser = app.test_client()
    sign_in_session(browser, user, mfa_done=False)
    opts = options(browser, "/signin/setup/passkey/options", "/signin/setup/passkey")
    submit(browser, "/signin/setup/passkey", "/signin/setup/passkey", authenticator().create(opts))
    page = browser.get("/account/authenticator").get_data(as_text=True)
    assert "You sign in with a passkey" in page and 'name="code"' not in page
    r = post_form(browser, "/account/authenticator", {"current_password": PASSWORD})
    assert r.status_code == 302 and r.location.endswith("/account/authenticator/new")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', browser.get("/account/authenticator/new").get_data(as_text=True)).group(1)
    r = post_form(browser, "/account/authenticator/new", {"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    db.session.refresh(user)
    assert user.totp_enabled and user.passkeys_enabled_at is not None
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    recovery = re.findall(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b", r.get_data(as_text=True))[0]
    r = post_form(browser, f"/account/passkeys/{row.public_id}/remove",
                  {"current_password": PASSWORD, "code": recovery})  # the last one: a recovery code will do
    assert r.status_code == 302
    db.session.refresh(user)
    assert user.passkeys_enabled_at is None and user.mfa_enabled


def test_rename(enrolled, db):
    client, user, _soft = enrolled
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    path = f"/account/passkeys/{row.public_id}/rename"
    assert post_form(client, path, {"name": "   "}).status_code == 400
    assert post_form(client, path, {"name": "Kitchen tablet"}).status_code == 302
    assert "Kitchen tablet" in client.get("/account/passkeys").get_data(as_text=True)
    assert events(db, "auth.passkey.renamed")


def test_between_password_and_passkey_no_patient_data_and_no_account_changes(enrolled, app, db):
    _client, user, soft = enrolled
    from tests.conftest import PASSWORD

    browser = app.test_client()
    assert post_form(browser, "/signin", {"email": user.email, "password": PASSWORD}).status_code == 302
    row = db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one()
    import re

    # the pending page carries no csrf-token meta tag (only signed-in pages do: G3); its forms carry the token
    page = browser.get("/signin/verify").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    for path in ("/record", "/account/passkeys", "/account/passkeys/add", f"/account/passkeys/{row.public_id}/remove"):
        r = browser.get(path)
        assert r.status_code == 302 and r.location.endswith("/signin/verify"), path
    for path in ("/account/passkeys/options", f"/account/passkeys/{row.public_id}/remove",
                 f"/account/passkeys/{row.public_id}/rename"):
        r = browser.post(path, data={"csrf_token": token, "current_password": PASSWORD, "name": "x"},
                         headers={"X-CSRFToken": token})
        assert r.status_code == 302 and r.location.endswith("/signin/verify"), path
    body = browser.post("/signin/verify/passkey/options", headers={"X-CSRFToken": token}).get_data(as_text=True)
    assert user._patient.mrn not in body and user._patient.family_name not in body
    assert db.session.execute(select(Passkey).where(Passkey.user_id == user.id)).scalars().one().name == "My phone"


def test_confirm_it_is_you_with_a_passkey_before_adding_another(enrolled, authenticator, db):
    client, user, soft = enrolled
    db.session.execute(update(UserSession).where(UserSession.user_id == user.id)
                       .values(reauth_at=utcnow() - timedelta(minutes=6)))
    db.session.commit()
    assert client.get("/account/passkeys/add").status_code == 302
    page = client.get("/account/passkeys/confirm").get_data(as_text=True)
    assert "Confirm with a passkey" in page
    opts = options(client, "/account/passkeys/confirm/options", "/account/passkeys/confirm")
    assert [c["id"] for c in opts["allowCredentials"]] == [soft.id]
    r = submit(client, "/account/passkeys/confirm/passkey", "/account/passkeys/confirm", soft.get(opts))
    assert r.status_code == 302 and r.location.endswith("/account/passkeys/add")
    assert events(db, "auth.reauth", method="passkey")
    assert enrol(client, authenticator(), name="Tablet").status_code == 302

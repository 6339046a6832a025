"""Email and authenticator changes need the current password (and a code); SECURITY.md §8."""

import re

from sqlalchemy import select

from portal.accounts.models import User
from tests.conftest import sign_in_session
from tests.factories import DEFAULT_PASSWORD
from tests.accounts.mfa_helpers import pending_secret
from tests.helpers import post_form, totp_now


def test_email_change_needs_password_and_the_new_address_link(app, db, login_as, mailbox):
    client, user = login_as("patient")
    old = user.email
    r = post_form(client, "/account/email", {"email": "new.home@example.org", "current_password": "wrong one here"})
    assert r.status_code == 400 and "not correct" in r.get_data(as_text=True)
    assert 'value="new.home@example.org"' in r.get_data(as_text=True)
    r = post_form(client, "/account/email", {"email": "new.home@example.org", "current_password": DEFAULT_PASSWORD})
    assert r.status_code == 302
    db.session.refresh(user)
    assert user.email == old  # nothing changes until the link is opened
    msg = mailbox.wait_for(1)[-1]
    assert msg["To"] == "new.home@example.org"
    path = re.search(r"/account/email/confirm/\S+", msg.get_content()).group(0)
    other = app.test_client()
    sign_in_session(other, user)
    assert client.get(path).status_code == 302
    db.session.refresh(user)
    assert user.email == "new.home@example.org"
    assert [m["To"] for m in mailbox.wait_for(2)][-1] == old  # notice to the old address
    assert other.get("/account").status_code == 302  # other sessions ended
    assert client.get("/account").status_code == 200


def test_email_change_to_a_used_address_is_refused(db, login_as, make_user):
    taken = make_user("clinician")
    client, user = login_as("patient")
    r = post_form(client, "/account/email", {"email": taken.email, "current_password": DEFAULT_PASSWORD})
    assert r.status_code == 400 and "cannot be used" in r.get_data(as_text=True)


def test_email_change_link_dies_when_password_changes(app, db, login_as, mailbox):
    from portal.accounts import services

    client, user = login_as("patient")
    with app.test_request_context():
        token = services.make_email_change_token(user, "later@example.org")
    from portal.accounts.passwords import hash_password

    user.password_hash = hash_password("another long passphrase 77")
    db.session.commit()
    client.get(f"/account/email/confirm/{token}")
    db.session.refresh(user)
    assert user.email != "later@example.org"


def test_new_authenticator_needs_password_and_current_code(app, db, login_as):
    client, user = login_as("patient")
    other = app.test_client()
    sign_in_session(other, user)
    r = post_form(client, "/account/authenticator", {"current_password": DEFAULT_PASSWORD, "code": "000000"})
    assert r.status_code == 400
    assert client.get("/account/authenticator/new").status_code == 302  # nothing to set up yet
    r = post_form(client, "/account/authenticator",
                  {"current_password": DEFAULT_PASSWORD, "code": totp_now(user._totp_secret)})
    assert r.status_code == 302 and r.location.endswith("/account/authenticator/new")
    db.session.refresh(user)
    assert user.mfa_enabled  # the old factor stays in force
    assert client.get("/record").status_code == 200 and other.get("/record").status_code == 200
    html = client.get("/account/authenticator/new").get_data(as_text=True)
    new_secret = pending_secret(db, user)
    assert new_secret and new_secret != user._totp_secret and new_secret in html
    assert "otpauth://totp/" in html and "Copy the key" in html
    r = post_form(client, "/account/authenticator/new", {"code": totp_now(new_secret)})
    assert r.status_code == 200 and r.get_data(as_text=True).count("<li><code>") == 10
    assert client.get("/record").status_code == 200
    assert other.get("/record").status_code == 302  # other sessions end once the new app is in force
    from portal.core.crypto import decrypt

    db.session.refresh(user)
    assert decrypt(user.totp_secret_enc) == new_secret

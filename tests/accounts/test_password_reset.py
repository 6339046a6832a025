import re

from tests.factories import DEFAULT_PASSWORD
from tests.helpers import post_form, sign_in

NEW = "violet canyon drum 4417"


def _reset_link(mailbox) -> str:
    body = mailbox.wait_for(1)[-1].get_content()
    return re.search(r"/password/reset/\S+", body).group(0)


def _open(client, link):
    """Open the emailed link: its token moves into the session, the page is at a clean URL."""
    r = client.get(link)
    assert r.status_code == 302 and r.location.endswith("/password/reset")
    return "/password/reset"


def test_reset_flow_changes_password_and_link_dies(app, client, db, make_user, mailbox):
    user = make_user("patient")
    other = app.test_client()
    sign_in(other, user.email, DEFAULT_PASSWORD, user._totp_secret)
    assert other.get("/record").status_code == 200
    r = post_form(client, "/password/forgot", {"email": user.email})
    assert r.status_code == 200
    link = _reset_link(mailbox)
    page = _open(client, link)
    html = client.get(page).get_data(as_text=True)
    assert link.rsplit("/", 1)[1] not in html  # the token is not on the page
    r = post_form(client, page, {"password": NEW})
    assert r.status_code == 302 and r.location.endswith("/signin")
    # single use: bound to the old password hash
    _open(client, link)
    r = client.get("/password/reset")
    assert r.status_code == 302 and r.location.endswith("/password/forgot")
    # all sessions ended
    assert other.get("/record").status_code == 302
    r = post_form(client, "/signin", {"email": user.email, "password": NEW})
    assert r.location.endswith("/signin/verify")
    # notice email, no PHI
    msgs = mailbox.wait_for(2)
    assert any("password was changed" in m["Subject"] for m in msgs)


def test_reset_link_expires_after_an_hour(app, client, db, make_user, mailbox):
    import time

    import time_machine

    user = make_user("patient")
    post_form(client, "/password/forgot", {"email": user.email})
    link = _reset_link(mailbox)
    _open(client, link)
    with time_machine.travel(time.time() + 3601, tick=False):
        r = client.get("/password/reset")
    assert r.status_code == 302 and r.location.endswith("/password/forgot")


def test_forgot_answers_the_same_for_unknown_email(client, db, make_user, mailbox):
    user = make_user("patient")
    r1 = post_form(client, "/password/forgot", {"email": user.email})
    r2 = post_form(client, "/password/forgot", {"email": "nobody@nowhere.example"})
    strip = lambda r: re.sub(r'content="[^"]+"|value="[^"]+"', "", r.get_data(as_text=True))  # noqa: E731
    assert r1.status_code == r2.status_code == 200
    assert strip(r1) == strip(r2)
    msgs = mailbox.settle(0.5)
    assert sorted(m["To"] for m in msgs) == sorted([user.email, "nobody@nowhere.example"])
    unknown = next(m for m in msgs if m["To"] == "nobody@nowhere.example").get_content()
    assert "no reset link was sent" in unknown and "/password/reset/" not in unknown


def test_weak_new_password_is_refused_with_reason(client, db, make_user, mailbox):
    user = make_user("patient")
    post_form(client, "/password/forgot", {"email": user.email})
    page = _open(client, _reset_link(mailbox))
    r = post_form(client, page, {"password": "short"})
    assert r.status_code == 400 and "at least 12 characters" in r.get_data(as_text=True)


def test_tampered_token_is_refused(client):
    client.get("/password/reset/not-a-token")
    r = client.get("/password/reset")
    assert r.status_code == 302 and r.location.endswith("/password/forgot")

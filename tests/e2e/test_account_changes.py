"""Journey: a signed-in patient changes their email (re-authentication, link to the new address from the
real SMTP mailbox) and moves to a new authenticator app (password + current code, re-enrolment)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import expect, fresh_totp, path_of, sign_in_password

pytestmark = pytest.mark.e2e


def test_change_email_and_authenticator(page, seed, mailbox, checks, live_server):
    account = seed.patient_account(given="Tomasa", family="Cambios")
    sign_in_password(page, account.email, account.password)
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))

    # --- email: a wrong password keeps the typed address and says why
    page.goto("/account")
    page.get_by_role("link", name="Change your email").click()
    checks.check(page, "change email")
    page.get_by_label("New email").fill("tomasa.new@patient.example")
    page.get_by_label("Current password").fill("definitely not it")
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("main")).to_contain_text("Your current password is not correct.")
    expect(page.get_by_label("New email")).to_have_value("tomasa.new@patient.example")
    checks.check(page, "change email with error")
    page.get_by_label("Current password").fill(account.password)
    page.get_by_role("button", name="Send the link").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    msg = mailbox.wait_for_to("tomasa.new@patient.example", timeout=10)
    assert msg is not None, "no confirmation mail"
    link = re.search(r"https?://\S+/account/email/confirm/\S+", msg.get_content()).group(0)
    page.goto(live_server.path(link))
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator("main")).to_contain_text("tomasa.new@patient.example")
    assert mailbox.wait_for_to(account.email, timeout=10) is not None  # notice to the old address

    # --- authenticator: password + a current code, then enrol the new app. Getting an unused code can
    # take up to one 30-s step (replay protection), longer than the test server's 10-s idle warning,
    # so wait first and navigate after.
    current_code = account.totp()
    page.goto("/account")
    page.get_by_role("link", name="Use a new authenticator app").click()
    checks.check(page, "new authenticator")
    page.get_by_label("Current password").fill(account.password)
    page.get_by_label("6-digit code from your current app").fill(current_code)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/authenticator/new$"))
    checks.check(page, "re-enrolment")
    new_secret = page.locator("code#totp-secret").get_attribute("data-secret")
    assert new_secret and new_secret != account.totp_secret
    code, _ = fresh_totp(new_secret, None)
    page.get_by_label("6-digit code from your app").fill(code)
    page.get_by_role("button", name="Use this app").click()
    expect(page.locator("#recovery-codes code")).to_have_count(10)
    page.get_by_role("button", name=re.compile("I have saved my codes")).click()
    expect(page).to_have_url(re.compile(r"/account$"))
    assert path_of(page) == "/account"
    checks.assert_clean()

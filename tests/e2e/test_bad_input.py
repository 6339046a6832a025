"""Journey 2: wrong input is answered with a clear error and the form keeps what the person typed
(except passwords), the error summary takes focus, and the error states themselves pass axe."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.e2e.conftest import expect

pytestmark = pytest.mark.e2e


def _fill_birth(page, d: date) -> None:
    page.get_by_label("Month").select_option(str(d.month))
    page.get_by_label("Day").fill(str(d.day))
    page.get_by_label("Year").fill(str(d.year))


def test_wrong_activation_code_and_wrong_password_keep_the_input(page, seed, checks):
    act = seed.activation(given="Olga", family="Mistyped", birth=date(1966, 11, 30))

    # empty submission: field errors that say what to do, a focused summary linking to the fields
    page.goto("/activate")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Enter the activation code from the clinic")
    expect(summary).to_contain_text("Enter your date of birth: month, day and year.")
    expect(page.get_by_label("Activation code")).to_have_attribute("aria-invalid", "true")
    described = page.get_by_label("Activation code").get_attribute("aria-describedby") or ""
    assert "code-error" in described.split(), described
    checks.check(page, "activate: empty submission")
    summary.get_by_role("link").first.click()
    expect(page.get_by_label("Activation code")).to_be_focused()

    # a code that does not exist: the generic answer (with the clinic's number), nothing leaks
    page.get_by_label("Activation code").fill("ZZZZ-ZZZZ-ZZZZ" if act["code"] != "ZZZZ-ZZZZ-ZZZZ" else "YYYY-YYYY-YYYY")
    _fill_birth(page, act["birth"])
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Activate your account")
    expect(page.locator(".error-summary")).to_contain_text("We could not match that activation code and birth date")
    expect(page.locator(".error-summary")).to_contain_text(seed.app.config["CLINIC_PHONE"])
    expect(page.get_by_label("Year")).to_have_value(str(act["birth"].year))
    checks.check(page, "activate: wrong code")

    # the right code with a wrong birth date gets the very same answer
    page.get_by_label("Activation code").fill(act["code"])
    page.get_by_label("Day").fill("29")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_contain_text("We could not match that activation code and birth date")

    # sign-in with a wrong password: the email stays, the password does not; a warning before the last tries
    account = seed.patient_account(given="Pavel")
    page.goto("/signin")
    for attempt in range(8):
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill("not the right password at all")
        page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.locator(".error-summary")).to_contain_text("do not match our records")
    expect(page.locator(".error-summary")).to_contain_text("2 tries left before sign-in pauses for 15 minutes")
    expect(page.get_by_label("Email")).to_have_value(account.email)
    expect(page.get_by_label("Password")).to_have_value("")
    checks.check(page, "sign-in: wrong password")

    # and a wrong TOTP code on the second step
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    right = account.totp()
    page.get_by_label("6-digit code").fill("000000" if right != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_label("6-digit code")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("That code is not valid")
    checks.check(page, "TOTP: wrong code")

    # the recovery-code form speaks of recovery codes
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Recovery code").fill("AAAA-BBBB-CCCC")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".error-summary")).to_contain_text("That recovery code is not valid or was already used")
    checks.check(page, "recovery code: wrong code")

    # a mistyped address: the 404 page explains and offers a way on
    resp = page.goto("/no-such-page")
    assert resp.status == 404
    checks.check(page, "not found")

    checks.assert_clean()

"""Journey 2: wrong input is answered with a clear error and the form keeps what the person typed
(except passwords), and the error states themselves pass axe."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import expect, flash_texts

pytestmark = pytest.mark.e2e


def test_wrong_activation_code_and_wrong_password_keep_the_input(page, seed, checks):
    act = seed.activation(given="Olga", family="Mistyped", birth=date(1966, 11, 30))
    email = "olga.mistyped@patient.example"

    # empty submission: field errors, summary linking to the fields
    page.goto("/activate")
    page.get_by_role("button", name="Activate").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(page.get_by_label("Activation code")).to_have_attribute("aria-invalid", "true")
    described = page.get_by_label("Activation code").get_attribute("aria-describedby") or ""
    assert "code-error" in described.split(), described
    checks.check(page, "activate: empty submission")
    summary.get_by_role("link").first.click()
    expect(page.get_by_label("Activation code")).to_be_focused()

    # a code that does not exist: the generic answer, nothing about the record leaks
    page.get_by_label("Activation code").fill("ZZZZ-ZZZZ-ZZZZ" if act["code"] != "ZZZZ-ZZZZ-ZZZZ" else "YYYY-YYYY-YYYY")
    page.get_by_label("Date of birth").fill(act["birth"].isoformat())
    page.get_by_label("Email").fill(email)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("h1")).to_have_text("Activate your account")
    errors = " ".join(flash_texts(page) + page.locator(".error-summary, .field-error").all_inner_texts())
    assert "We could not match that activation code and birth date" in errors, errors
    expect(page.get_by_label("Email")).to_have_value(email)
    expect(page.get_by_label("Date of birth")).to_have_value(act["birth"].isoformat())
    expect(page.get_by_label("Choose a password")).to_have_value("")  # never echoed back
    checks.check(page, "activate: wrong code")

    # the right code with a wrong birth date gets the very same answer
    page.get_by_label("Activation code").fill(act["code"])
    page.get_by_label("Date of birth").fill("1966-11-29")
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Activate").click()
    errors2 = " ".join(flash_texts(page) + page.locator(".error-summary, .field-error").all_inner_texts())
    assert "We could not match that activation code and birth date" in errors2, errors2
    expect(page.get_by_label("Email")).to_have_value(email)

    # sign-in with a wrong password
    account = seed.patient_account(given="Pavel")
    page.goto("/signin")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill("not the right password at all")
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    assert any("do not match our records" in t for t in flash_texts(page)), flash_texts(page)
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

    # a mistyped address: the 404 page explains and offers a way on
    resp = page.goto("/no-such-page")
    assert resp.status == 404
    checks.check(page, "not found")

    checks.assert_clean()

"""Journey: a Spanish-speaking patient on a 375-px phone. The memorable date in Spanish (day first,
month names in Spanish, errors in Spanish), the account page's previous sign-in, the sessions list as
stacked cards, tap targets of at least 44 px, and the lockout page (the reset link and the clinic's
number) shown to a stranger while the patient's remembered device still signs in.

Strings are read from the compiled Spanish catalogs (tests/e2e/test_spanish_ui.spanish)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.e2e.conftest import PHONE, expect, path_of
from tests.e2e.test_spanish_ui import spanish

pytestmark = pytest.mark.e2e

SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
    'button, [role=button], input:not([type=hidden]), select, nav a, .link-list a'))
  .filter(e => e.offsetParent !== null)
  .map(e => [e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.innerText || e.name || '').trim().slice(0, 30),
             Math.round(e.getBoundingClientRect().height)])
  .filter(([, h]) => h < 44)"""


def _sign_in(page, es, email, password):
    page.goto("/signin")
    page.get_by_label(es("Email")).fill(email)
    page.get_by_label(es("Password"), exact=True).fill(password)
    page.get_by_role("button", name=es("Continue")).click()


@pytest.fixture()
def spanish_phone(browser, live_server, fresh_limits):
    """A Spanish browser on a phone (its language survives cookies being cleared)."""
    ctx = browser.new_context(base_url=live_server.url, viewport=PHONE, locale="es-ES", timezone_id="America/Chicago")
    ctx.set_default_timeout(10_000)
    yield ctx.new_page()
    ctx.close()


def test_spanish_phone_journey_with_lockout_and_remembered_device(browser, live_server, spanish_phone, seed, checks):
    es = spanish()
    assert es is not None, "compile the catalogs (make translations)"
    page = spanish_phone
    account = seed.patient_account(given="Dolores", family="Telefono", language="es")
    page.goto("/activate")

    # --- the memorable date in Spanish: day, month, year; month names in Spanish; errors in Spanish
    labels = page.locator(".memorable-date-parts label").all_inner_texts()
    assert labels == [es("Day"), es("Month"), es("Year")], labels
    expect(page.get_by_label(es("Month"))).to_contain_text("Enero")
    page.get_by_label(es("Activation code")).fill("ABCD-EFGH-JKLM")
    page.get_by_label(es("Day")).fill("2")
    page.get_by_label(es("Month")).select_option("1")
    page.get_by_label(es("Year")).fill("2999")
    page.get_by_role("button", name=es("Continue")).click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text(es("Your date of birth must be in the past. Check the year."))
    assert "This field is required" not in page.content()
    checks.check(page, "activate (es, phone): future date")

    # --- sign in twice (the first one becomes "the previous sign-in")
    _sign_in(page, es, account.email, account.password)
    page.get_by_label(es("6-digit code")).fill(account.totp())
    page.get_by_role("button", name=es("Verify")).click()
    expect(page).to_have_url(re.compile(r"/home$"))
    page.context.clear_cookies(name="portal_session")  # the browser was closed; the device cookie stays
    _sign_in(page, es, account.email, account.password)
    page.get_by_role("link", name=es("Lost your phone? Use a recovery code")).click()
    page.get_by_label(es("Recovery code")).fill(account.recovery_codes[0])
    page.get_by_role("button", name=es("Verify")).click()
    expect(page).to_have_url(re.compile(r"/home$"))

    page.goto("/account")
    previous = page.locator(".details-list div", has_text=es("Previous sign-in"))
    expect(previous).to_contain_text("Chrome en Linux")
    checks.check(page, "account (es, phone)")
    page.get_by_role("link", name=es("Where you are signed in")).click()
    rows = page.locator("table#sessions tbody tr")
    expect(rows).to_have_count(2)
    # stacked cards: each row a block, each cell labelled by its column, no sideways scroll
    assert rows.first.evaluate("e => getComputedStyle(e).display") == "block"
    label = page.locator("table#sessions td").first.evaluate("e => getComputedStyle(e, '::before').content")
    assert es("Device") in label, label
    assert page.locator("table#sessions thead").evaluate("e => e.getBoundingClientRect().height") <= 1  # for AT only
    assert page.evaluate(SMALL_TARGETS) == []
    checks.check(page, "sessions (es, phone)")
    page.get_by_role("button", name=es("Menu")).click()
    assert page.evaluate(SMALL_TARGETS) == []
    page.context.clear_cookies(name="portal_session")

    # --- a stranger locks the address out; the lockout page offers the reset link and the number
    stranger_ctx = browser.new_context(base_url=live_server.url, viewport=PHONE, locale="es-ES")
    stranger = stranger_ctx.new_page()
    try:
        for _ in range(10):
            _sign_in(stranger, es, account.email, "no es la contraseña, no")
        expect(stranger.locator(".error-summary")).to_contain_text(es("Too many failed attempts. Sign-in with this email is paused for a while."))
        _sign_in(stranger, es, account.email, account.password)
        expect(stranger.locator("h1")).to_have_text(es("Too many attempts"))
        expect(stranger.get_by_role("link", name=es("Choose a new password with a link by email"))).to_have_attribute(
            "href", "/password/forgot")
        expect(stranger.locator("main")).to_contain_text(seed.app.config["CLINIC_PHONE"])
        checks.check(stranger, "lockout (es, phone)")
    finally:
        stranger_ctx.close()

    # --- the patient's own (remembered) device still signs in
    _sign_in(page, es, account.email, account.password)
    page.get_by_role("link", name=es("Lost your phone? Use a recovery code")).click()
    page.get_by_label(es("Recovery code")).fill(account.recovery_codes[1])
    page.get_by_role("button", name=es("Verify")).click()
    expect(page).to_have_url(re.compile(r"/home$"))
    assert path_of(page) == "/home"
    checks.assert_clean()

"""Journey 1: a patient activates in three steps (code + birth date as month/day/year boxes → email and
password once, with the rules shown and a show-password button → the authenticator, with a copy-key
button and an otpauth:// link), keeps the recovery codes (download, copy, print), confirms the email
later from the real SMTP mailbox, signs in with TOTP and with a recovery code, and meets the
idle-timeout warning (stay signed in, then let it run out)."""

from __future__ import annotations

import re
import time
from datetime import date

import pyotp
import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import (IDLE_SECONDS, WARNING_SECONDS, expect, expect_flash, fresh_totp, oathtool_code,
                                path_of, sign_out)

pytestmark = pytest.mark.e2e

# Reading the clipboard never hangs the journey: no answer within 5 s reads as None (and fails).
CLIPBOARD = "Promise.race([navigator.clipboard.readText(), new Promise(r => setTimeout(() => r(null), 5000))])"
LINK = re.compile(r"https?://\S+/activate/verify/\S+")


def test_activation_enrolment_sign_in_and_idle_timeout(page, seed, mailbox, checks, live_server):
    given, family, birth = "Ines", "Journeyman", date(1984, 6, 2)
    act = seed.activation(given=given, family=family, birth=birth)
    email = "ines.journeyman@patient.example"

    # --- activation, step 1: code + birth date as three boxes (USWDS memorable date)
    page.goto("/")
    checks.check(page, "landing")
    page.get_by_role("button", name="Activate your account").click()  # a link styled (and announced) as a button
    expect(page).to_have_url(re.compile(r"/activate$"))
    checks.check(page, "activate")
    page.get_by_label("Activation code").fill(act["code"].lower().replace("-", " "))  # forgiving input
    page.get_by_label("Month").select_option(label="February")
    page.get_by_label("Day").fill("30")
    page.get_by_label("Year").fill(str(birth.year))
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()  # the summary takes focus (forms.js)
    expect(summary).to_contain_text("That date does not exist")
    expect(page.get_by_label("Day")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Year")).to_have_value(str(birth.year))
    checks.check(page, "activate: impossible date")
    page.get_by_label("Month").select_option(label="June")
    page.get_by_label("Day").fill(str(birth.day))
    page.get_by_role("button", name="Continue").click()

    # --- step 2: email + password once, rules shown before submitting, a show-password button
    expect(page).to_have_url(re.compile(r"/activate/account$"))
    expect(page.locator("#password-rules")).to_contain_text("at least 12 characters")
    password = page.get_by_label("Choose a password")
    assert "password-rules" in (password.get_attribute("aria-describedby") or "")
    checks.check(page, "activate: email and password")
    page.get_by_label("Email").fill(email)
    password.fill(f"{given.lower()}{family.lower()}{birth.year}")  # built from the patient's own details
    toggle = page.get_by_role("button", name="Show password")
    toggle.click()
    expect(password).to_have_attribute("type", "text")
    expect(page.get_by_role("button", name="Hide password")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_contain_text("Do not build your password from your name")
    expect(page.get_by_label("Choose a password")).to_have_value("")  # a refused password is typed again
    expect(page.get_by_label("Choose a password")).to_have_attribute("type", "password")
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()

    # --- step 3 straight away: the authenticator (the email link can wait)
    expect(page).to_have_url(re.compile(r"/signin/setup$"))
    expect(page.locator(".step-count")).to_have_text("Step 3 of 3")
    expect(page.locator("svg.qr-code, .qr svg").first).to_be_visible()
    open_app = page.get_by_role("button", name="Open in authenticator app")
    assert (open_app.get_attribute("href") or "").startswith("otpauth://totp/")
    checks.check(page, "MFA enrolment")
    secret_el = page.locator("code#totp-secret")
    secret = secret_el.get_attribute("data-secret") or ""
    assert re.sub(r"\s+", "", secret_el.inner_text()) == secret and len(secret) == 32
    assert f"secret={secret}" in open_app.get_attribute("href")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.bring_to_front()  # the clipboard answers only a focused page
    page.get_by_role("button", name="Copy the key").click()
    expect(page.locator("#copy-key-status")).to_have_text("Key copied.")
    assert page.evaluate(CLIPBOARD) == secret
    step = int(time.time() // 30)
    code = pyotp.TOTP(secret).at(step * 30)
    other = oathtool_code(secret)
    if other is not None and int(time.time() // 30) == step:
        assert other == code, "pyotp and oathtool disagree on the TOTP code"
    page.get_by_label("6-digit code from your app").fill(code)
    page.get_by_role("button", name="Turn on two-step verification").click()

    # --- recovery codes (shown once)
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and all(re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", c) for c in codes), codes
    checks.check(page, "recovery codes")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as a text file").click()
    assert download.value.suggested_filename == "recovery-codes.txt"
    assert open(download.value.path(), encoding="utf-8").read().split() == codes
    page.get_by_role("button", name="Copy the codes").click()
    expect(page.locator("#codes-status")).to_have_text("Codes copied.")
    assert (page.evaluate(CLIPBOARD) or "").split() == codes
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator(".site-header")).to_be_hidden()
    expect(page.locator("#recovery-codes")).to_be_visible()
    page.emulate_media(media="screen")

    # --- the confirmation email, opened later: it only confirms the address
    messages = [m for m in mailbox.wait_for(2, timeout=10) if m["To"] == email]
    links = [LINK.search(m.get_body(preferencelist=("plain",)).get_content()) for m in messages]
    link = next((found for found in links if found), None)
    assert link and link.group(0).startswith(live_server.url), "no verification email reached the SMTP server"
    page.get_by_role("button", name=re.compile("I have saved my codes")).click()
    expect(page).to_have_url(re.compile(r"/home$"))
    expect(page.locator("h1")).to_contain_text(given)
    checks.check(page, "patient home")
    page.goto(link.group(0))
    expect(page).to_have_url(re.compile(r"/home$"))
    expect_flash(page, "Your email address is confirmed")
    sign_out(page)
    # the confirmation rides on the URL: Clear-Site-Data "cookies" wipes the session cookie (and flashes)
    assert "reason=signed_out" in page.url
    expect_flash(page, "You have signed out.")
    checks.check(page, "signed out")

    # --- password + TOTP (a code from a later step than the enrolment one: replay protection)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    checks.check(page, "TOTP step")
    code2, step = fresh_totp(secret, step)
    page.get_by_label("6-digit code").fill(code2)
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    page.get_by_role("link", name="My record").first.click()
    expect(page.locator("h1")).to_have_text("My record")
    expect(page.locator("main")).to_contain_text(family)
    checks.check(page, "my record")
    sign_out(page)

    # --- password + recovery code
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    expect(page).to_have_url(re.compile(r"/signin/recovery$"))
    checks.check(page, "recovery code step")
    page.get_by_label("Recovery code").fill(codes[3].lower())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    # the warning is flashed after the session renewal (complete_mfa clears the session)
    expect_flash(page, "You have 9 left")
    checks.check(page, "home after recovery code")

    # --- idle warning: opens WARNING_SECONDS before the idle limit (the browser's clock is driven)
    dialog = page.locator("#session-timeout-dialog")
    page.clock.install()
    page.reload()
    page.clock.fast_forward((IDLE_SECONDS - WARNING_SECONDS - 5) * 1000)
    expect(dialog).to_be_hidden()  # not early
    page.clock.fast_forward(6 * 1000)
    expect(dialog).to_be_visible()
    assert page.evaluate("document.getElementById('session-timeout-dialog').open") is True
    expect(page.locator("#session-stay")).to_be_focused()
    expect(page.locator("#session-timeout-remaining")).to_have_text(re.compile(r"^0:[0-3]\d$"))
    checks.check(page, "idle warning dialog")
    with page.expect_response(lambda r: r.url.endswith("/account/keepalive")) as ka:
        page.locator("#session-stay").click()
    assert ka.value.status == 200
    expect(dialog).to_be_hidden()
    page.goto("/account")
    assert path_of(page) == "/account", page.url
    expect(page.locator("h1")).to_have_text("Account")
    # transparency: the staff member who issued the activation code is listed
    expect(page.locator("table#record-views")).to_contain_text(act["issued_by"].display_name)
    # the sign-in before this one (the TOTP one), in words: when, which device, from where
    previous = page.locator(".details-list div", has_text="Previous sign-in")
    expect(previous).to_contain_text("Chrome on Linux")
    expect(previous).to_contain_text("network address 127.0.0.1")
    checks.check(page, "account")
    page.get_by_role("link", name="Where you are signed in").click()
    expect(page.locator("table#sessions tbody tr")).to_have_count(1)
    checks.check(page, "sessions")
    page.goto("/account/password")
    checks.check(page, "change password")
    page.goto("/account/recovery-codes")
    expect(page.locator("main")).to_contain_text("You have 9 unused recovery codes.")
    checks.check(page, "new recovery codes")

    # --- letting it run out: browser clock jumps past the warning and the limit; the server's idle
    # clock is aged to match (its own check decides, not the script)
    page.goto("/home")  # the clock installed above keeps driving this page's timer
    expect(page.locator("h1")).to_contain_text(given)
    page.clock.fast_forward((IDLE_SECONDS - WARNING_SECONDS + 1) * 1000)
    expect(dialog).to_be_visible()
    assert seed.age_sessions(email, IDLE_SECONDS + 5) == 1
    page.clock.fast_forward(WARNING_SECONDS * 1000)
    page.wait_for_url(re.compile(r"/signin\?reason=timeout"))
    assert path_of(page) == "/signin"
    expect_flash(page, "signed out after a period of inactivity")
    checks.check(page, "signed out by idle timeout")
    page.goto("/home")
    assert path_of(page) == "/signin", "the expired session still opened a signed-in page"

    checks.assert_clean()

"""Journey 1: a patient activates with the clinic's code, confirms the email from the real SMTP mailbox,
enrols an authenticator, keeps the recovery codes, signs in with TOTP and with a recovery code, and
meets the idle-timeout warning (stay signed in, then let it run out)."""

from __future__ import annotations

import re
import time
from datetime import date

import pyotp
import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import (IDLE_SECONDS, WARNING_SECONDS, expect, flash_texts, fresh_totp, oathtool_code,
                                path_of, sign_out)

pytestmark = pytest.mark.e2e

LINK = re.compile(r"https?://\S+/activate/verify/\S+")


def test_activation_enrolment_sign_in_and_idle_timeout(page, seed, mailbox, checks, live_server):
    given, family, birth = "Ines", "Journeyman", date(1984, 6, 2)
    act = seed.activation(given=given, family=family, birth=birth)
    email = "ines.journeyman@patient.example"

    # --- activation -> "check your email"
    page.goto("/")
    checks.check(page, "landing")
    page.get_by_role("button", name="Activate your account").click()  # a link styled (and announced) as a button
    expect(page).to_have_url(re.compile(r"/activate$"))
    checks.check(page, "activate")
    page.get_by_label("Activation code").fill(act["code"].lower().replace("-", " "))  # forgiving input
    page.get_by_label("Date of birth").fill(birth.isoformat())
    page.get_by_label("Email").fill(email)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    checks.check(page, "check email")

    # --- the verification link from the real SMTP mailbox
    messages = [m for m in mailbox.wait_for(1, timeout=10) if m["To"] == email]
    assert messages, "no verification email reached the SMTP server"
    body = messages[-1].get_body(preferencelist=("plain",)).get_content()
    link = LINK.search(body)
    assert link, body
    assert link.group(0).startswith(live_server.url)
    page.goto(link.group(0))
    expect(page).to_have_url(re.compile(r"/signin$"))
    assert any("Your email is confirmed" in t for t in flash_texts(page)), flash_texts(page)
    checks.check(page, "sign-in after email confirmed")

    # --- password, then the required enrolment
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/signin/setup$"))
    expect(page.locator("svg.qr-code, .qr svg").first).to_be_visible()
    checks.check(page, "MFA enrolment")
    secret_el = page.locator("code#totp-secret")
    secret = secret_el.get_attribute("data-secret") or ""
    assert re.sub(r"\s+", "", secret_el.inner_text()) == secret and len(secret) == 32
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
    page.get_by_role("button", name=re.compile("I have saved my codes")).click()
    expect(page).to_have_url(re.compile(r"/home$"))
    expect(page.locator("h1")).to_contain_text(given)
    checks.check(page, "patient home")
    sign_out(page)
    # the confirmation rides on the URL: Clear-Site-Data "cookies" wipes the session cookie (and flashes)
    assert "reason=signed_out" in page.url
    assert any("You have signed out." in t for t in flash_texts(page)), flash_texts(page)
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
    assert any("You have 9 left" in t for t in flash_texts(page)), flash_texts(page)
    loaded = time.monotonic()
    checks.check(page, "home after recovery code")

    # --- idle warning: opens WARNING_SECONDS before the idle limit (real time, ~10 s here)
    dialog = page.locator("#session-timeout-dialog")
    wait_s = IDLE_SECONDS - WARNING_SECONDS + 8
    expect(dialog).to_be_visible(timeout=wait_s * 1000)
    opened_after = time.monotonic() - loaded
    assert opened_after >= IDLE_SECONDS - WARNING_SECONDS - 2, f"dialog opened too early ({opened_after:.1f}s)"
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
    page.clock.install()
    page.goto("/home")
    expect(page.locator("h1")).to_contain_text(given)
    page.clock.fast_forward((IDLE_SECONDS - WARNING_SECONDS + 1) * 1000)
    expect(dialog).to_be_visible()
    assert seed.age_sessions(email, IDLE_SECONDS + 5) == 1
    page.clock.fast_forward(WARNING_SECONDS * 1000)
    page.wait_for_url(re.compile(r"/signin\?reason=timeout"))
    assert path_of(page) == "/signin"
    assert any("signed out after a period of inactivity" in t for t in flash_texts(page)), flash_texts(page)
    checks.check(page, "signed out by idle timeout")
    page.goto("/home")
    assert path_of(page) == "/signin", "the expired session still opened a signed-in page"

    checks.assert_clean()

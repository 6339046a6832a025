"""Passkey journeys in Chromium with a virtual authenticator (Chrome DevTools Protocol
`WebAuthn.enable` / `WebAuthn.addVirtualAuthenticator` through Playwright's CDP session): enrol from
the account page, sign in with password + passkey and with a passkey alone, remove it, and a removed
passkey refused; a Spanish patient on a phone chooses a passkey as the first second factor at
activation and signs in with it. axe-core at 1280 px and 375 px on every page, no sideways scroll.

WebAuthn needs a domain name as the relying-party id (browsers refuse IP addresses), so these
journeys browse the live server as http://localhost:<port> with WEBAUTHN_RP_ID=localhost."""

from __future__ import annotations

import os
import re
from datetime import date

import pytest

from tests.e2e.conftest import DESKTOP, PHONE, expect, expect_flash
from tests.e2e.test_spanish_ui import spanish

pytestmark = pytest.mark.e2e


@pytest.fixture()
def localhost(live_server, fresh_limits):
    port = live_server.url.rsplit(":", 1)[1]
    cfg = live_server.app.config
    saved = {key: cfg.get(key) for key in ("WEBAUTHN_RP_ID", "WEBAUTHN_ORIGIN")}
    cfg["WEBAUTHN_RP_ID"] = "localhost"
    cfg["WEBAUTHN_ORIGIN"] = f"http://localhost:{port}"
    yield f"http://localhost:{port}"
    cfg.update(saved)


class Device:
    """A browser context with a platform authenticator (resident keys, user verification) attached."""

    def __init__(self, browser, base_url: str, viewport: dict, locale: str, autofill: bool = False):
        self.context = browser.new_context(base_url=base_url, viewport=viewport, locale=locale,
                                           timezone_id="America/Chicago")
        self.context.set_default_timeout(15_000)
        if not autofill:
            # The virtual authenticator answers a conditional (autofill) request at once, where a person
            # would pick the passkey from the email field's suggestions: these journeys press the buttons.
            self.context.add_init_script("Object.defineProperty(window.PublicKeyCredential || {}, "
                                         "'isConditionalMediationAvailable', {value: undefined});")
        self.page = self.context.new_page()
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator_id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]

    def credentials(self) -> list[dict]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})["credentials"]

    def close(self):
        self.context.close()


@pytest.fixture()
def device_factory(browser, localhost, request):
    made = []

    def make(viewport=DESKTOP, locale="en-US", autofill=False) -> Device:
        device = Device(browser, localhost, viewport, locale, autofill)
        made.append(device)
        return device

    yield make
    for device in made:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            try:
                device.page.screenshot(path=f"/tmp/portal-e2e-{request.node.name}.png", full_page=True)
                open(f"/tmp/portal-e2e-{request.node.name}.html", "w").write(device.page.content())
            except Exception:
                pass
        device.close()


def shot(page, name: str) -> None:
    """Screenshots for a human look when PORTAL_E2E_SHOTS names a folder."""
    folder = os.environ.get("PORTAL_E2E_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def _password_step(page, email, password, es=lambda s: s):
    page.goto("/signin")
    page.get_by_label(es("Email")).fill(email)
    page.get_by_label(es("Password"), exact=True).fill(password)
    page.get_by_role("button", name=es("Continue")).click()
    page.wait_for_load_state("load")


def _sign_out(page):
    page.locator("#signout-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/signin"))


def test_enrol_sign_in_with_password_and_passkey_then_alone_remove_and_refused(device_factory, seed, checks):
    device = device_factory()
    page = device.page
    account = seed.patient_account(given="Paz")

    # Signed in the usual way (password + app code), the account page leads to passkeys.
    _password_step(page, account.email, account.password)
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    page.goto("/account")
    page.locator("main a", has_text="Passkeys").first.click()
    expect(page.locator("h1")).to_have_text("Passkeys")
    checks.check(page, "passkeys: none yet")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("h1")).to_have_text("Add a passkey")
    expect(page.get_by_role("heading", name="What is a passkey?")).to_be_visible()
    checks.check(page, "add a passkey")
    page.get_by_label("Name for this passkey").fill("Work laptop")
    page.get_by_role("button", name="Create a passkey").click()
    expect(page).to_have_url(re.compile(r"/account/passkeys$"))
    expect_flash(page, "Work laptop")
    expect(page.locator("#passkeys")).to_contain_text("Work laptop")
    expect(page.locator("#passkeys")).to_contain_text("Not used yet")
    checks.check(page, "passkeys: one")
    shot(page, "list")
    assert len(device.credentials()) == 1 and device.credentials()[0]["isResidentCredential"]

    # Password, then the passkey as the second step.
    _sign_out(page)
    _password_step(page, account.email, account.password)
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    checks.check(page, "second step: passkey or code")
    shot(page, "second-step")
    page.get_by_role("button", name="Use my passkey").click()
    expect(page).to_have_url(re.compile(r"/home$"))

    # A passkey alone: no email, no password.
    _sign_out(page)
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    checks.check(page, "sign-in page with passkey")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    page.goto("/account/passkeys")
    expect(page.locator("#passkeys")).not_to_contain_text("Not used yet")

    # Remove it (the last one: password + a code from the app).
    page.locator("#passkeys a", has_text="Remove").click()
    expect(page.locator("h1")).to_contain_text("Work laptop")
    checks.check(page, "remove a passkey")
    page.get_by_label("Current password").fill(account.password)
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(account.totp())
    page.get_by_role("button", name="Remove this passkey").click()
    expect(page).to_have_url(re.compile(r"/account/passkeys$"))
    expect(page.locator("main")).to_contain_text("You have no passkeys yet.")

    # The authenticator still holds the key; the portal no longer accepts it.
    _sign_out(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator(".error-summary")).to_contain_text("not registered for this portal")
    expect(page).to_have_url(re.compile(r"/signin/passkey$"))
    checks.check(page, "removed passkey refused")
    checks.assert_clean()


def test_spanish_phone_activation_with_a_passkey_as_the_first_choice(device_factory, seed, checks):
    es = spanish()
    assert es is not None, "compile the catalogs"
    device = device_factory(viewport=PHONE, locale="es-ES")
    page = device.page
    birth = date(1958, 4, 9)
    act = seed.activation(given="Amparo", family="Llave", birth=birth)
    email = "amparo.llave@patient.example"
    password = "plátano verde 1958 nube"

    page.goto("/activate")
    page.get_by_label(es("Activation code")).fill(act["code"])
    page.get_by_label(es("Day")).fill(str(birth.day))
    page.get_by_label(es("Month")).select_option(str(birth.month))
    page.get_by_label(es("Year")).fill(str(birth.year))
    page.get_by_role("button", name=es("Continue")).click()
    expect(page).to_have_url(re.compile(r"/activate/account$"))
    page.get_by_label(es("Email")).fill(email)
    page.get_by_label(es("Choose a password"), exact=True).fill(password)
    page.get_by_role("button", name=es("Continue")).click()
    expect(page).to_have_url(re.compile(r"/signin/setup$"))

    # The passkey is offered first, in plain Spanish.
    expect(page.get_by_role("heading", name=es("Easiest: use a passkey"))).to_be_visible()
    checks.check(page, "es: set-up offers a passkey first")
    shot(page, "es-setup")
    page.get_by_role("button", name=es("Set up a passkey")).click()
    expect(page).to_have_url(re.compile(r"/signin/setup/passkey$"))
    expect(page.get_by_role("heading", name=es("What is a passkey?"))).to_be_visible()
    checks.check(page, "es: create a passkey")
    shot(page, "es-create")
    page.get_by_role("button", name=es("Create a passkey")).click()
    expect(page.locator("h1")).not_to_have_text(es("Set up a passkey"))
    checks.check(page, "es: recovery codes after a passkey")
    page.locator("main a, main button").filter(has_text=re.compile(".")).last.wait_for()
    assert device.credentials(), "the virtual authenticator holds the new passkey"

    # Next time: the passkey alone, on the Spanish sign-in page.
    page.goto("/home")
    _sign_out(page)
    button = page.get_by_role("button", name=es("Sign in with a passkey"))
    expect(button).to_be_visible()
    checks.check(page, "es: sign-in with a passkey")
    shot(page, "es-signin")
    button.click()
    expect(page).to_have_url(re.compile(r"/home$"))
    checks.assert_clean()


def test_autofill_offers_the_passkey_in_the_email_field(device_factory, seed):
    """Conditional mediation: the sign-in page quietly asks for a passkey, offered in the email field's
    autofill (autocomplete="username webauthn"); the virtual authenticator picks it at once."""
    device = device_factory(autofill=True)
    page = device.page
    account = seed.patient_account(given="Sol")
    _password_step(page, account.email, account.password)
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))
    page.goto("/account/passkeys/add")
    page.get_by_role("button", name="Create a passkey").click()
    expect(page).to_have_url(re.compile(r"/account/passkeys$"))
    _sign_out(page)  # lands on the sign-in page, which signs in through the autofill request
    expect(page).to_have_url(re.compile(r"/home$"))

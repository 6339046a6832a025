"""Billing journeys in Chromium against localstripe's Stripe.js stand-in (its own process, no mocks): a
patient pays a statement by card on a desktop and sees the receipt and the new balance; a Spanish-speaking
patient pays on a phone with a card that asks for 3-D Secure; billing staff post a charge, issue a
statement, open its PDF and refund a payment. axe-core at 1280 px and 375 px on every page."""

from __future__ import annotations

import re

import pytest

from tests.billing.stripe_fake import LocalStripe
from tests.e2e.conftest import PHONE, expect, expect_flash
from tests.e2e.conftest import Checks
from tests.e2e.test_scheduling_journeys import _sign_in, link

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stripe_fake(live_server):
    fake = LocalStripe()
    saved = {k: live_server.app.config.get(k) for k in fake.config()}
    live_server.app.config.update(fake.config())
    fake.register_webhook(live_server.url + "/billing/stripe/webhook")
    yield fake
    live_server.app.config.update(saved)
    fake.stop()


def _bill(seed, account, charges=None):
    from sqlalchemy import select

    from portal.patients.models import Patient
    from tests.billing.helpers import CHARGES, bill

    with seed.app.app_context():
        from portal.extensions import db

        patient = db.session.execute(select(Patient).where(Patient.public_id == account.patient_public_id)).scalar_one()
        statement = bill(patient, charges or CHARGES)
        return statement.public_id


def _fill_card(page, number):
    card = page.locator("#card-element")
    card.locator("input[placeholder=number]").fill(number)
    card.locator("input[placeholder=exp_month]").fill("12")
    card.locator("input[placeholder=exp_year]").fill("34")
    card.locator("input[placeholder=cvc]").fill("123")
    card.locator("input[placeholder=postal_code]").fill("62701")


def test_patient_pays_a_statement_by_card_and_sees_the_receipt(page, seed, checks, stripe_fake):
    checks = Checks(checks)
    account = seed.patient_account(given="Paula")
    _bill(seed, account)
    _sign_in(page, account)
    expect(page.locator(".home-card", has=page.locator("h2", has_text="Billing"))).to_contain_text("$262.00")
    checks.check(page, "home with billing card")
    link(page, "View and pay your bill").click()
    expect(page.locator("h1")).to_have_text("Billing")
    checks.check(page, "billing page")
    link(page, re.compile(r"^S-\d+")).click()
    expect(page.locator("#statement-items")).to_contain_text("Lipid panel")
    checks.check(page, "statement online")
    link(page, "Pay $262.00").click()
    expect(page.locator("#card-element input")).to_have_count(5)
    checks.check(page, "pay page")
    _fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay now").click()
    expect(page).to_have_url(re.compile(r"/billing/payments/[0-9a-f]{32}$"), timeout=20_000)
    expect(page.locator("main")).to_contain_text("Thank you! Your payment was received.")
    expect(page.locator("main")).to_contain_text("$262.00")
    checks.check(page, "receipt")
    link(page, "Back to billing").click()
    expect(page.locator(".billing-balance")).to_have_text("$0.00")
    expect(page.locator("#payments")).to_contain_text("Receipt")
    checks.assert_clean()


def test_spanish_patient_pays_part_on_a_phone_with_3d_secure(page, seed, checks, stripe_fake):
    checks = Checks(checks)
    page.set_viewport_size(PHONE)
    account = seed.patient_account(given="Yolanda", language="es")
    statement = _bill(seed, account)
    _sign_in(page, account)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    page.goto(f"/billing/statements/{statement}/pay")
    expect(page.locator("h1")).to_contain_text("Pagar el estado de cuenta")
    checks.check(page, "pagar")
    page.get_by_label("Otro importe").check()
    page.get_by_label("Importe", exact=True).fill("50.00")
    _fill_card(page, "4000002500003155")
    page.get_by_role("button", name="Pagar ahora").click()
    # localstripe's stand-in for the bank's 3-D Secure page: once for the card, once for the payment
    for _ in range(2):
        page.get_by_role("button", name="Complete authentication").click()
    expect(page).to_have_url(re.compile(r"/billing/payments/[0-9a-f]{32}$"), timeout=20_000)
    expect(page.locator("main")).to_contain_text("¡Gracias! Recibimos su pago.")
    checks.check(page, "recibo")
    page.goto("/billing")
    expect(page.locator(".billing-balance")).to_have_text(re.compile(r"212,00|212\.00"))
    checks.check(page, "facturación")
    checks.assert_clean()


def test_declined_card_says_why_and_charges_nothing(page, seed, stripe_fake):
    account = seed.patient_account(given="Dana")
    statement = _bill(seed, account)
    _sign_in(page, account)
    page.goto(f"/billing/statements/{statement}/pay")
    _fill_card(page, "4000000000000341")
    page.get_by_role("button", name="Pay now").click()
    expect(page.locator("#pay-error")).to_contain_text("declined")
    expect(page.locator("#pay-submit")).to_be_enabled()
    _fill_card(page, "4242424242424242")  # a new try with a fresh attempt and SetupIntent
    page.get_by_role("button", name="Pay now").click()
    expect(page).to_have_url(re.compile(r"/billing/payments/[0-9a-f]{32}$"), timeout=20_000)


def test_billing_staff_post_issue_and_refund(page, seed, checks, stripe_fake):
    checks = Checks(checks)
    patient = seed.patient_account(given="Rafael", family="Quintero")
    statement = _bill(seed, patient)
    # the patient pays through the real flow (Stripe.js's part done as the page would)
    from tests.billing.test_payments import VISA

    _pay_through_services(seed, patient, statement, stripe_fake, VISA)
    staff = seed.staff("billing", name="Bea Billing")
    _sign_in(page, staff, home="/staff")
    page.locator("nav a", has_text="Billing").first.click()
    checks.check(page, "billing staff home")
    page.get_by_label("Find a patient (name or MRN)").fill("Quintero")
    page.get_by_role("button", name="Search").click()
    link(page, "Quintero, Rafael").click()
    expect(page.locator("h1")).to_contain_text("Rafael Quintero")
    checks.check(page, "account")
    page.get_by_label("Type").select_option("charge")
    page.get_by_label("Code (CPT or internal)").fill("99214")
    page.get_by_label("Description").fill("Office visit, moderate complexity")
    page.get_by_label("Amount", exact=True).fill("210.00")
    page.get_by_role("button", name="Post entry").click()
    expect_flash(page, "Entry posted")
    page.get_by_role("button", name="Issue a statement now").click()
    expect(page.locator("h1")).to_contain_text("Statement S-")
    expect(page.locator("#statement-items")).to_contain_text("Office visit, moderate complexity")
    checks.check(page, "staff statement")
    with page.expect_response(re.compile(r"\.pdf\?lang=es$")) as pdf:
        page.evaluate("url => fetch(url)", page.locator("a", has_text="PDF in Spanish").get_attribute("href"))
    assert pdf.value.status == 200 and pdf.value.headers["content-type"] == "application/pdf"
    link(page, "Back to the account of").click()
    link(page, "Refund").click()
    checks.check(page, "refund")
    page.get_by_label("Amount to refund").fill("25.00")
    page.get_by_label("Reason").fill("Lab fee charged twice")
    page.get_by_role("button", name="Refund through Stripe").click()
    expect_flash(page, "Refund posted")
    expect(page.locator("#ledger")).to_contain_text("Lab fee charged twice")
    page.goto("/billing/staff/reports")
    expect(page.locator("#by-day")).to_contain_text("$25.00")
    checks.check(page, "reports")
    page.get_by_role("button", name="Recompute the aging now").click()  # the aging snapshot, on demand
    expect_flash(page, "aging")
    expect(page).to_have_url(re.compile(r"/billing/staff/reports$"))
    for _ in range(30):  # recomputed after the request commits (a background thread in the embedded default)
        if page.locator("[data-aging-as-of]").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("[data-aging-as-of]")).to_be_visible()
    checks.check(page, "reports after recompute")
    checks.assert_clean()


def _pay_through_services(seed, account, statement_id, fake, card):
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.billing import services
    from portal.extensions import db

    with seed.app.test_request_context("/"):
        user = db.session.execute(select(User).where(User.email == account.email)).scalar_one()
        ctx = services.pay_context(user, statement_id)
        pm = fake.confirm_setup(ctx["client_secret"], card)
        attempt = services.start_payment(user, statement_id, attempt_key=ctx["attempt_key"], payment_method=pm,
                                         amount_choice="full", amount_text=None, save_card=False)
        assert attempt.status == "succeeded"
        db.session.commit()

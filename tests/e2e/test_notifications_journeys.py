"""Journeys: a patient chooses how we reach them (adds a mobile number, confirms it with the code read
from the file SMS backend's folder, chooses texts for reminders, reads the page in Spanish); support staff
work the queue of texts from patients and see a patient's channel. axe-core at 1280 and 375 px."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import expect, sign_in_password

pytestmark = pytest.mark.e2e

PHONE = "+13125550123"


@pytest.fixture()
def sms_folder(live_server, tmp_path):
    """The live server's file SMS backend writes into this test's folder."""
    app = live_server.app
    saved = {k: app.config[k] for k in ("SMS_FILE_DIR", "SMS_BACKEND", "SMS_QUIET_HOURS")}
    folder = tmp_path / "sms"
    app.config.update(SMS_FILE_DIR=str(folder), SMS_BACKEND="file", SMS_QUIET_HOURS="")
    yield folder
    app.config.update(saved)


def _texts(folder: Path) -> list[str]:
    return [p.read_text().partition("\n\n")[2].strip() for p in sorted(folder.glob("*.txt"))]


def _sign_in(page, account):
    sign_in_password(page, account.email, account.password)
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/home$"))


def test_patient_confirms_a_mobile_number_and_chooses_texts(page, seed, checks, sms_folder):
    account = seed.patient_account(given="Nora", family="Avisos")
    _sign_in(page, account)
    page.get_by_role("link", name="Choose how we reach you").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications: how we reach you")
    checks.check(page, "notification preferences")

    # a bad number: a field error, the typed value kept
    page.get_by_label("Mobile number", exact=True).fill("555-0100")
    page.get_by_label(re.compile("I agree to get text messages")).check()
    page.get_by_role("button", name="Text me a code").click()
    expect(page.locator("#phone-error")).to_contain_text("not a valid phone number")
    expect(page.get_by_label("Mobile number", exact=True)).to_have_value("555-0100")
    checks.check(page, "notification preferences, bad number")

    page.get_by_label("Mobile number", exact=True).fill("(312) 555-0123")
    page.get_by_role("button", name="Text me a code").click()
    expect(page.locator(".flashes")).to_contain_text("We texted you a 6-digit code")
    [text] = _texts(sms_folder)
    code = re.search(r"\b(\d{6})\b", text).group(1)
    checks.check(page, "enter the texted code")
    page.get_by_label("6-digit code from the text").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Confirm my number").click()
    expect(page.locator("#code-error")).to_contain_text("That code is not right")
    page.get_by_label("6-digit code from the text").fill(code)
    page.get_by_role("button", name="Confirm my number").click()
    expect(page.locator(".flashes")).to_contain_text("Your mobile number is confirmed")
    expect(page.locator("main")).to_contain_text("(312) 555-0123")

    reminders = page.get_by_role("radiogroup", name="Appointment reminders")
    reminders.get_by_label("Text message").check()
    page.get_by_role("radiogroup", name="Replies to your messages").get_by_label("Both").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.locator(".flashes")).to_contain_text("Your choices are saved.")
    expect(page.get_by_role("radiogroup", name="Appointment reminders").get_by_label("Text message")).to_be_checked()
    checks.check(page, "notification preferences, texts on")

    # the same page in Spanish, phone width included (checks.check runs axe at 1280 and 375 px)
    page.locator("form.lang-switch").get_by_role("button", name="Español", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", level=1)).to_have_text("Avisos: cómo nos comunicamos con usted")
    expect(page.get_by_role("radiogroup", name="Recordatorios de citas").get_by_label("Mensaje de texto")) \
        .to_be_checked()
    checks.check(page, "notification preferences (es)")
    page.get_by_role("link", name="Volver a su página de inicio").click()
    expect(page.get_by_role("link", name="Elija cómo nos comunicamos con usted")).to_be_visible()
    expect(page.locator("main")).to_contain_text("termina en 23")
    checks.assert_clean()


def test_support_works_the_texts_queue_and_sees_the_channel(page, seed, checks):
    patient = seed.patient_account(given="Ines", family="Textos")
    staff = seed.staff("support", name="Sofia Support")
    with seed.app.app_context():
        from sqlalchemy import select

        from portal.core.db import utcnow
        from portal.extensions import db
        from portal.notifications.models import InboundText, Notice, NotificationSettings
        from portal.patients.models import Patient

        record = db.session.execute(select(Patient).where(Patient.public_id == patient.patient_public_id)).scalar_one()
        db.session.add(NotificationSettings(patient_id=record.id, choices={"appointment_reminder": "sms"},
                                            phone_e164=PHONE, phone_verified_at=utcnow(), sms_consent_at=utcnow()))
        db.session.add(Notice(patient_id=record.id, kind="statement_ready", channel="email", to_address=patient.email,
                              link="http://x", context={}, status="failed", attempts=8, last_error="SMTP 451",
                              failed_at=utcnow()))
        db.session.add(InboundText(message_sid=f"SMe2e{record.id:028d}", from_phone=PHONE, patient_id=record.id,
                                   body="Can I come in earlier tomorrow?"))
        db.session.commit()

    _sign_in_staff(page, staff)
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Incoming texts")).click()
    expect(page.locator("main")).to_contain_text("Can I come in earlier tomorrow?")
    checks.check(page, "texts from patients")
    item = page.locator("li.text-item", has_text="Can I come in earlier tomorrow?")
    item.get_by_role("button", name="Mark as dealt with").click()
    expect(page.locator(".flashes")).to_contain_text("Marked as dealt with.")
    expect(page.locator("main")).not_to_contain_text("Can I come in earlier tomorrow?")
    page.locator("#failed-notices").get_by_role("link", name="Ines Textos").click()
    panel = page.locator("section", has=page.locator("#notices-panel-h"))
    expect(panel).to_contain_text("(312) 555-0123")
    expect(panel).to_contain_text("SMTP 451")
    checks.check(page, "support patient page with notifications")
    page.locator("form.lang-switch").get_by_role("button", name="Español", exact=True).click()
    expect(page.locator("#notices-panel-h")).to_have_text("Avisos")
    checks.check(page, "support patient page (es)")
    checks.assert_clean()


def _sign_in_staff(page, staff):
    sign_in_password(page, staff.email, staff.password)
    page.get_by_label("6-digit code").fill(staff.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/staff$"))

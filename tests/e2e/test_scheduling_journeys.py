"""Scheduling journeys in Chromium: a patient books, checks in (with an insurance-card photo and a
questionnaire saved and resumed), reschedules and cancels; a Spanish-speaking patient joins a video
visit and gives feedback; support books for a patient from the patient page and finds it on the
schedule; admin opens the set-up. axe-core at 1280 px and 375 px on every page, no sideways scroll."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from PIL import Image

from tests.e2e import scheduling_seed
from tests.e2e.conftest import Checks, expect, expect_flash, sign_in_password

pytestmark = pytest.mark.e2e


def _sign_in(page, account, home="/home"):
    sign_in_password(page, account.email, account.password)
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(home + "$"))


def link(page, name):
    """A link in the page's main content by its text (buttons styled links have role=button)."""
    return page.locator("main a").filter(has_text=name).first


def _card_png(tmp_path):
    path = tmp_path / "card.png"
    Image.new("RGB", (60, 38), (20, 90, 160)).save(path, "PNG")
    return str(path)


def test_patient_books_checks_in_reschedules_and_cancels(page, seed, checks, tmp_path):
    checks = Checks(checks)
    ids = scheduling_seed.clinic(seed)
    account = seed.patient_account(given="Bruna")
    _sign_in(page, account)
    checks.check(page, "home with appointments card")
    link(page, "Book an appointment").click()
    checks.check(page, "book: visit type")
    link(page, re.compile(r"^\s*Consultation")).click()
    checks.check(page, "book: provider")
    link(page, re.compile(r"Dr\. Test Patel")).click()
    expect(page.locator("h2", has_text="Choose a time")).to_be_visible()
    checks.check(page, "book: times")
    page.locator(".sched-day").nth(2).locator("button").first.click()  # two days ahead: check-in open
    expect(page.locator("h1")).to_have_text("Review and confirm")
    checks.check(page, "book: review")
    page.get_by_label("Reason for the visit (optional)").fill("Sore knee after running")
    page.get_by_role("button", name="Confirm appointment").click()
    expect_flash(page, "You are booked")
    checks.check(page, "appointment page")

    # eCheck-in: contact, insurance with a card photo, medicines, questionnaire saved then sent
    link(page, "Check in online").click()
    checks.check(page, "check-in overview")
    link(page, "Contact details").click()
    page.get_by_label("Mobile or home phone").fill("555 010 7788")
    checks.check(page, "check-in contact")
    page.get_by_role("button", name="These are correct").click()
    link(page, re.compile(r"^\s*Insurance\s*$")).click()
    page.get_by_label("Insurance company").fill("Acme Health")
    page.get_by_label("Member ID").fill("AC-99812")
    page.get_by_label("Photo of the front of the card").set_input_files(_card_png(tmp_path))
    checks.check(page, "check-in insurance")
    page.get_by_role("button", name="Save insurance").click()
    link(page, "Medicines and allergies").click()
    page.get_by_label("No, something has changed").check()
    page.get_by_label(re.compile("What has changed")).fill("Stopped ibuprofen last week")
    checks.check(page, "check-in medicines")
    page.get_by_role("button", name="Save", exact=True).click()
    link(page, "Before your visit").click()
    page.get_by_label("What would you like to talk about at this visit?").fill("Knee pain on stairs")
    page.get_by_role("button", name="Save and finish later").click()
    expect(page.locator(".sched-checkin-steps")).to_contain_text("Started")
    link(page, "Before your visit").click()
    expect(page.get_by_label("What would you like to talk about at this visit?")).to_have_value("Knee pain on stairs")
    page.locator("label", has_text=re.compile(r"^\s*3\s*$")).first.click()
    page.locator("fieldset", has_text="interpreter").get_by_label("No").check()
    checks.check(page, "check-in questionnaire")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.locator(".alert-success").last).to_contain_text("You are checked in")
    checks.check(page, "check-in complete")

    # reschedule to a later day, then cancel
    link(page, "Back to the appointment").click()
    link(page, "Reschedule").click()
    link(page, "Later week").click()
    checks.check(page, "reschedule: times")
    page.locator(".sched-times button").nth(2).click()
    page.get_by_role("button", name="Confirm the new time").click()
    expect_flash(page, "moved")
    link(page, "Cancel appointment").click()
    checks.check(page, "cancel confirmation")
    page.get_by_role("button", name="Yes, cancel it").click()
    expect_flash(page, "cancelled")
    expect(page.locator("#past-h + ul")).to_contain_text("Cancelled")
    checks.check(page, "appointments list")
    assert ids["consult"]
    checks.assert_clean()


def test_spanish_patient_joins_a_video_visit_and_gives_feedback(page, context, seed, checks):
    checks = Checks(checks)
    scheduling_seed.clinic(seed)
    account = seed.patient_account(given="Yolanda", language="es")
    video = scheduling_seed.appointment(seed, account.patient_public_id, vt="video", starts_in=timedelta(minutes=10))
    scheduling_seed.appointment(seed, account.patient_public_id, starts_in=timedelta(days=-1, hours=-2),
                                status="completed")
    context.route("https://video.clinic.example/**",
                  lambda route: route.fulfill(status=200, content_type="text/html",
                                              body="<!doctype html><html lang=en><title>Video room</title>"
                                                   "<main><h1>Video room</h1></main></html>"))
    _sign_in(page, account)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    checks.check(page, "inicio")
    link(page, "Todas las citas").click()
    checks.check(page, "citas")
    page.locator(f"a[href='/appointments/{video}']").first.click()
    join = link(page, "Entrar a la visita por video")
    expect(join).to_be_visible()
    checks.check(page, "cita por video")
    join.click()
    expect(page).to_have_url(re.compile(r"^https://video\.clinic\.example/join/e2e-room-"))
    page.goto("/appointments")
    link(page, "Cuéntenos cómo le fue").click()
    checks.check(page, "opinión")
    page.get_by_label("5 - Excelente").check()
    page.get_by_label(re.compile("Algo que quiera contarnos")).fill("Muy amables, gracias")
    page.get_by_role("button", name="Enviar opinión").click()
    expect_flash(page, "Gracias por su opinión")
    checks.assert_clean()


def test_support_books_for_a_patient_and_admin_opens_the_setup(page, seed, checks):
    checks = Checks(checks)
    ids = scheduling_seed.clinic(seed)
    support = seed.staff("support", name="Sol Support")
    record = seed.patient_record(given="Tomasa", family="Schedulewell", birth=__import__("datetime").date(1966, 4, 2))
    _sign_in(page, support, home="/staff")
    expect(page.locator("h2", has_text="Today's schedule")).to_be_visible()
    checks.check(page, "staff home")
    page.goto("/support?q=Schedulewell")
    link(page, re.compile("Schedulewell")).click()
    link(page, "Book for this patient").click()
    link(page, re.compile(r"^\s*Consultation")).click()
    link(page, re.compile("First available")).click()
    link(page, re.compile("Test Clinic Main")).click()
    checks.check(page, "staff booking: times")
    page.locator(".sched-times button").first.click()
    expect(page.locator("main")).to_contain_text("Tomasa Schedulewell")
    page.get_by_role("button", name="Confirm appointment").click()
    expect_flash(page, "Booked")
    checks.check(page, "staff appointment page")
    link(page, "Back to the schedule").click()
    expect(page.locator("main table")).to_contain_text("Tomasa Schedulewell")
    checks.check(page, "schedule day")
    link(page, "Visit feedback").click()
    checks.check(page, "feedback report")
    page.locator("#signout-form button[type=submit]").click()
    admin = seed.staff("admin", name="Ada Admin")
    _sign_in(page, admin, home="/staff")
    page.get_by_role("link", name="Scheduling set-up").first.click()
    checks.check(page, "set-up")
    page.locator("main a[href*='/hours']").first.click()
    checks.check(page, "weekly hours")
    assert record["public_id"] and ids["patel"]
    checks.assert_clean()

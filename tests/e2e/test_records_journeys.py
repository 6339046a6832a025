"""Records journeys in Chromium: a patient reads their summary and lab results, opens a result with an
abnormal value, its trend and explanation, and downloads both exports; a Spanish-speaking patient reads
their results on a phone; a clinician holds a result and then releases it, and the patient sees it only
then. axe-core at 1280 px and 375 px on every page, no sideways scroll."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import expect, expect_flash
from tests.e2e.conftest import Checks
from tests.e2e.test_scheduling_journeys import _sign_in, link

pytestmark = pytest.mark.e2e


def _give_labs(seed, patient_public_id: str, key: str = "g") -> dict:
    """The demo lab panels for this patient, imported through the real importer; the newest glucose's id."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.patients.models import Patient
    from tests.records.helpers import a_result, give_labs

    with seed.app.test_request_context("/"):
        patient = db.session.execute(select(Patient).where(Patient.public_id == patient_public_id)).scalar_one()
        give_labs(patient, key)
        from portal.records.models import RecordItem

        db.session.add(RecordItem(patient_id=patient.id, source="e2e", fhir_id=f"med-{patient.public_id}",
                                  kind="medication", resource_type="MedicationRequest", display="Lisinopril 10 MG Oral Tablet",
                                  detail="Take 1 tablet by mouth once a day", active=True))
        db.session.commit()
        return {"glucose": a_result(patient, "2339-0").public_id, "hgb": a_result(patient, "718-7").public_id}


def test_patient_reads_results_and_downloads_the_record(page, seed, checks):
    checks = Checks(checks)
    account = seed.patient_account(given="Lena")
    ids = _give_labs(seed, account.patient_public_id)
    _sign_in(page, account)
    expect(page.locator("main")).to_contain_text("Test results")
    checks.check(page, "home with results card")
    link(page, "See my test results").click()
    expect(page.locator("h1")).to_have_text("Test results")
    expect(page.locator("main")).to_contain_text("Basic metabolic panel")
    checks.check(page, "results list")
    page.locator(f"main a[href$='/record/results/{ids['glucose']}']").first.click()
    expect(page.locator("h1")).to_have_text("Glucose")
    main = page.locator("main")
    expect(main).to_contain_text("High")  # in words, not only colour
    expect(main).to_contain_text("70 to 99")
    expect(main).to_contain_text("sugar in your blood")
    expect(page.locator("svg.trend-chart")).to_be_visible()
    expect(page.locator("#history-table tbody tr")).to_have_count(4)
    checks.check(page, "one result")
    # a question about the result is a message to the care team, with the result attached
    page.locator("main a", has_text="Ask about this").first.click()
    expect(page).to_have_url(re.compile(r"/messages/new\?"))
    expect(page.locator(".msg-ref")).to_contain_text("Glucose")

    page.goto("/record")
    expect(page.locator("h2", has_text="Latest vital signs")).to_be_visible()
    checks.check(page, "summary")
    # a refill request goes to the care team's inbox; the answer will arrive in that conversation
    page.locator("main a", has_text="Lisinopril 10 MG Oral Tablet").first.click()
    page.get_by_label("Pharmacy (name and town)").fill("Main Street Pharmacy, Riverside")
    page.get_by_role("button", name="Send refill request").click()
    expect_flash(page, "Refill request sent to your care team")
    expect(page).to_have_url(re.compile(r"/messages/[0-9a-f]+$"))
    expect(page.locator("main")).to_contain_text("Main Street Pharmacy, Riverside")
    checks.check(page, "refill request sent")
    page.goto("/record")
    expect(page.locator("main")).to_contain_text("Waiting for the care team")
    page.goto("/record/readings")
    page.get_by_label("Reading", exact=True).fill("135")
    page.get_by_label("Bottom number (diastolic), for blood pressure").fill("85")
    page.get_by_role("button", name="Save reading").click()
    expect_flash(page, "Reading saved")
    checks.check(page, "readings")

    page.goto("/record/export")
    checks.check(page, "download page")
    # the links download with the browser's own session (fetched through it: a PDF can take seconds here)
    pdf_href = page.get_by_role("link", name="Download everything as PDF").get_attribute("href")
    pdf = page.request.get(pdf_href, timeout=90_000)
    assert pdf.ok and pdf.body()[:4] == b"%PDF" and "attachment" in pdf.headers["content-disposition"]
    fhir_href = page.get_by_role("link", name="Download everything as a FHIR file").get_attribute("href")
    bundle = json.loads(page.request.get(fhir_href, timeout=90_000).body())
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) > 50
    checks.assert_clean()


def test_spanish_patient_reads_results_on_a_phone(page, seed, checks):
    checks = Checks(checks)
    account = seed.patient_account(given="Yesenia", language="es")
    ids = _give_labs(seed, account.patient_public_id, "y")
    page.set_viewport_size({"width": 375, "height": 800})
    _sign_in(page, account)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    page.goto("/record/results")
    expect(page.locator("h1")).to_have_text("Resultados de pruebas")
    checks.check(page, "resultados")
    page.goto(f"/record/results/{ids['hgb']}")
    expect(page.locator("h1")).to_have_text("Hemoglobina")
    expect(page.locator("main")).to_contain_text("Bajo")
    expect(page.locator("main")).to_contain_text("anemia")
    checks.check(page, "un resultado")
    checks.assert_clean()


def test_clinician_holds_then_releases_and_the_patient_sees_it_only_then(browser, live_server, seed, checks):
    checks = Checks(checks)
    account = seed.patient_account(given="Hollis")
    ids = _give_labs(seed, account.patient_public_id)
    clinician = seed.staff("clinician", name="Dr. E2E Clinician")
    staff_ctx = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    patient_ctx = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    staff_ctx.set_default_timeout(10_000)
    patient_ctx.set_default_timeout(10_000)
    try:
        doc = staff_ctx.new_page()
        _sign_in(doc, clinician, home="/staff")
        doc.goto(f"/staff/records/results/{ids['glucose']}")
        expect(doc.locator("h1")).to_have_text("Glucose")
        checks.check(doc, "staff result")
        doc.get_by_label("Reason for holding (kept in the audit log)").fill("I will call the patient first")
        from datetime import date, timedelta

        doc.get_by_label("Release automatically on").fill((date.today() + timedelta(days=3)).isoformat())
        doc.get_by_role("button", name="Hold result").click()
        expect_flash(doc, "Result held")

        pt = patient_ctx.new_page()
        _sign_in(pt, account)
        resp = pt.goto(f"/record/results/{ids['glucose']}")
        assert resp.status == 404

        doc.goto("/staff/records/results")
        expect(doc.locator("main")).to_contain_text("Held until")
        checks.check(doc, "results queue")
        doc.locator(f"main a[href$='/staff/records/results/{ids['glucose']}']").first.click()
        doc.get_by_role("button", name="Release to the patient now").click()
        expect_flash(doc, "Result released")

        resp = pt.goto(f"/record/results/{ids['glucose']}")
        assert resp.status == 200
        expect(pt.locator("h1")).to_have_text("Glucose")
    finally:
        staff_ctx.close()
        patient_ctx.close()
    checks.assert_clean()

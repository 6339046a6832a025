"""Journey 3: a support user (MFA enrolled) finds a patient, opens the record and issues an activation
code; an administrator lists the staff and filters the audit log."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.e2e.conftest import expect, path_of, sign_in_password, sign_out

pytestmark = pytest.mark.e2e


def _sign_in_with_totp(page, account, checks=None, label=None):
    sign_in_password(page, account.email, account.password)
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    if checks is not None:
        checks.check(page, label)
    page.get_by_label("6-digit code").fill(account.totp())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/staff$"))


def test_support_issues_activation_and_admin_reads_audit_log(page, seed, checks):
    support = seed.staff("support", name="Sofia Support")
    record = seed.patient_record(given="Marisol", family="Quintanilla", birth=date(1990, 2, 17))

    _sign_in_with_totp(page, support, checks, "staff TOTP step")
    expect(page.locator("h1")).to_contain_text("Sofia Support")
    checks.check(page, "staff home (support)")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    expect(page).to_have_url(re.compile(r"/support$"))
    checks.check(page, "find a patient")
    page.get_by_label("Name, MRN or date of birth").fill("quintanilla")
    page.get_by_role("button", name="Search").click()
    results = page.locator("table#patients")
    expect(results).to_be_visible()
    expect(results.locator("tbody tr")).to_have_count(1)
    checks.check(page, "search results")

    results.get_by_role("link", name="Quintanilla, Marisol").click()
    expect(page.locator("h1")).to_have_text("Marisol Quintanilla")
    expect(page.locator("main")).to_contain_text(record["mrn"])
    expect(page.locator("main")).to_contain_text("This patient has no portal account yet.")
    checks.check(page, "patient page")

    page.get_by_role("button", name="Issue a new activation code").click()
    code = page.locator("code#activation-code")
    expect(code).to_have_text(re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$"))
    checks.check(page, "activation code")
    page.get_by_role("link", name="Back to the patient").click()
    expect(page.locator("h1")).to_have_text("Marisol Quintanilla")

    # support has no admin pages
    resp = page.goto("/admin/staff")
    assert resp.status == 403 or path_of(page) != "/admin/staff", (resp.status, page.url)
    sign_out(page)

    # --- administrator
    admin = seed.staff("admin", name="Ada Admin")
    _sign_in_with_totp(page, admin)
    checks.check(page, "staff home (admin)")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Staff").click()
    expect(page).to_have_url(re.compile(r"/admin/staff$"))
    staff_table = page.locator("table#staff")
    expect(staff_table).to_contain_text(support.email)
    expect(staff_table.locator("tr", has_text=admin.email)).to_contain_text("This is you")
    checks.check(page, "staff list")
    page.get_by_role("button", name="Add a staff member").click()
    expect(page).to_have_url(re.compile(r"/admin/staff/new$"))
    page.get_by_role("button", name="Create the account").click()  # empty: errors on the fields
    expect(page.get_by_label("Full name")).to_have_attribute("aria-invalid", "true")
    checks.check(page, "add staff: errors")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(re.compile(r"/admin/audit$"))
    checks.check(page, "audit log")
    page.get_by_label("Staff or user email").fill(support.email)
    page.get_by_label("Action").select_option("account.activation.issued")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/admin/audit\?.*actor="))
    rows = page.locator("table#audit-events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(support.email)
    expect(rows.first).to_contain_text("account.activation.issued")
    expect(rows.first).to_contain_text(record["mrn"])
    expect(page.get_by_label("Staff or user email")).to_have_value(support.email)  # the filter stays shown
    checks.check(page, "audit log filtered")
    sign_out(page)

    checks.assert_clean()

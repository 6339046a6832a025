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
    page.get_by_label("Name, MRN, date of birth or phone number").fill("quintanilla")
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
    if page.locator("#session-timeout-dialog[open]").count():  # a slow axe run outlasted the 10-s warning
        page.locator("#session-stay").click()
    page.get_by_label("Staff or user email").fill(support.email)
    page.get_by_label("Action").select_option("account.activation.issued")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/admin/audit\?.*actor="))
    rows = page.locator("table#audit-events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(support.email)
    expect(rows.first).to_contain_text("Activation code issued")  # event names in words
    expect(rows.first).to_contain_text(record["mrn"])
    expect(page.get_by_label("Staff or user email")).to_have_value(support.email)  # the filter stays shown
    checks.check(page, "audit log filtered")
    sign_out(page)

    checks.assert_clean()


# --- the staff walk (issue 5) ---------------------------------------------------------------------

def _fits(page, label, problems):
    """Tables fit the 1280-px desktop: no sideways scroll of the page or of any table region."""
    page.set_viewport_size({"width": 1280, "height": 800})
    wide = page.evaluate("""() => [document.documentElement.scrollWidth > window.innerWidth]
        .concat(Array.from(document.querySelectorAll('.table-scroll')).map(e => e.scrollWidth > e.clientWidth + 1))""")
    if any(wide):
        problems.append(f"{label}: wider than 1280 px {wide}")


def _unconfirmed_account(seed, *, given, family, birth, email, phone=None):
    from portal.extensions import db
    from tests.factories import create_user

    record = seed.patient_record(given=given, family=family, birth=birth)
    with seed.app.app_context():
        from sqlalchemy import select

        from portal.patients.models import Patient

        patient = db.session.execute(select(Patient).where(Patient.public_id == record["public_id"])).scalar_one()
        if phone:
            patient.phone = phone
        create_user(role="patient", patient=patient, email=email, verified=False, mfa=False)
        db.session.commit()
    return record


def test_support_walk_search_status_email_help_and_handout(page, seed, checks, mailbox):
    support = seed.staff("support", name="Sofia Support")
    tag = f"{seed._next():04d}"
    typo = f"gladys{tag}@exmaple.com"
    _unconfirmed_account(seed, given="Gladys", family=f"Schumm{tag}", birth=date(1981, 11, 3), email=typo,
                         phone=f"(555) 01{tag[:1]}-{tag}")
    spanish = seed.patient_record(given="Rosa", family=f"Iglesias{tag}", birth=date(1975, 6, 9))
    with seed.app.app_context():
        from sqlalchemy import select

        from portal.extensions import db
        from portal.patients.models import Patient

        db.session.execute(select(Patient).where(Patient.public_id == spanish["public_id"])).scalar_one() \
            .preferred_language = "es"
        db.session.commit()

    _sign_in_with_totp(page, support)
    page.goto("/support")
    search = page.get_by_label("Name, MRN, date of birth or phone number")
    button = page.locator("form.patient-search").get_by_role("button", name="Search")
    radius = button.evaluate("b => getComputedStyle(b).borderTopLeftRadius")
    assert not radius.startswith("80px") and "rem" not in radius, radius  # not Pico's pill-shaped search group
    for query in ("11/03/1981", "1981-11-03", "Nov 3 1981", f"555 01{tag[:1]} {tag}"):
        search.fill(query)
        button.click()
        row = page.locator("table#patients tbody tr", has_text=f"Schumm{tag}")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Invited")  # an account not confirmed yet
    checks.check(page, "search by birth date: status column")

    row.get_by_role("link").click()
    expect(page.locator("#account-status")).to_contain_text("Invited")
    main = page.locator("main")
    expect(main.get_by_role("button", name="Unlock the account")).to_have_count(0)  # not locked
    expect(main.get_by_role("button", name="Email a link to choose a new password")).to_have_count(0)
    main.get_by_role("button", name="Send the confirmation email again").click()
    expect(page.locator(".flashes")).to_contain_text("We sent the confirmation email again.")
    assert mailbox.wait_for_to(typo) is not None
    page.get_by_role("link", name="Correct a mistyped email address").click()
    checks.check(page, "correct the email")
    page.get_by_label("The correct email address").fill("not-an-address")
    page.get_by_role("button", name="Save and send the confirmation link").click()
    expect(page.locator(".error-summary")).to_be_focused()
    page.get_by_label("The correct email address").fill(f"gladys{tag}@example.com")
    page.get_by_role("button", name="Save and send the confirmation link").click()
    expect(page.locator(".flashes")).to_contain_text("Email address corrected")
    expect(main).to_contain_text(f"gladys{tag}@example.com")
    assert mailbox.wait_for_to(f"gladys{tag}@example.com") is not None

    # the activation code's handout, in the patient's language, with its expiry date
    page.goto(f"/support/patients/{spanish['public_id']}")
    page.get_by_role("button", name="Issue a new activation code").click()
    handout = page.locator("article.handout[lang=es]")
    expect(handout).to_contain_text("Su código de activación del portal del paciente")
    expect(handout).to_contain_text(re.compile(r"Úselo antes del \d+ de \w+ de 20\d\d"))
    expect(handout.locator("code")).to_have_text(page.locator("code#activation-code").inner_text())
    expect(page.get_by_role("button", name="Print the handout")).to_be_visible()
    checks.check(page, "activation handout (Spanish)")
    page.emulate_media(media="print")
    assert not page.locator(".site-header").is_visible() and not page.get_by_role("button", name="Print the handout").is_visible()
    assert handout.is_visible()
    page.emulate_media(media="screen")
    sign_out(page)
    checks.assert_clean()


@pytest.mark.parametrize("language", ["en", "es"])
def test_admin_walk_confirmations_labels_and_audit_in_words(page, seed, checks, language):
    admin = seed.staff("admin", name="Ada Admin")
    target = seed.staff("billing", name="Bartholomew Longname-Billingsworth")
    if language == "es":
        with seed.app.app_context():
            from sqlalchemy import select

            from portal.accounts.models import User
            from portal.extensions import db

            db.session.execute(select(User).where(User.email == admin.email)).scalar_one().preferred_language = "es"
            db.session.commit()
    t = (lambda en, es: es if language == "es" else en)
    sign_in_password(page, admin.email, admin.password)
    page.get_by_label("6-digit code").fill(admin.totp())  # the browser's language until signed in
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/staff$"))
    wide: list[str] = []
    page.goto("/admin/staff")
    _fits(page, f"staff list ({language})", wide)
    page.locator("table#staff tr", has_text=target.email).get_by_role("link").click()
    checks.check(page, f"staff member ({language})")
    # visible labels for the menus
    expect(page.locator("label[for=method]")).to_be_visible()
    expect(page.locator("label[for=role]")).to_be_visible()
    page.get_by_role("combobox", name=t("Role", "Rol"), exact=True).select_option("support")
    page.get_by_role("button", name=t("Change role…", "Cambiar el rol…")).click()
    expect(page.locator("h1")).to_contain_text("Bartholomew")
    checks.check(page, f"confirm role change ({language})")
    page.get_by_role("button", name=t("Change the role", "Cambiar el rol")).click()
    expect(page.locator(".flashes")).to_be_visible()
    page.get_by_role("button", name=t("Disable the account…", "Desactivar la cuenta…")).click()
    checks.check(page, f"confirm disable ({language})")
    page.get_by_role("link", name=t("Cancel", "Cancelar")).click()
    assert seed.user_field(target.email, "disabled_at") is None and seed.user_field(target.email, "role") == "support"

    page.goto("/admin/audit?start=2030-01-10&end=2030-01-01")
    expect(page.locator(".error-summary")).to_contain_text(t("The end date is before the start date",
                                                              "La fecha final es anterior a la inicial"))
    page.goto("/admin/audit")
    page.get_by_label(t("Outcome", "Resultado")).select_option("denied")
    page.get_by_role("button", name=t("Filter", "Filtrar")).click()
    expect(page).to_have_url(re.compile(r"outcome=denied"))
    page.goto("/admin/audit")
    page.get_by_label(t("Staff or user email", "Correo electrónico del personal")).fill(admin.email)
    page.get_by_role("button", name=t("Filter", "Filtrar")).click()
    rows = page.locator("table#audit-events tbody tr")
    expect(rows.first).to_contain_text("Ada Admin")
    expect(page.locator("table#audit-events")).to_contain_text(t("Role changed", "Función cambiada"))
    expect(page.locator("table#audit-events")).to_contain_text(t("Succeeded", "Correcto"))
    _fits(page, f"audit report ({language})", wide)
    checks.check(page, f"audit report ({language})")
    sign_out(page)
    assert not wide, wide
    checks.assert_clean()

"""Statement PDFs (text checked with pdftotext: name, every item, totals, due date; Spanish; pagination of
a long statement; tagged with the document language; the url_fetcher refuses everything but our static
files) and access (another patient's statements, PDFs, receipts and payment endpoints answer 404 with a
denied row; patients reach no staff page; non-billing staff get 403)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date

import pytest
from flask import current_app
from sqlalchemy import func, select

from portal.billing import pdf, services
from tests.conftest import unavailable
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.billing.helpers import CHARGES, bill

PDFTOTEXT = shutil.which("pdftotext")


def text_of(data: bytes) -> str:
    if not PDFTOTEXT:
        unavailable("pdftotext", "poppler-utils is not installed")
    out = subprocess.run([PDFTOTEXT, "-layout", "-", "-"], input=data, capture_output=True, check=True)
    return out.stdout.decode()


def pdf_objects(data: bytes) -> bytes:
    """The PDF with its compressed streams inflated (the catalog sits in an object stream)."""
    import re
    import zlib

    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    return b"\n".join(out)


def test_patient_pdf_has_name_items_totals_due_date_and_is_audited(db, login_as):
    client, user = login_as("patient")
    statement = bill(user._patient)
    r = client.get(f"/billing/statements/{statement.public_id}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = text_of(r.data)
    patient = user._patient
    assert patient.full_name in text and patient.mrn in text and statement.label in text
    for desc, code, cents in CHARGES:
        assert desc in text and code in text and f"${cents / 100:,.2f}" in text
    assert "$262.00" in text and "Amount due" in text
    assert statement.due_date.strftime("%b %-d, %Y") in text
    objects = pdf_objects(r.data)
    assert b"/Lang (en)" in objects and b"/StructTreeRoot" in objects  # tagged, with the document language
    rows = db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "billing.statement_pdf", AuditEvent.object_id == statement.public_id)).scalar_one()
    assert rows == 1


def test_spanish_pdf(db, login_as):
    client, user = login_as("patient", preferred_language="es")
    statement = bill(user._patient)
    client.post("/language", data={})  # the account language already selects Spanish
    staff_client, _staff = login_as("billing")
    r = staff_client.get(f"/billing/staff/statements/{statement.public_id}.pdf?lang=es")
    text = text_of(r.data)
    assert "Importe adeudado" in text and "Cómo pagar" in text and "Pagar antes del" in text
    assert b"/Lang (es)" in pdf_objects(r.data)


def test_long_statement_paginates_with_repeated_header(db, make_patient):
    patient = make_patient()
    items = [(f"Physical therapy session {i}", "97110", 4500 + i) for i in range(150)]
    statement = bill(patient, items, days_ago=1)
    with current_app.test_request_context():
        ctx = services.view_statement(billing_user(), statement.public_id, pdf=True)
        data = pdf.render_statement(ctx, "en")
    text = text_of(data)
    pages = text.split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) >= 3
    for n, page in enumerate(pages, start=1):
        assert f"{n}/{len(pages)}" in page.replace(" ", "")
    assert sum("Description" in p for p in pages) >= len(pages) - 1  # header repeated on item pages
    for i in (0, 75, 149):
        assert re.search(rf"Physical therapy session {i}\b", text)


def billing_user():
    from tests.factories import create_user

    return create_user("billing")


def test_url_fetcher_refuses_everything_but_our_static_files():
    fetcher = pdf.url_fetcher()
    assert fetcher.fetch("portal-static:/css/statement_pdf.css").read().startswith(b"/*")
    for url in ("file:///etc/passwd", "http://169.254.169.254/latest/meta-data/", "https://example.com/x.css",
                "portal-static:/../../config.py", "portal-static:/css/../../config.py", "data:text/css,x{}",
                "portal-static:/js/nav.js"):
        with pytest.raises(ValueError):
            fetcher.fetch(url)


def test_description_with_urls_fetches_nothing(db, make_patient):
    patient = make_patient()
    statement = bill(patient, [("See file:///etc/passwd and http://169.254.169.254/ <img src=x>", "X1", 100)])
    with current_app.test_request_context():
        ctx = services.view_statement(billing_user(), statement.public_id, pdf=True)
        html = pdf.statement_html(ctx, "en")
        assert "&lt;img src=x&gt;" in html
        data = pdf.render_statement(ctx, "en")
    assert "file:///etc/passwd" in text_of(data)


def test_harfbuzz_subset_is_available_here():
    assert pdf.harfbuzz_subset_available()


# --- access ----------------------------------------------------------------------------------------

def _denied(actor) -> int:
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == actor.id)).scalar_one()


def test_another_patients_bills_answer_404_with_a_denied_row(db, login_as, make_user):
    victim = make_user("patient")
    statement = bill(victim._patient)
    from portal.billing.models import PaymentAttempt

    attempt = PaymentAttempt(patient_id=victim._patient.id, statement_id=statement.id, attempt_key="victim-key",
                             amount_cents=100, currency="usd", status="succeeded")
    db.session.add(attempt)
    db.session.commit()
    client, attacker = login_as("patient")
    from tests.security.helpers import form_csrf

    token = form_csrf(client.get("/billing").get_data(as_text=True))
    probes = [("get", f"/billing/statements/{statement.public_id}"),
              ("get", f"/billing/statements/{statement.public_id}.pdf"),
              ("get", f"/billing/statements/{statement.public_id}/pay"),
              ("post", f"/billing/statements/{statement.public_id}/pay"),
              ("get", f"/billing/payments/{attempt.public_id}"),
              ("post", f"/billing/payments/{attempt.public_id}/finish")]
    for method, url in probes:
        before = _denied(attacker)
        r = getattr(client, method)(url, data={"csrf_token": token, "attempt_key": "k", "payment_method": "pm_x",
                                                "amount_choice": "full"} if method == "post" else None)
        assert r.status_code == 404, (url, r.status_code)
        assert victim._patient.family_name not in r.get_data(as_text=True)
        assert _denied(attacker) == before + 1, url
    assert victim._patient.mrn not in client.get("/billing").get_data(as_text=True)


def test_patients_and_other_staff_cannot_reach_billing_staff_pages(db, login_as, make_user):
    victim = make_user("patient")
    statement = bill(victim._patient)
    urls = ["/billing/staff", f"/billing/staff/patients/{victim._patient.public_id}",
            f"/billing/staff/statements/{statement.public_id}", f"/billing/staff/statements/{statement.public_id}.pdf",
            "/billing/staff/import", "/billing/staff/reports", "/billing/staff/export.csv"]
    for role in ("patient", "clinician", "support"):
        client, _user = login_as(role)
        for url in urls:
            assert client.get(url).status_code == 403, (role, url)
    admin, _a = login_as("admin")
    assert admin.get("/billing/staff/reports").status_code == 200  # reports only
    assert admin.get("/billing/staff").status_code == 403
    staff, _s = login_as("billing")
    assert staff.get("/billing").status_code == 403  # the patient page is for patients


def test_statement_ref_and_ask_link(db, login_as, make_user, app):
    client, user = login_as("patient")
    statement = bill(user._patient)
    from portal.core.registry import refs

    other = make_user("patient")
    with app.test_request_context():
        resolved = refs.resolve(f"statement:{statement.public_id}", user)
        assert resolved and resolved.patient_id == user._patient.id and statement.label in resolved.label
        assert refs.resolve(f"statement:{statement.public_id}", other) is None
    html = client.get(f"/billing/statements/{statement.public_id}").get_data(as_text=True)
    assert ("Ask about this bill" in html) == ("messaging.compose" in app.view_functions)


def test_billing_views_are_audited_with_the_billing_category(db, login_as):
    client, user = login_as("patient")
    statement = bill(user._patient)
    client.get("/billing")
    client.get(f"/billing/statements/{statement.public_id}")
    cats = db.session.execute(select(AuditEvent.category).where(AuditEvent.actor_id == user.id,
                                                                AuditEvent.action == "patient.view")).scalars().all()
    assert cats.count("billing") == 2


def test_home_card_and_nav(db, login_as):
    client, user = login_as("patient")
    bill(user._patient)
    html = client.get("/home").get_data(as_text=True)
    assert "You owe $262.00" in html and 'href="/billing"' in html
    staff, _s = login_as("billing")
    assert 'href="/billing/staff"' in staff.get("/staff").get_data(as_text=True)


def test_staff_patient_page_shows_the_billing_panel_to_billing_staff_only(db, login_as, make_user):
    victim = make_user("patient")
    bill(victim._patient)
    billing, _b = login_as("billing")
    html = billing.get(f"/support/patients/{victim._patient.public_id}").get_data(as_text=True)
    assert "Balance: $262.00" in html and f"/billing/staff/patients/{victim._patient.public_id}" in html
    support, _s = login_as("support")
    assert "Balance: $262.00" not in support.get(f"/support/patients/{victim._patient.public_id}").get_data(as_text=True)

"""Staff billing reports at any ledger size (PERFORMANCE.md G6/G8, issue 12): the accounts' running balance
read by its index (largest first, credits after), the aging snapshot (the same FIFO figures as a pass over
the whole ledger; computed by the beat job, the staff button — CSRF, audited, billing functions only — and
the demo seed; shown with its time in the clinic's zone), and the migration's backfill of the balances."""

from __future__ import annotations

import os
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import create_engine, func, select, text

from portal.billing import money, services
from portal.billing.models import AgingSnapshot, BillingAccount, LedgerEntry
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.billing.helpers import billing_staff

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


def _post(staff, patient, kind, cents, days_ago=0):
    services.post_entry(staff, patient, kind=kind, amount_cents=cents,
                        service_date=services.today_local() - timedelta(days=days_ago), description="Test")


def _full_ledger_aging(today: date) -> dict:
    """The aging as the pages computed it before the snapshot: every entry of every patient, FIFO."""
    by_patient: dict[int, list] = {}
    for pid, on, amount in db.session.execute(select(LedgerEntry.patient_id, LedgerEntry.service_date,
                                                     LedgerEntry.amount_cents)):
        by_patient.setdefault(pid, []).append((on, int(amount)))
    totals = dict.fromkeys(money.AGING_BUCKETS, 0)
    for rows in by_patient.values():
        for k, v in money.aging(rows, today).items():
            totals[k] += v
    totals["total"] = sum(totals.values())
    return totals


def test_accounts_with_balances_largest_first_then_credits_never_zero(db, make_patient):
    staff = billing_staff()
    patients = [make_patient() for _ in range(6)]
    with current_app.test_request_context():
        for patient, cents in zip(patients, (500, 3000, 1000, 1000)):
            _post(staff, patient, money.CHARGE, cents)
        _post(staff, patients[4], money.CHARGE, 700)
        _post(staff, patients[4], money.INSURANCE_PAYMENT, 700)  # settled: never listed
        _post(staff, patients[5], money.ADJUSTMENT, -200)  # a credit balance
        top = services.accounts_with_balances(staff, limit=2)
        every = services.accounts_with_balances(staff, limit=50)
    assert [a["balance"] for a in top] == [3000, 1000]
    assert [a["balance"] for a in every] == [3000, 1000, 1000, 500, -200]
    assert {a["patient"].id for a in every} == {p.id for p in patients} - {patients[4].id}
    for a in every:
        assert a["balance"] == services.balance_cents(a["patient"].id)


def test_aging_snapshot_equals_fifo_over_the_whole_ledger(db, make_patient, monkeypatch):
    staff = billing_staff()
    monkeypatch.setattr(services, "AGING_BATCH", 2)  # several batches, ties on the balance between them
    with current_app.test_request_context():
        for n in range(7):
            patient = make_patient()
            _post(staff, patient, money.CHARGE, 10000, days_ago=100 + n)
            _post(staff, patient, money.CHARGE, 3000, days_ago=75)
            _post(staff, patient, money.CHARGE, 5000, days_ago=45)
            _post(staff, patient, money.CHARGE, 2500, days_ago=3)
            if n % 2:
                _post(staff, patient, money.INSURANCE_PAYMENT, 8000 + 1000 * n, days_ago=20)
            if n == 6:
                _post(staff, patient, money.ADJUSTMENT, -40000, days_ago=1)  # overpaid: ages nothing
        settled = make_patient()
        _post(staff, settled, money.CHARGE, 900, days_ago=70)
        _post(staff, settled, money.INSURANCE_PAYMENT, 900, days_ago=60)
        today = services.today_local()
        snapshot = services.compute_aging_snapshot(staff)
    expected = _full_ledger_aging(today)
    assert snapshot.buckets() == expected
    assert expected["total"] > 0 and all(expected[k] > 0 for k in money.AGING_BUCKETS)
    owing = db.session.execute(select(func.count(BillingAccount.id), func.sum(BillingAccount.balance_cents))
                               .where(BillingAccount.balance_cents > 0)).one()
    assert (snapshot.accounts, snapshot.total) == (owing[0], owing[1]) == (6, expected["total"])
    assert snapshot.as_of == today and snapshot.requested_by_id == staff.id


def test_staff_pages_show_the_snapshot_and_staff_recompute_it(db, login_as, make_patient):
    from portal.core.i18n import local_datetime

    client, staff = login_as("billing")
    patient = make_patient()
    with current_app.test_request_context():
        _post(staff, patient, money.CHARGE, 12345, days_ago=40)
    html = client.get("/billing/staff").get_data(as_text=True)
    assert "has not been computed yet" in html and "Recompute the aging now" in html
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)

    r = client.post("/billing/staff/aging", data={"back": "index"})  # no CSRF token: nothing happens
    assert r.status_code in (302, 303, 400)
    assert db.session.execute(select(func.count(AgingSnapshot.id))).scalar_one() == 0

    r = client.post("/billing/staff/aging", data={"csrf_token": token, "back": "reports"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/billing/staff/reports")
    snapshot = db.session.execute(select(AgingSnapshot)).scalar_one()
    assert (snapshot.days_31_60, snapshot.total, snapshot.accounts) == (12345, 12345, 1)
    assert db.session.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "billing.aging_requested", AuditEvent.actor_id == staff.id)).scalar_one() == 1
    with current_app.test_request_context():
        shown = local_datetime(snapshot.computed_at)  # the clinic's zone
    for path in ("/billing/staff", "/billing/staff/reports"):
        page = client.get(path).get_data(as_text=True)
        assert f"As of {shown}" in page and "$123.45" in page, path

    # a later posting changes the running balance at once, the aging at the next snapshot
    with current_app.test_request_context():
        _post(staff, patient, money.CHARGE, 1000, days_ago=1)
    page = client.get("/billing/staff").get_data(as_text=True)
    assert "$133.45" in page and f"As of {shown}" in page


def test_spanish_staff_page_shows_the_snapshot_translated(db, login_as, make_patient):
    client, staff = login_as("billing", preferred_language="es")
    with current_app.test_request_context():
        _post(staff, make_patient(), money.CHARGE, 5000, days_ago=10)
        services.compute_aging_snapshot(staff)
    page = client.get("/billing/staff").get_data(as_text=True)
    assert "Recalcular la antigüedad de saldos ahora" in page and "cuentas con saldo pendiente" in page
    assert "Recompute the aging now" not in page and "As of" not in page


@pytest.mark.parametrize("role", ["patient", "clinician", "support"])
def test_only_billing_functions_may_recompute(db, login_as, role):
    client, _user = login_as(role)
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/", follow_redirects=True)
                      .get_data(as_text=True)).group(1)
    r = client.post("/billing/staff/aging", data={"csrf_token": token})
    assert r.status_code in (403, 404)
    assert db.session.execute(select(func.count(AgingSnapshot.id))).scalar_one() == 0


def test_admin_with_reports_may_recompute(db, login_as):
    client, admin = login_as("admin")
    html = client.get("/billing/staff/reports").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = client.post("/billing/staff/aging", data={"csrf_token": token, "back": "reports"})
    assert r.status_code == 303
    assert db.session.execute(select(AgingSnapshot.requested_by_id)).scalar_one() == admin.id


def test_beat_job_writes_a_snapshot_and_prunes_old_ones(db, make_patient):
    from portal.billing import tasks
    from portal.core.db import utcnow

    assert tasks.PERIODIC["billing-aging-snapshot"]["task"] == tasks.aging_snapshot.name
    staff = billing_staff()
    with current_app.test_request_context():
        _post(staff, make_patient(), money.CHARGE, 4200, days_ago=95)
    db.session.add(AgingSnapshot(computed_at=utcnow() - timedelta(days=services.AGING_KEEP_DAYS + 1),
                                 as_of=date(2020, 1, 1), days_0_30=0, days_31_60=0, days_61_90=0, days_90_plus=1,
                                 total=1, accounts=1))
    db.session.commit()
    first = tasks.aging_snapshot.run()
    second = tasks.aging_snapshot.run()  # idempotent: the same figures again
    rows = db.session.execute(select(AgingSnapshot).order_by(AgingSnapshot.id)).scalars().all()
    assert [r.id for r in rows] == [first, second]
    assert [(r.days_90_plus, r.total, r.accounts, r.requested_by_id) for r in rows] == [(4200, 4200, 1, None)] * 2


def test_demo_seed_has_balances_and_a_first_aging(app, db):
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    sums = dict(db.session.execute(select(LedgerEntry.patient_id, func.sum(LedgerEntry.amount_cents))
                                   .group_by(LedgerEntry.patient_id)).all())
    stored = dict(db.session.execute(select(BillingAccount.patient_id, BillingAccount.balance_cents)).all())
    assert sums and {p: int(v) for p, v in sums.items()} == {p: v for p, v in stored.items() if p in sums}
    assert all(v == 0 for p, v in stored.items() if p not in sums)
    snapshot = db.session.execute(select(AgingSnapshot).order_by(AgingSnapshot.id.desc()).limit(1)).scalar_one()
    assert snapshot.total == sum(v for v in stored.values() if v > 0) > 0
    assert sum(1 for k in ("days_0_30", "days_31_60", "days_61_90", "days_90_plus") if getattr(snapshot, k)) >= 3


def test_migration_backfills_balances_and_missing_accounts(tmp_path):
    """Entries written before the running balance existed (and a patient with entries but no account row)
    get their account and balance from the upgrade, on the database the suite runs on."""
    from flask_migrate import upgrade

    from config import TestingConfig
    from portal import create_app
    from tests.conftest import create_pg_database, drop_pg_database

    name = None
    if os.environ.get("TEST_DATABASE_URL"):
        name = f"portal_billmig_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    else:
        url = f"sqlite:///{tmp_path / 'backfill.sqlite3'}"
    try:
        app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            upgrade(directory=MIGRATIONS, revision="5d1e9f3a7c20")
            engine = create_engine(url)
            with engine.begin() as c:
                for n in (1, 2, 3):
                    c.execute(text("INSERT INTO patients (id, mrn, given_name, family_name, birth_date, "
                                   "preferred_language, public_id, created_at) VALUES (:id, :mrn, 'A', 'B', "
                                   "'1970-01-01', 'en', :pub, CURRENT_TIMESTAMP)"),
                              {"id": n, "mrn": f"M{n}", "pub": uuid.uuid4().hex})
                for n in (1, 3):  # patient 2 has entries and no account; patient 3 has an account only
                    c.execute(text("INSERT INTO billing_accounts (patient_id, public_id, paperless, created_at) "
                                   "VALUES (:p, :pub, :t, CURRENT_TIMESTAMP)"),
                              {"p": n, "pub": uuid.uuid4().hex, "t": True})
                for pid, cents in ((1, 18500), (1, -12000), (1, 300), (2, 5000), (2, -7500)):
                    c.execute(text("INSERT INTO billing_entries (public_id, patient_id, kind, amount_cents, "
                                   "service_date, description, posted_at) VALUES (:pub, :p, 'charge', :a, "
                                   "'2026-10-01', 'x', CURRENT_TIMESTAMP)"),
                              {"pub": uuid.uuid4().hex, "p": pid, "a": cents})
            upgrade(directory=MIGRATIONS)
            with engine.connect() as c:
                rows = dict(c.execute(text("SELECT patient_id, balance_cents FROM billing_accounts")).all())
                public_ids = c.execute(text("SELECT public_id FROM billing_accounts")).scalars().all()
            engine.dispose()
            db.engine.dispose()
        assert rows == {1: 6800, 2: -2500, 3: 0}
        assert len(set(public_ids)) == 3 and all(len(p) == 32 for p in public_ids)
    finally:
        if name:
            drop_pg_database(name)

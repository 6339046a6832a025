"""Ledger rules: property tests of the pure module (the balance is the sum of the entries and never drifts;
refunds never exceed what was paid; aging adds up) and of the database ledger (the same operation sequences
through the real posting services: the account's stored running balance equals the sum of its entries after
every operation), then staff posting, CSV import (all or nothing), statements (numbering, immutability, a
rerun never duplicates), the batch run, the staff lists of balances."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import current_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.billing import money, services
from portal.billing.models import BillingAccount, LedgerEntry, PaymentAttempt, Statement, StatementRun
from portal.core.errors import DomainError, Forbidden
from portal.extensions import db
from tests.billing.helpers import bill, billing_staff, total

DAY = date(2026, 6, 1)
amounts = st.integers(min_value=1, max_value=5_000_00)
ops = st.lists(st.one_of(
    st.tuples(st.sampled_from([money.CHARGE, money.INSURANCE_PAYMENT]), amounts),
    st.tuples(st.just(money.ADJUSTMENT), st.integers(min_value=-5_000_00, max_value=5_000_00).filter(bool)),
    st.tuples(st.just("pay"), amounts),
    st.tuples(st.just("refund"), st.integers(min_value=0, max_value=50), amounts),
), max_size=60)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_balance_is_the_sum_of_entries_through_any_sequence(sequence):
    ledger = money.Ledger()
    expected = 0
    payments = []
    for op in sequence:
        if op[0] == "pay":
            payments.append(ledger.pay(op[1], DAY))
            expected -= op[1]
        elif op[0] == "refund":
            if not payments:
                continue
            idx = payments[op[1] % len(payments)]
            paid = -ledger.entries[idx].amount_cents
            already = sum(e.amount_cents for e in ledger.entries if e.payment_ref == idx)
            try:
                ledger.refund(idx, op[2], DAY)
                expected += op[2]
                assert already + op[2] <= paid
            except money.MoneyError:
                assert already + op[2] > paid
        else:
            ledger.post(op[0], op[1], DAY)
            expected += money.signed_amount(op[0], op[1])
        assert ledger.balance == expected == sum(e.amount_cents for e in ledger.entries)
    for idx in payments:  # refunds of a payment never exceed it
        assert sum(e.amount_cents for e in ledger.entries if e.payment_ref == idx) <= -ledger.entries[idx].amount_cents


def _stored(patient_id: int) -> int:
    db.session.expire_all()
    return db.session.execute(select(BillingAccount.balance_cents).where(
        BillingAccount.patient_id == patient_id)).scalar_one()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
def test_stored_balance_is_the_sum_of_entries_through_any_sequence(db, make_patient, sequence):
    """The same sequences, through the services that write ledger rows (staff postings, card payments as
    Stripe reports them, refunds): after every operation the account's stored balance_cents equals the sum
    of the patient's entries, the patient-facing balance and the in-memory ledger's."""
    staff = billing_staff()
    patient = make_patient()
    ledger = money.Ledger()
    payments: list[tuple[int, LedgerEntry]] = []  # (ledger index, database entry)
    with current_app.test_request_context():
        services.post_entry(staff, patient, kind=money.CHARGE, amount_cents=100, service_date=DAY,
                            description="Opening charge")
        ledger.post(money.CHARGE, 100, DAY)
        statement = services.issue_statement(staff, patient, notify_patient=False)
        for n, op in enumerate(sequence):
            if op[0] == "pay":
                attempt = PaymentAttempt(patient_id=patient.id, statement_id=statement.id,
                                         attempt_key=f"prop-{patient.id}-{n}", amount_cents=op[1], currency="usd",
                                         status="created", save_card=True)
                db.session.add(attempt)
                db.session.flush()
                entry = services.record_payment(attempt, {"id": f"pi_prop_{patient.id}_{n}", "amount": op[1],
                                                          "currency": "usd", "status": "succeeded"})
                services.record_payment(attempt, {"id": f"pi_prop_{patient.id}_{n}", "amount": op[1],
                                                  "currency": "usd", "status": "succeeded"})  # a late webhook
                payments.append((ledger.pay(op[1], DAY), entry))
            elif op[0] == "refund":
                if not payments:
                    continue
                idx, payment = payments[op[1] % len(payments)]
                try:
                    ledger.refund(idx, op[2], DAY)
                except money.MoneyError:
                    with pytest.raises(money.MoneyError):  # the service's own rule agrees
                        money.check_refund(-payment.amount_cents, services.refunded_cents(payment), op[2])
                    continue
                refund = {"id": f"re_prop_{patient.id}_{n}", "amount": op[2]}
                services._post_refund(payment, refund, reason="test")
                services._post_refund(payment, refund, reason="test")  # Stripe's charge.refunded, again
            else:
                services.post_entry(staff, patient, kind=op[0], amount_cents=op[1], service_date=DAY,
                                    description="Property")
                ledger.post(op[0], op[1], DAY)
            assert _stored(patient.id) == services.balance_cents(patient.id) == ledger.balance
    assert services.stored_balance_cents(patient.id) == sum(e.amount_cents for e in db.session.execute(
        select(LedgerEntry).where(LedgerEntry.patient_id == patient.id)).scalars()) == ledger.balance


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(-10_000, 10_000).filter(bool)), max_size=30))
def test_aging_buckets_add_up_to_what_is_owed(rows):
    today = date(2026, 11, 30)
    entries = [(today - timedelta(days=d), a) for d, a in rows]
    buckets = money.aging(entries, today)
    owed = sum(a for _d, a in entries)
    assert sum(buckets.values()) == max(owed, 0) or (owed < 0 and sum(buckets.values()) == 0)
    assert all(v >= 0 for v in buckets.values())


@settings(max_examples=50, deadline=None)
@given(st.integers(-10**6, 10**6), st.lists(st.integers(-10**5, 10**5).filter(bool), max_size=20))
def test_statement_totals(previous, new):
    t = money.statement_totals(previous, new)
    assert t.amount_due == previous + sum(new) == t.previous_balance + t.charges + t.credits
    assert t.charges >= 0 >= t.credits


@pytest.mark.parametrize("text,cents", [("12.34", 1234), ("$1,234.5", 123450), ("0.01", 1), ("7", 700)])
def test_parse_cents(text, cents):
    assert money.parse_cents(text) == cents


@pytest.mark.parametrize("text", ["1.234", "abc", "-5", "NaN", "1e3000", "", "Infinity"])
def test_parse_cents_refuses(text):
    with pytest.raises(money.MoneyError):
        money.parse_cents(text)


def test_signed_amounts():
    assert money.signed_amount(money.CHARGE, 100) == 100
    assert money.signed_amount(money.INSURANCE_PAYMENT, 100) == -100
    assert money.signed_amount(money.ADJUSTMENT, -100) == -100
    with pytest.raises(money.MoneyError):
        money.signed_amount(money.CHARGE, -1)
    with pytest.raises(money.MoneyError):
        money.signed_amount(money.ADJUSTMENT, 0)


# --- database ledger and statements --------------------------------------------------------------

def test_statement_numbering_immutability_and_rerun(db, make_patient):
    staff = billing_staff()
    patient = make_patient()
    first = bill(patient, staff=staff)
    assert first.amount_due_cents == total() and first.previous_balance_cents == 0
    with current_app.test_request_context():
        assert services.issue_statement(staff, patient, notify_patient=False) is None  # nothing new
        services.post_entry(staff, patient, kind=money.INSURANCE_PAYMENT, amount_cents=10000,
                            service_date=date.today(), description="Blue Cross payment")
        services.post_entry(staff, patient, kind=money.ADJUSTMENT, amount_cents=-2000,
                            service_date=date.today(), description="Contractual write-off")
        second = services.issue_statement(staff, patient, notify_patient=False)
    assert second.number == first.number + 1
    assert second.previous_balance_cents == total()
    assert second.credits_cents == -12000 and second.amount_due_cents == total() - 12000
    assert [e.description for e in services.statement_entries(second)] == ["Blue Cross payment",
                                                                            "Contractual write-off"]
    before = [(e.id, e.amount_cents) for e in services.statement_entries(first)]
    with current_app.test_request_context():
        services.post_entry(staff, patient, kind=money.CHARGE, amount_cents=999, service_date=date.today(),
                            description="Later charge")
    db.session.expire_all()
    again = db.session.get(Statement, first.id)
    assert [(e.id, e.amount_cents) for e in services.statement_entries(again)] == before
    assert again.amount_due_cents == total()


def test_only_billing_staff_post_and_bad_entries_are_refused(db, make_patient, make_user):
    patient = make_patient()
    clinician = make_user("clinician")
    staff = billing_staff()
    with current_app.test_request_context():
        with pytest.raises(Forbidden):
            services.post_entry(clinician, patient, kind=money.CHARGE, amount_cents=100, service_date=date.today(),
                                description="x")
        with pytest.raises(DomainError):
            services.post_entry(staff, patient, kind=money.CHARGE, amount_cents=-100, service_date=date.today(),
                                description="x")
        with pytest.raises(DomainError):
            services.post_entry(staff, patient, kind=money.PAYMENT, amount_cents=100, service_date=date.today(),
                                description="a payment by hand")
        with pytest.raises(DomainError):
            services.post_entry(staff, patient, kind=money.CHARGE, amount_cents=100,
                                service_date=date.today() + timedelta(days=5), description="x")


def test_csv_import_is_all_or_nothing_with_line_errors(db, make_patient):
    staff = billing_staff()
    a, b = make_patient(), make_patient()
    good = (f"mrn,service_date,kind,code,description,amount\n"
            f"{a.mrn},2026-10-01,charge,99213,Office visit,185.00\n"
            f"{b.mrn},2026-10-02,adjustment,,Courtesy discount,-10.00\n")
    bad = good + ("NOPE,2026-10-02,charge,,x,1.00\n"
                  f"{a.mrn},not-a-date,charge,,x,1.00\n"
                  f"{a.mrn},2026-10-02,charge,,x,1.005\n")
    with current_app.test_request_context():
        with pytest.raises(services.ImportError_) as exc:
            services.import_entries(staff, bad)
        assert [n for n, _m in exc.value.errors] == [4, 5, 6]
        assert db.session.execute(select(func.count(LedgerEntry.id))).scalar_one() == 0
        assert services.import_entries(staff, good) == 2
    assert services.balance_cents(a.id) == 18500 and services.balance_cents(b.id) == -1000


def test_import_page_shows_line_errors(db, login_as, make_patient):
    import io
    import re

    client, staff = login_as("billing")
    html = client.get("/billing/staff/import").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    data = {"csrf_token": token, "file": (io.BytesIO(b"mrn,service_date,kind,code,description,amount\nX,2026-01-01,charge,,a,1\n"),
                                          "c.csv")}
    r = client.post("/billing/staff/import", data=data, content_type="multipart/form-data")
    assert r.status_code == 400 and "Line 2" in r.get_data(as_text=True)


def test_batch_run_issues_once_and_survives_a_failure(db, make_patient, monkeypatch):
    staff = billing_staff()
    owing = [make_patient() for _ in range(3)]
    settled = make_patient()
    for p in owing:
        bill(p, staff=staff, issue=False)
    with current_app.test_request_context():
        services.post_entry(staff, settled, kind=money.CHARGE, amount_cents=500, service_date=date.today(),
                            description="Copay")
        services.post_entry(staff, settled, kind=money.INSURANCE_PAYMENT, amount_cents=500,
                            service_date=date.today(), description="Paid")
        real = services.issue_statement
        broken = owing[1].id

        def flaky(actor, patient, **kw):
            if patient.id == broken:
                raise RuntimeError("renderer down")
            return real(actor, patient, **kw)

        monkeypatch.setattr(services, "issue_statement", flaky)
        run = services.process_run(services.start_run(staff).id, commit=False, notify_patient=False)
        assert (run.total, run.issued, run.failed) == (3, 2, 1) and "account" in run.errors
        monkeypatch.setattr(services, "issue_statement", real)
        rerun = services.process_run(services.start_run(staff).id, commit=False, notify_patient=False)
        assert (rerun.total, rerun.issued, rerun.failed) == (1, 1, 0)
        third = services.process_run(services.start_run(staff).id, commit=False, notify_patient=False)
        assert third.total == 0 and third.issued == 0
    assert db.session.execute(select(func.count(Statement.id))).scalar_one() == 3
    assert db.session.execute(select(func.count(StatementRun.id))).scalar_one() == 3


def test_staff_run_page_and_issue_button(db, login_as, make_patient):
    import re

    client, staff = login_as("billing")
    patient = make_patient()
    bill(patient, issue=False)
    html = client.get("/billing/staff").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = client.post("/billing/staff/runs", data={"csrf_token": token, "confirm": "all"})
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Finished" in page and 'data-run-status="done"' in page
    r = client.post(f"/billing/staff/patients/{patient.public_id}/statement", data={"csrf_token": token})
    assert r.status_code == 302 and "/billing/staff/patients/" in r.headers["Location"]  # nothing new

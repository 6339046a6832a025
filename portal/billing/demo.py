"""Demo billing: realistic statements for the demo patients, built from their completed visits in the
scheduling demo when there are any (CPT codes by visit type) plus labs and vaccines:

- gladys@patient.example: an older statement paid by card, and an open statement to pay with the test card
  4242 4242 4242 4242 (make run starts localstripe);
- yvone@patient.example (Spanish): an open statement;
- other demo patients: balances of every age (for the aging report), one card payment with a partial refund.

Seeded payments carry "pi_demo_…" ids that only exist in this database (localstripe keeps its state in
memory): payments made in the portal are the ones that can be refunded through localstripe. Every entry
goes through services.record_entry (the accounts' running balances move with it), and the first aging
snapshot is computed at the end, so the staff pages show real figures at once. Idempotent: nothing is added
once the demo entries exist (import_ref "demo")."""

from __future__ import annotations

from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select

from portal.billing import money, services
from portal.billing.models import AgingSnapshot, LedgerEntry, PaymentAttempt, Statement
from portal.core.db import utcnow
from portal.extensions import db

ORDER = 50
CPT_BY_VISIT = {"Annual check-up": ("99396", 24500), "New health concern": ("99213", 18500),
                "Follow-up visit": ("99213", 18500), "Video visit": ("99442", 9500), "Flu shot": ("90686", 3500),
                "Medication review": ("99214", 21000), "Procedure consultation": ("99204", 29500)}


def _visits(patient) -> list[tuple[date, str, str, int]]:
    """(date, description, code, cents) for the patient's completed visits in the scheduling demo."""
    try:
        from portal.scheduling.models import Appointment, VisitType
    except ImportError:  # pragma: no cover - billing without scheduling
        return []
    rows = db.session.execute(select(Appointment.starts_at, VisitType.name).join(
        VisitType, VisitType.id == Appointment.visit_type_id).where(
        Appointment.patient_id == patient.id, Appointment.status == "completed")).all()
    out = []
    for starts_at, name in rows[:3]:
        code, cents = CPT_BY_VISIT.get(name, ("99213", 18500))
        out.append((starts_at.date(), f"Office visit – {name}", code, cents))
    return out


def _post(staff, patient, kind, cents, on, description, code=None, *, posted_days_ago=None, reason=None):
    entry = services.post_entry(staff, patient, kind=kind, amount_cents=cents, service_date=on,
                                description=description, code=code, reason=reason, import_ref="demo")
    entry.posted_at = utcnow() - timedelta(days=posted_days_ago if posted_days_ago is not None
                                           else max((date.today() - on).days - 2, 0))
    return entry


def _issue(patient, days_ago: int) -> Statement:
    statement = services.issue_statement(None, patient, notify_patient=False)
    statement.issued_at = utcnow() - timedelta(days=days_ago)
    statement.due_date = date.today() - timedelta(days=days_ago) + timedelta(
        days=current_app.config["BILLING_STATEMENT_DUE_DAYS"])
    return statement


def _paid(patient, statement, cents, days_ago, n) -> LedgerEntry:
    attempt = PaymentAttempt(patient_id=patient.id, statement_id=statement.id, attempt_key=f"demo-{patient.id}-{n}",
                             amount_cents=cents, currency=current_app.config["BILLING_CURRENCY"], status="succeeded",
                             stripe_payment_intent_id=f"pi_demo_{patient.id}_{n}", card_brand="visa", card_last4="4242",
                             created_at=utcnow() - timedelta(days=days_ago),
                             succeeded_at=utcnow() - timedelta(days=days_ago))
    db.session.add(attempt)
    db.session.flush()
    return services.record_entry(LedgerEntry(
        patient_id=patient.id, kind=money.PAYMENT, amount_cents=-cents,
        service_date=date.today() - timedelta(days=days_ago), description="Card payment", attempt_id=attempt.id,
        stripe_ref=attempt.stripe_payment_intent_id, import_ref="demo", posted_at=utcnow() - timedelta(days=days_ago)))


def seed(ctx) -> None:
    if db.session.execute(select(LedgerEntry.id).where(LedgerEntry.import_ref == "demo")).first() is not None:
        if db.session.execute(select(AgingSnapshot.id).limit(1)).first() is None:
            with current_app.test_request_context("/"):
                services.compute_aging_snapshot()
        return
    staff = ctx.staff["billing"]
    today = date.today()
    gladys, yvone = ctx.patient_of("gladys@patient.example"), ctx.patient_of("yvone@patient.example")
    with current_app.test_request_context("/"):
        # gladys: statement 1 (paid by card), statement 2 (open)
        _post(staff, gladys, money.CHARGE, 21000, today - timedelta(days=70), "Office visit – Medication review", "99214")
        _post(staff, gladys, money.CHARGE, 4200, today - timedelta(days=70), "Lipid panel", "80061")
        _post(staff, gladys, money.INSURANCE_PAYMENT, 15000, today - timedelta(days=55), "Blue Cross Blue Shield payment")
        _post(staff, gladys, money.ADJUSTMENT, -3000, today - timedelta(days=55), "Contractual adjustment (BCBS)")
        first = _issue(gladys, 50)
        _paid(gladys, first, first.amount_due_cents, 44, 1)
        visits = _visits(gladys) or [(today - timedelta(days=14), "Office visit – Annual check-up", "99396", 24500)]
        for on, desc, code, cents in visits:
            _post(staff, gladys, money.CHARGE, cents, on, desc, code)
        on = visits[0][0]
        _post(staff, gladys, money.CHARGE, 3500, on, "Influenza vaccine, quadrivalent", "90686")
        _post(staff, gladys, money.CHARGE, 2500, on, "Vaccine administration", "90471")
        _post(staff, gladys, money.CHARGE, 2800, on, "Complete blood count (CBC)", "85025")
        _post(staff, gladys, money.INSURANCE_PAYMENT, sum(v[3] for v in visits) - 4000, on + timedelta(days=6),
              "Blue Cross Blue Shield payment")
        _issue(gladys, 5)

        # yvone (Spanish): one open statement
        _post(staff, yvone, money.CHARGE, 25000, today - timedelta(days=21), "Consulta – paciente nuevo", "99203")
        _post(staff, yvone, money.CHARGE, 2800, today - timedelta(days=21), "Hemograma completo", "85025")
        _post(staff, yvone, money.CHARGE, 3200, today - timedelta(days=21), "Análisis de orina", "81003")
        _post(staff, yvone, money.INSURANCE_PAYMENT, 16000, today - timedelta(days=12), "Pago de Aetna")
        _issue(yvone, 3)

        # others: balances of every age, one payment with a partial refund
        others = [p for _fid, p in sorted(ctx.patients.items()) if p.id not in (gladys.id, yvone.id)]
        ages = [12, 40, 75, 110, 150, 25]
        for n, patient in enumerate(others[:len(ages)]):
            on = today - timedelta(days=ages[n])
            _post(staff, patient, money.CHARGE, 15000 + 2500 * n, on, "Office visit, established patient", "99213")
            if n % 2 == 0:
                _post(staff, patient, money.CHARGE, 4200, on, "Comprehensive metabolic panel", "80053")
            if n % 3 == 1:
                _post(staff, patient, money.INSURANCE_PAYMENT, 9000, on + timedelta(days=9), "Medicare payment")
            statement = _issue(patient, max(ages[n] - 10, 1))
            if n == 5:
                payment = _paid(patient, statement, statement.amount_due_cents, 8, 1)
                services.record_entry(LedgerEntry(
                    patient_id=patient.id, kind=money.REFUND, amount_cents=2000,
                    service_date=today - timedelta(days=2), description="Card refund", payment_entry_id=payment.id,
                    stripe_ref=f"re_demo_{patient.id}_1", reason="Copay charged twice", import_ref="demo",
                    posted_at=utcnow() - timedelta(days=2), posted_by_id=staff.id))
        # one account with new charges not yet on a statement (for the statement run)
        if len(others) > len(ages):
            _post(staff, others[len(ages)], money.CHARGE, 18500, today - timedelta(days=4),
                  "Office visit, established patient", "99213")
        services.compute_aging_snapshot()  # the staff pages' first aging (then the hourly beat job)
    db.session.flush()
    ctx.notes.append("Billing: /billing (gladys has an open statement: pay it with test card 4242 4242 4242 4242, "
                     "any future date, any CVC; 4000 0025 0000 3155 asks for 3-D Secure), staff /billing/staff "
                     "(billing@clinic.example), reports /billing/staff/reports. Stripe: localstripe on "
                     "127.0.0.1:8420, started by make run.")

"""Real billing objects of a victim patient, for the security suite's horizontal probes
(tests/security/test_access_control.py asks for one id per endpoint that takes a public_id)."""

from __future__ import annotations

from portal.extensions import db


def _objects(victim) -> dict:
    cached = getattr(victim, "_billing_objects", None)
    if cached is not None:
        return cached
    from flask import current_app

    from portal.billing import money, services
    from portal.billing.models import LedgerEntry, PaymentAttempt
    from tests.billing.helpers import bill, billing_staff

    patient = victim._patient
    staff = billing_staff()
    statement = bill(patient, staff=staff)
    attempt = PaymentAttempt(patient_id=patient.id, statement_id=statement.id, attempt_key=f"victim-{patient.id}",
                             amount_cents=1000, currency="usd", status="succeeded",
                             stripe_payment_intent_id=f"pi_victim{patient.id}")
    db.session.add(attempt)
    db.session.flush()
    payment = services.record_entry(LedgerEntry(
        patient_id=patient.id, kind=money.PAYMENT, amount_cents=-1000, service_date=statement.due_date,
        description="Card payment", attempt_id=attempt.id, stripe_ref=attempt.stripe_payment_intent_id))
    with current_app.test_request_context():
        run = services.start_run(staff)
    db.session.commit()
    victim._billing_objects = {"statement": statement.public_id, "attempt": attempt.public_id,
                               "payment": payment.public_id, "patient": patient.public_id, "run": run.public_id}
    return victim._billing_objects


BY_ENDPOINT = {
    "billing.finish": "attempt", "billing.receipt": "attempt",
    "billing_staff.account": "patient", "billing_staff.post_entry": "patient", "billing_staff.issue": "patient",
    "billing_staff.refund": "payment", "billing_staff.run": "run",
}


def victim_object_id(victim, endpoint: str) -> str:
    return _objects(victim)[BY_ENDPOINT.get(endpoint, "statement")]

"""Billing test data: a patient with charges and an issued statement."""

from __future__ import annotations

from datetime import date, timedelta

from flask import current_app

from portal.extensions import db

CHARGES = [("Office visit, established patient", "99213", 18500), ("Lipid panel", "80061", 4200),
           ("Flu vaccine", "90686", 3500)]


def billing_staff():
    from tests.factories import create_user

    return create_user("billing")


def bill(patient, charges=CHARGES, *, staff=None, issue=True, days_ago=10):
    """Post charges for `patient` and (issue=True) issue a statement; returns the statement (or None)."""
    from portal.billing import services

    staff = staff or billing_staff()
    with current_app.test_request_context():
        for i, (desc, code, cents) in enumerate(charges):
            services.post_entry(staff, patient, kind="charge", amount_cents=cents,
                                service_date=date.today() - timedelta(days=days_ago + i), description=desc, code=code)
        statement = services.issue_statement(staff, patient, notify_patient=False) if issue else None
    db.session.commit()
    return statement


def total(charges=CHARGES) -> int:
    return sum(c for _d, _c, c in charges)

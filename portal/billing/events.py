"""Billing's audit tags and data category. Every view of a patient's bills uses core's PATIENT_VIEW with
the "billing" category; every money action has its own tag."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l

from portal.core.audit import register_categories, register_tags


class BillTag(str, enum.Enum):
    ENTRY_POSTED = "billing.entry_posted"
    ENTRIES_IMPORTED = "billing.entries_imported"
    STATEMENT_ISSUED = "billing.statement_issued"
    STATEMENT_PDF = "billing.statement_pdf"
    STATEMENT_RUN = "billing.statement_run"
    PAYMENT_STARTED = "billing.payment_started"
    PAYMENT_POSTED = "billing.payment_posted"
    PAYMENT_FAILED = "billing.payment_failed"
    PAYMENT_FLAGGED = "billing.payment_flagged"
    PAYMENT_UNKNOWN = "billing.payment_unknown"
    REFUND_POSTED = "billing.refund_posted"
    PAPERLESS_CHANGED = "billing.paperless_changed"
    EXPORTED = "billing.exported"
    RECONCILED = "billing.reconciled"
    AGING_REQUESTED = "billing.aging_requested"


register_tags({
    BillTag.ENTRY_POSTED: _l("Posted a charge or adjustment"),
    BillTag.ENTRIES_IMPORTED: _l("Imported charges from a file"),
    BillTag.STATEMENT_ISSUED: _l("Issued a statement"),
    BillTag.STATEMENT_PDF: _l("Opened a statement PDF"),
    BillTag.STATEMENT_RUN: _l("Ran a statement batch"),
    BillTag.PAYMENT_STARTED: _l("Started a card payment"),
    BillTag.PAYMENT_POSTED: _l("Payment posted"),
    BillTag.PAYMENT_FAILED: _l("Card payment failed"),
    BillTag.PAYMENT_FLAGGED: _l("Payment flagged for review"),
    BillTag.PAYMENT_UNKNOWN: _l("Card payment unanswered by Stripe, to reconcile"),
    BillTag.REFUND_POSTED: _l("Refunded a payment"),
    BillTag.PAPERLESS_CHANGED: _l("Changed paperless statements"),
    BillTag.EXPORTED: _l("Exported billing data"),
    BillTag.RECONCILED: _l("Reconciled payments with Stripe"),
    BillTag.AGING_REQUESTED: _l("Asked for the aging report to be recomputed"),
})
register_categories({"billing": _l("Bills and payments")})

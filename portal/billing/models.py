"""Billing tables: one account per patient (Stripe customer, paperless choice), the immutable ledger,
statements (numbered, immutable once issued), statement batch runs, payment attempts (our own record,
created before Stripe is called: the double-charge guard), Stripe webhook events (stored by id, processed
once). Money is integer cents; times are aware UTC."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PatientOwnedMixin, PublicIdMixin, UTCDateTime, utcnow
from portal.extensions import db


class BillingAccount(PatientOwnedMixin, db.Model):
    """The guarantor account of one patient. Its row is locked while a payment starts, so two payments of
    one bill cannot run side by side. `balance_cents` is the running balance: the sum of the patient's
    ledger entries, moved by services.record_entry in the same transaction as each posting (an atomic
    `balance_cents = balance_cents + amount`), so staff lists read the top balances from an index instead
    of summing the whole ledger."""

    __tablename__ = "billing_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    paperless: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (UniqueConstraint("patient_id", name="uq_billing_accounts_patient_id"),
                      # top balances (ORDER BY balance_cents DESC, id DESC LIMIT n) and the accounts that owe
                      Index("ix_billing_accounts_balance_cents_id", "balance_cents", "id"))


class LedgerEntry(PatientOwnedMixin, db.Model):
    """One immutable entry; `amount_cents` is its signed effect on the balance (money.signed_amount).
    Corrections are new entries. Payments and refunds carry the Stripe id they came from (unique: posted
    once whichever of the API answer, the webhook or reconciliation comes first)."""

    __tablename__ = "billing_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    service_date: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(20))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stripe_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    payment_entry_id: Mapped[int | None] = mapped_column(ForeignKey("billing_entries.id"))  # refunds
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("billing_payment_attempts.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    import_ref: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_billing_entries_patient_id_id", "patient_id", "id"),
                      Index("ix_billing_entries_posted_at", "posted_at"),  # reports by posting time (G8)
                      Index("ix_billing_entries_kind_posted_at", "kind", "posted_at"))  # payments by day

    @property
    def display_amount(self) -> int:
        return self.amount_cents


class StatementRun(PublicIdMixin, db.Model):
    __tablename__ = "billing_statement_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    total: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[str | None] = mapped_column(Text)  # one "account id: reason" per line, no PHI


class Statement(PatientOwnedMixin, db.Model):
    """Issued once and never changed: entries (first_entry_id, last_entry_id] of its patient, the
    previous balance, and the amount due."""

    __tablename__ = "billing_statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_date: Mapped[date] = mapped_column(Date)
    previous_balance_cents: Mapped[int] = mapped_column(BigInteger)
    charges_cents: Mapped[int] = mapped_column(BigInteger)
    credits_cents: Mapped[int] = mapped_column(BigInteger)
    amount_due_cents: Mapped[int] = mapped_column(BigInteger)
    first_entry_id: Mapped[int] = mapped_column(Integer)  # exclusive: the previous statement's last entry
    last_entry_id: Mapped[int] = mapped_column(Integer)  # inclusive
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_statement_runs.id"))

    patient = relationship("Patient", lazy="joined")

    __table_args__ = (Index("ix_billing_statements_patient_id_id", "patient_id", "id"),)

    @property
    def label(self) -> str:
        return f"S-{self.number:06d}"


class PaymentAttempt(PatientOwnedMixin, db.Model):
    """Our record of one card payment, written before Stripe is called. `attempt_key` comes from the
    payment form (one per page load): a double click, a retry or a reload of the answer find the same row
    and never charge twice; it is also the Stripe Idempotency-Key."""

    __tablename__ = "billing_payment_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("billing_statements.id"), index=True)
    attempt_key: Mapped[str] = mapped_column(String(64), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # created | requires_action | succeeded | failed | flagged | unknown (no answer from Stripe: reconcile)
    # | unsent (Stripe unreachable, nothing charged; the same form may try again)
    status: Mapped[str] = mapped_column(String(20), default="created")
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(64))
    save_card: Mapped[bool] = mapped_column(Boolean, default=False)
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    statement = relationship(Statement, lazy="joined")


class AgingSnapshot(db.Model):
    """The aging of every account that owes, computed once (services.compute_aging_snapshot: the Celery beat
    job, the staff "recompute now" button, the demo seed) and shown by the staff pages with its time, so a
    page never reads the whole ledger. One row per computation; old rows are pruned."""

    __tablename__ = "billing_aging_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    as_of: Mapped[date] = mapped_column(Date)  # the clinic's date the ages are counted from
    days_0_30: Mapped[int] = mapped_column(BigInteger, default=0)
    days_31_60: Mapped[int] = mapped_column(BigInteger, default=0)
    days_61_90: Mapped[int] = mapped_column(BigInteger, default=0)
    days_90_plus: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    accounts: Mapped[int] = mapped_column(Integer, default=0)  # accounts that owe, read for this snapshot
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the beat job

    def buckets(self) -> dict[str, int]:
        return {"0_30": self.days_0_30, "31_60": self.days_31_60, "61_90": self.days_61_90,
                "90_plus": self.days_90_plus, "total": self.total}


class StripeEvent(db.Model):
    """A webhook event, stored by its id (unique) before it is processed: duplicates change nothing."""

    __tablename__ = "billing_stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(32))

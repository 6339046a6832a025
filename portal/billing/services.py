"""Billing rules over the database: the ledger, statements, card payments, refunds, reports.

Services take the acting user, load through the ownership scope, flush (never commit), audit, and raise
DomainError / Forbidden / NotFound. The only module that talks to Stripe is gateway.py.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from portal.billing import gateway, money
from portal.billing.events import BillTag
from portal.billing.models import AgingSnapshot, BillingAccount, LedgerEntry, PaymentAttempt, Statement, StatementRun
from portal.core.access import owned_or_404, patient_for, require_function, scope_filter
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound
from portal.core.i18n import clinic_tz
from portal.extensions import db
from portal.patients.models import Patient

def kind_label(kind: str, staff: bool = False) -> str:
    labels = {
        money.CHARGE: _("Charge"),
        money.INSURANCE_PAYMENT: _("Insurance payment"),
        money.ADJUSTMENT: _("Adjustment"),
        money.PAYMENT: _("Card payment") if staff else _("Your payment"),
        money.REFUND: _("Refund"),
    }
    return labels.get(kind, kind)


def today_local() -> date:
    return utcnow().astimezone(clinic_tz()).date()


# --- accounts and the ledger -------------------------------------------------------------------------

def account_for(patient) -> BillingAccount:
    return _account(patient.id)


def _account(patient_id: int) -> BillingAccount:
    account = db.session.execute(
        select(BillingAccount).where(BillingAccount.patient_id == patient_id)).scalars().first()
    if account is None:
        try:
            with db.session.begin_nested():
                account = BillingAccount(patient_id=patient_id)
                db.session.add(account)
        except IntegrityError:  # another request made it first
            account = db.session.execute(
                select(BillingAccount).where(BillingAccount.patient_id == patient_id)).scalars().one()
    return account


def record_entry(entry: LedgerEntry) -> LedgerEntry:
    """The one way a ledger entry is written (staff postings, imports, card payments, refunds, the demo):
    the row is inserted and its account's running balance moves by the same amount, with an atomic
    `balance_cents = balance_cents + amount` in the caller's transaction (and savepoint: a payment whose
    Stripe id is already posted fails the insert, and the balance does not move). The account row is made
    if the patient has none yet. Entries are never updated or deleted, so the balance stays their sum."""
    _account(entry.patient_id)
    db.session.add(entry)
    db.session.flush()
    db.session.execute(update(BillingAccount).where(BillingAccount.patient_id == entry.patient_id)
                       .values(balance_cents=BillingAccount.balance_cents + int(entry.amount_cents))
                       .execution_options(synchronize_session="fetch"))
    return entry


def balance_cents(patient_id: int) -> int:
    """The balance from the entries themselves (one patient's rows, by index). The account's stored
    balance_cents always equals it (tests/billing/test_ledger.py proves it through any sequence)."""
    return int(db.session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
                                  .where(LedgerEntry.patient_id == patient_id)).scalar_one())


def stored_balance_cents(patient_id: int) -> int:
    """The account's running balance (0 for a patient without an account: no entries either)."""
    return int(db.session.execute(select(BillingAccount.balance_cents).where(
        BillingAccount.patient_id == patient_id)).scalar_one_or_none() or 0)


def post_entry(actor, patient, *, kind: str, amount_cents: int, service_date: date, description: str,
               code: str | None = None, reason: str | None = None, import_ref: str | None = None) -> LedgerEntry:
    """A charge, insurance payment or adjustment typed (or imported) by billing staff."""
    require_function(actor, "billing_ledger")
    if kind not in money.STAFF_POSTABLE:
        raise DomainError(_("Choose a charge, an insurance payment or an adjustment."), field="kind")
    try:
        signed = money.signed_amount(kind, amount_cents)
    except money.MoneyError:
        raise DomainError(_("Enter an amount other than zero (only adjustments may be negative)."),
                          field="amount") from None
    if service_date > today_local() + timedelta(days=1):
        raise DomainError(_("The date of service cannot be in the future."), field="service_date")
    entry = record_entry(LedgerEntry(
        patient_id=patient.id, kind=kind, amount_cents=signed, service_date=service_date,
        description=description.strip()[:200], code=(code or "").strip()[:20] or None,
        reason=(reason or "").strip()[:200] or None, posted_by_id=actor.id, import_ref=import_ref))
    if import_ref is None:
        record_event(BillTag.ENTRY_POSTED, actor=actor, patient=patient, category="billing",
                     object_type="billing_entry", object_id=entry.public_id, detail={"kind": kind})
    return entry


class ImportError_(DomainError):
    def __init__(self, errors: list[tuple[int, str]]):
        DomainError.__init__(self, _("Nothing was imported: fix the lines below and try again."), field="file")
        self.errors = errors


IMPORT_COLUMNS = ("mrn", "service_date", "kind", "code", "description", "amount")


def import_entries(actor, text: str) -> int:
    """CSV with a header row (mrn, service_date, kind, code, description, amount): all lines or none.
    Every bad line is reported with its number."""
    require_function(actor, "billing_ledger")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in IMPORT_COLUMNS if c not in header]
    if missing:
        raise ImportError_([(1, _("Missing columns: %(cols)s", cols=", ".join(missing)))])
    reader.fieldnames = header
    rows, errors = [], []
    mrns = set()
    lines = list(reader)
    if not lines:
        raise ImportError_([(1, _("The file has no lines after the header."))])
    if len(lines) > 5000:
        raise ImportError_([(1, _("At most 5,000 lines per file."))])
    for row in lines:
        mrns.add((row.get("mrn") or "").strip())
    patients = {p.mrn: p for p in db.session.execute(select(Patient).where(Patient.mrn.in_(mrns))).scalars()}
    for n, row in enumerate(lines, start=2):
        problems = []
        patient = patients.get((row.get("mrn") or "").strip())
        if patient is None:
            problems.append(_("unknown MRN"))
        try:
            on = date.fromisoformat((row.get("service_date") or "").strip())
            if on > today_local():
                problems.append(_("date of service in the future"))
        except ValueError:
            on = None
            problems.append(_("date must be YYYY-MM-DD"))
        kind = (row.get("kind") or "").strip().lower()
        if kind not in money.STAFF_POSTABLE:
            problems.append(_("kind must be charge, insurance_payment or adjustment"))
        description = (row.get("description") or "").strip()
        if not description or len(description) > 200:
            problems.append(_("description is required (at most 200 characters)"))
        code = (row.get("code") or "").strip()
        if len(code) > 20:
            problems.append(_("code is longer than 20 characters"))
        try:
            cents = money.parse_cents(row.get("amount") or "", allow_negative=kind == money.ADJUSTMENT)
            if kind in money.KINDS:
                money.signed_amount(kind, cents)
        except money.MoneyError:
            problems.append(_("amount must be a number of dollars and cents, not zero"))
            cents = None
        if problems:
            errors.append((n, "; ".join(str(p) for p in problems)))
        else:
            rows.append((patient, kind, cents, on, description, code))
    if errors:
        raise ImportError_(errors)
    ref = secrets.token_hex(8)
    for patient, kind, cents, on, description, code in rows:
        post_entry(actor, patient, kind=kind, amount_cents=cents, service_date=on, description=description,
                   code=code, import_ref=ref)
    record_event(BillTag.ENTRIES_IMPORTED, actor=actor, category="billing", object_type="billing_import",
                 object_id=ref, detail={"lines": len(rows), "patients": len({p.id for p, *_ in rows})})
    return len(rows)


# --- statements ------------------------------------------------------------------------------------

def last_statement(patient_id: int) -> Statement | None:
    return db.session.execute(select(Statement).where(Statement.patient_id == patient_id)
                              .order_by(Statement.id.desc()).limit(1)).scalars().first()


def statement_entries(statement: Statement) -> list[LedgerEntry]:
    return db.session.execute(select(LedgerEntry).where(
        LedgerEntry.patient_id == statement.patient_id, LedgerEntry.id > statement.first_entry_id,
        LedgerEntry.id <= statement.last_entry_id).order_by(LedgerEntry.service_date, LedgerEntry.id)).scalars().all()


def _next_number() -> int:
    return int(db.session.execute(select(func.coalesce(func.max(Statement.number), 0))).scalar_one()) + 1


def issue_statement(actor, patient, *, run: StatementRun | None = None, notify_patient: bool = True,
                    language: str | None = None) -> Statement | None:
    """A statement of the entries posted since the last one; None when there is nothing new (so a rerun
    never duplicates). Numbered in order, due after BILLING_STATEMENT_DUE_DAYS, immutable."""
    if actor is not None:
        require_function(actor, "billing_statements")
    previous = last_statement(patient.id)
    after = previous.last_entry_id if previous else 0
    new = db.session.execute(select(LedgerEntry.id, LedgerEntry.amount_cents).where(
        LedgerEntry.patient_id == patient.id, LedgerEntry.id > after).order_by(LedgerEntry.id)).all()
    if not new:
        return None
    previous_balance = balance_cents_through(patient.id, after)
    totals = money.statement_totals(previous_balance, [a for _i, a in new])
    statement = Statement(patient_id=patient.id, number=_next_number(), issued_at=utcnow(),
                          due_date=today_local() + timedelta(days=current_app.config["BILLING_STATEMENT_DUE_DAYS"]),
                          previous_balance_cents=totals.previous_balance, charges_cents=totals.charges,
                          credits_cents=totals.credits, amount_due_cents=totals.amount_due,
                          first_entry_id=after, last_entry_id=new[-1][0],
                          issued_by_id=getattr(actor, "id", None), run_id=run.id if run else None)
    db.session.add(statement)
    db.session.flush()
    record_event(BillTag.STATEMENT_ISSUED, actor=actor, patient=patient, category="billing",
                 object_type="statement", object_id=statement.public_id,
                 detail={"number": statement.number, "run": run.public_id if run else None})
    if notify_patient:
        from portal.core.web import external_url
        from portal.notifications.kinds import NoticeKind
        from portal.notifications.services import notify

        notify(patient, NoticeKind.STATEMENT_READY,
               link=external_url("billing.statement", public_id=statement.public_id))
    return statement


def balance_cents_through(patient_id: int, last_entry_id: int) -> int:
    if not last_entry_id:
        return 0
    return int(db.session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.patient_id == patient_id, LedgerEntry.id <= last_entry_id)).scalar_one())


def start_run(actor) -> StatementRun:
    require_function(actor, "billing_statements")
    run = StatementRun(started_by_id=actor.id, status="running")
    db.session.add(run)
    db.session.flush()
    record_event(BillTag.STATEMENT_RUN, actor=actor, category="billing", object_type="statement_run",
                 object_id=run.public_id)
    return run


def accounts_due_ids() -> list[int]:
    """Patients with a balance owed and entries newer than their last statement (in id order)."""
    balances = (select(LedgerEntry.patient_id.label("pid"), func.sum(LedgerEntry.amount_cents).label("bal"),
                       func.max(LedgerEntry.id).label("last_id"))
                .group_by(LedgerEntry.patient_id).subquery())
    stated = (select(Statement.patient_id.label("pid"), func.max(Statement.last_entry_id).label("through"))
              .group_by(Statement.patient_id).subquery())
    rows = db.session.execute(
        select(balances.c.pid).outerjoin(stated, stated.c.pid == balances.c.pid)
        .where(balances.c.bal > 0, balances.c.last_id > func.coalesce(stated.c.through, 0))
        .order_by(balances.c.pid)).scalars().all()
    return list(rows)


COMMIT_EVERY = 50


def process_run(run_id: int, *, commit: bool = True, notify_patient: bool = True) -> StatementRun:
    """Issue a statement to every account that owes and has something new, each account in its own
    savepoint, committed every COMMIT_EVERY accounts (commit=True, the worker: the progress shows) or with
    the request (commit=False). A failure on one account is counted and noted (no PHI: the account id)
    and never stops the batch; a rerun issues nothing twice."""
    run = db.session.get(StatementRun, run_id)
    ids = accounts_due_ids()
    run.total = len(ids)
    if commit:
        db.session.commit()
    for n, pid in enumerate(ids, start=1):
        try:
            with db.session.begin_nested():
                patient = db.session.get(Patient, pid)
                made = issue_statement(None, patient, run=run, notify_patient=notify_patient)
            if made is None:
                run.skipped += 1
            else:
                run.issued += 1
        except Exception as exc:  # noqa: BLE001 - reported on the run, the batch goes on
            run.failed += 1
            run.errors = ((run.errors or "") + f"account {pid}: {type(exc).__name__}\n")[-4000:]
            current_app.logger.exception("statement for patient id %s failed", pid)
        if commit and n % COMMIT_EVERY == 0:
            db.session.commit()
    run.status = "done"
    run.finished_at = utcnow()
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return run


def load_run(actor, public_id: str) -> StatementRun:
    require_function(actor, "billing_statements")
    from portal.core.access import load_or_404

    return load_or_404(select(StatementRun).where(StatementRun.public_id == str(public_id)[:32]),
                       "statement_run", public_id, actor)


# --- what the patient sees ------------------------------------------------------------------------

def overview(actor, patient) -> dict:
    account = db.session.execute(select(BillingAccount).where(BillingAccount.patient_id == patient.id)).scalars().first()
    statements = db.session.execute(select(Statement).where(scope_filter(Statement, actor),
                                                            Statement.patient_id == patient.id)
                                    .order_by(Statement.id.desc()).limit(50)).scalars().all()
    payments = db.session.execute(select(LedgerEntry).where(
        scope_filter(LedgerEntry, actor), LedgerEntry.patient_id == patient.id,
        LedgerEntry.kind.in_((money.PAYMENT, money.REFUND))).order_by(LedgerEntry.id.desc()).limit(50)).scalars().all()
    attempts = {a.id: a for a in db.session.execute(select(PaymentAttempt).where(
        PaymentAttempt.patient_id == patient.id, PaymentAttempt.id.in_(
            [p.attempt_id for p in payments if p.attempt_id]))).scalars()} if payments else {}
    failed = db.session.execute(select(PaymentAttempt).where(
        PaymentAttempt.patient_id == patient.id, PaymentAttempt.status == "failed",
        PaymentAttempt.created_at > utcnow() - timedelta(days=7)).order_by(PaymentAttempt.id.desc()).limit(1)
    ).scalars().first()
    checking = db.session.execute(select(PaymentAttempt.id).where(
        PaymentAttempt.patient_id == patient.id, PaymentAttempt.status == "unknown").limit(1)).first() is not None
    balance = balance_cents(patient.id)
    latest = statements[0] if statements else None
    due = money.payable(latest.amount_due_cents, balance) if latest else 0
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="billing",
                 object_type="billing_account", detail={"statements": len(statements)})
    return {"patient": patient, "account": account, "balance": balance, "statements": statements,
            "latest": latest, "amount_due": due, "payments": payments, "attempts": attempts, "checking": checking,
            "failed_attempt": failed if failed and (not payments or failed.id > (payments[0].attempt_id or 0))
            else None}


def home_card_scalars(user, patient) -> dict | None:
    """The home card's balance, as scalar subqueries for the dashboard's one SELECT (core.registry)."""
    if patient is None:
        return None
    mine = LedgerEntry.patient_id == patient.id
    return {"balance": select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(mine).scalar_subquery(),
            "entries": select(func.count(LedgerEntry.id)).where(mine).scalar_subquery()}


def home_card(user, patient, values: dict) -> dict | None:
    if patient is None or not values.get("entries"):
        return None
    return {"balance": int(values["balance"])}


def view_statement(actor, public_id: str, *, pdf: bool = False) -> dict:
    statement = owned_or_404(Statement, public_id, actor)
    entries = statement_entries(statement)
    balance = balance_cents(statement.patient_id)
    record_event(BillTag.STATEMENT_PDF if pdf else EventTag.PATIENT_VIEW, actor=actor,
                 patient_id=statement.patient_id, category="billing", object_type="statement",
                 object_id=statement.public_id)
    return {"statement": statement, "entries": entries, "balance": balance,
            "payable": money.payable(statement.amount_due_cents, balance), "patient": statement.patient}


def set_paperless(actor, paperless: bool) -> BillingAccount:
    patient = patient_for(actor)
    account = account_for(patient)
    account.paperless = bool(paperless)
    account.updated_at = utcnow()
    record_event(BillTag.PAPERLESS_CHANGED, actor=actor, patient=patient, category="billing",
                 detail={"paperless": account.paperless})
    return account


# --- card payments ---------------------------------------------------------------------------------

# "unknown": the charge request may have reached Stripe but no answer came back (reconciliation looks it up;
# until then no other payment of this patient is taken). "unsent": Stripe was unreachable, nothing was
# charged; the same form (attempt key) may try again.
IN_FLIGHT = ("created", "requires_action", "unknown")
IN_FLIGHT_MINUTES = 15


def new_attempt_key() -> str:
    return secrets.token_urlsafe(24)


def pay_context(actor, public_id: str) -> dict:
    """The pay page: what is owed (from the ledger), and a SetupIntent for Stripe.js's Card Element."""
    ctx = view_statement(actor, public_id)
    statement = ctx["statement"]
    ctx.update(minimum=min(current_app.config["BILLING_MIN_PAYMENT_CENTS"], ctx["payable"]) if ctx["payable"] else 0,
               attempt_key=new_attempt_key(), client_secret=None, unavailable=False)
    if ctx["payable"] <= 0:
        return ctx
    if not gateway.enabled():
        ctx["unavailable"] = True
        return ctx
    account = account_for(statement.patient)
    try:
        if not account.stripe_customer_id:
            account.stripe_customer_id = gateway.create_customer(statement.patient.public_id)
        ctx["client_secret"] = gateway.create_setup_intent(account.stripe_customer_id, statement.public_id)["client_secret"]
    except gateway.GatewayError:
        current_app.logger.warning("Stripe unavailable for the pay page")
        ctx["unavailable"] = True
    return ctx


def start_payment(actor, public_id: str, *, attempt_key: str, payment_method: str, amount_choice: str,
                  amount_text: str | None, save_card: bool) -> PaymentAttempt:
    """Charge the card for a statement. The amount is always computed here from the ledger. One attempt
    per form (attempt_key): a repeat returns the first attempt and calls Stripe no more."""
    statement = owned_or_404(Statement, public_id, actor)
    if not attempt_key or len(attempt_key) > 64 or not payment_method or len(payment_method) > 64 \
            or not payment_method.startswith(("pm_", "card_", "src_")):
        raise DomainError(_("The card details did not reach us. Please try again."))
    existing = _attempt_by_key(attempt_key)
    if existing is not None and existing.status != "unsent":
        return _same_attempt(existing, statement)
    account = db.session.execute(select(BillingAccount).where(BillingAccount.patient_id == statement.patient_id)
                                 .with_for_update()).scalars().first()  # one payment of a bill at a time
    if account is None or not account.stripe_customer_id:
        raise DomainError(_("Please reload the page and try again."))
    existing = _attempt_by_key(attempt_key)  # a double submit that waited for the lock
    if existing is not None:
        existing = _same_attempt(existing, statement)
        if existing.status != "unsent":
            return existing
    busy = db.session.execute(select(PaymentAttempt.id).where(or_(
        and_(PaymentAttempt.statement_id == statement.id, PaymentAttempt.status.in_(IN_FLIGHT),
             PaymentAttempt.created_at > utcnow() - timedelta(minutes=IN_FLIGHT_MINUTES)),
        and_(PaymentAttempt.patient_id == statement.patient_id, PaymentAttempt.status == "unknown")))).first()
    if busy is not None:
        raise DomainError(_("A payment for this statement is already in progress. Check your billing page before "
                            "trying again."))
    payable = money.payable(statement.amount_due_cents, balance_cents(statement.patient_id))
    minimum = current_app.config["BILLING_MIN_PAYMENT_CENTS"]
    if amount_choice == "other":
        try:
            amount = money.parse_cents(amount_text or "")
        except money.MoneyError:
            raise DomainError(_("Enter an amount in dollars and cents, for example 25.00."), field="amount") from None
    else:
        amount = payable
    try:
        money.check_payment(amount, payable, minimum)
    except money.MoneyError as exc:
        msg = {"nothing owed": _("This statement has nothing left to pay."),
               "more than owed": _("You can pay at most what you owe on this statement."),
               "below minimum": _("The smallest payment we can take online is the minimum shown.")}
        raise DomainError(msg.get(str(exc), _("Check the amount.")), field="amount") from None
    if existing is not None:  # this form's earlier try found Stripe unreachable: the same row tries again
        attempt = existing
        attempt.amount_cents, attempt.stripe_payment_method_id = amount, payment_method
        attempt.save_card, attempt.status = bool(save_card), "created"
        attempt.created_at = attempt.updated_at = utcnow()  # this try starts now (in-flight and settle windows)
        attempt.currency = current_app.config["BILLING_CURRENCY"]
        db.session.flush()
    else:
        attempt = PaymentAttempt(patient_id=statement.patient_id, statement_id=statement.id, attempt_key=attempt_key,
                                 amount_cents=amount, currency=current_app.config["BILLING_CURRENCY"],
                                 stripe_payment_method_id=payment_method, save_card=bool(save_card),
                                 created_by_id=actor.id, status="created")
        try:
            with db.session.begin_nested():
                db.session.add(attempt)
        except IntegrityError:
            return _same_attempt(_attempt_by_key(attempt_key), statement)
    record_event(BillTag.PAYMENT_STARTED, actor=actor, patient_id=statement.patient_id, category="billing",
                 object_type="payment_attempt", object_id=attempt.public_id, detail={"amount_cents": amount})
    try:
        pi = gateway.charge(amount_cents=amount, currency=attempt.currency, customer_id=account.stripe_customer_id,
                            payment_method=payment_method, attempt_key=attempt.attempt_key,
                            metadata={"statement": statement.public_id, "patient": statement.patient.public_id})
    except gateway.CardDeclined as exc:
        if exc.payment_intent and exc.payment_intent.get("id"):
            attempt.stripe_payment_intent_id = exc.payment_intent["id"]
        _fail(attempt, exc.message, actor=actor)
        return attempt
    except gateway.OutcomeUnknown:
        # Stripe may have charged the card: say neither "charged" nor "not charged"; reconciliation (or the
        # webhook) settles it, and no other payment of this patient is taken meanwhile.
        attempt.status, attempt.updated_at = "unknown", utcnow()
        record_event(BillTag.PAYMENT_UNKNOWN, actor=actor, patient_id=statement.patient_id, category="billing",
                     object_type="payment_attempt", object_id=attempt.public_id, outcome="failure")
        return attempt
    except gateway.Unavailable:
        # Stripe was never reached: nothing was charged. The attempt stays on record; the same form (same
        # key, so the same Idempotency-Key) may try again.
        attempt.status, attempt.updated_at = "unsent", utcnow()
        raise DomainError(_("The payment service is unavailable right now. You were not charged; please try again "
                            "in a few minutes.")) from None
    except gateway.GatewayError:
        _forget(attempt)
        raise DomainError(_("Your card could not be used. You were not charged.")) from None
    apply_payment_intent(attempt, pi, actor=actor)
    return attempt


def _forget(attempt: PaymentAttempt) -> None:
    db.session.delete(attempt)
    db.session.flush()


def _attempt_by_key(key: str) -> PaymentAttempt | None:
    return db.session.execute(select(PaymentAttempt).where(PaymentAttempt.attempt_key == key)).scalars().first()


def _same_attempt(attempt: PaymentAttempt, statement: Statement) -> PaymentAttempt:
    if attempt is None or attempt.statement_id != statement.id:
        raise NotFound()
    return attempt


def _fail(attempt: PaymentAttempt, message: str | None, *, actor=None) -> None:
    if attempt.status == "succeeded":
        return  # a late failure never undoes a success
    attempt.status = "failed"
    attempt.failure_message = (message or _("Your card was declined."))[:300]
    attempt.updated_at = utcnow()
    record_event(BillTag.PAYMENT_FAILED, actor=actor, patient_id=attempt.patient_id, category="billing",
                 object_type="payment_attempt", object_id=attempt.public_id)


def apply_payment_intent(attempt: PaymentAttempt, pi: dict, *, actor=None) -> PaymentAttempt:
    """Bring our attempt in line with a PaymentIntent (from the API answer, a webhook or reconciliation).
    Idempotent and order-free: success is final; a PaymentIntent whose amount or currency differs from
    the attempt is flagged, never posted."""
    pi_id = pi.get("id")
    if pi_id and not attempt.stripe_payment_intent_id:
        attempt.stripe_payment_intent_id = pi_id
    if pi_id and attempt.stripe_payment_intent_id != pi_id:
        return attempt
    status = pi.get("status")
    if int(pi.get("amount") or 0) != attempt.amount_cents or str(pi.get("currency", "")).lower() != attempt.currency:
        if attempt.status != "flagged":
            attempt.status = "flagged"
            attempt.updated_at = utcnow()
            record_event(BillTag.PAYMENT_FLAGGED, actor=actor, patient_id=attempt.patient_id, category="billing",
                         object_type="payment_attempt", object_id=attempt.public_id, outcome="failure",
                         detail={"reason": "amount_or_currency_mismatch"})
        return attempt
    if status == "succeeded":
        record_payment(attempt, pi)
    elif status == "requires_action" and attempt.status in ("created", "unknown"):
        attempt.status = "requires_action"
        attempt.updated_at = utcnow()
    elif status in ("requires_payment_method", "canceled") and attempt.status in IN_FLIGHT:
        _fail(attempt, gateway.failure_message(pi), actor=actor)
    return attempt


def record_payment(attempt: PaymentAttempt, pi: dict) -> LedgerEntry:
    """Post the payment once (the entry's stripe_ref is the PaymentIntent id, unique), then the receipt
    notice and, unless the patient kept the card, detach it."""
    existing = db.session.execute(select(LedgerEntry).where(LedgerEntry.stripe_ref == pi["id"])).scalars().first()
    newly = False
    if existing is None:
        entry = LedgerEntry(patient_id=attempt.patient_id, kind=money.PAYMENT, amount_cents=-attempt.amount_cents,
                            service_date=today_local(), description="Card payment", attempt_id=attempt.id,
                            stripe_ref=pi["id"])
        try:
            with db.session.begin_nested():
                record_entry(entry)
            newly = True
            existing = entry
        except IntegrityError:
            existing = db.session.execute(select(LedgerEntry).where(LedgerEntry.stripe_ref == pi["id"])).scalars().one()
    if attempt.status != "succeeded":
        attempt.status = "succeeded"
        attempt.succeeded_at = attempt.updated_at = utcnow()
        attempt.failure_message = None
    if newly:
        record_event(BillTag.PAYMENT_POSTED, actor=None, patient_id=attempt.patient_id, category="billing",
                     object_type="payment_attempt", object_id=attempt.public_id,
                     detail={"amount_cents": attempt.amount_cents, "payment_intent": pi["id"]})
        _card_summary(attempt, pi)
        from portal.core.web import external_url
        from portal.notifications.kinds import NoticeKind
        from portal.notifications.services import notify

        patient = db.session.get(Patient, attempt.patient_id)
        notify(patient, NoticeKind.PAYMENT_RECEIPT, link=external_url("billing.receipt", public_id=attempt.public_id))
        if not attempt.save_card and attempt.stripe_payment_method_id:
            gateway.detach_payment_method(attempt.stripe_payment_method_id)
    return existing


def _card_summary(attempt: PaymentAttempt, pi: dict) -> None:
    charge = pi.get("latest_charge")
    details = (charge or {}).get("payment_method_details") if isinstance(charge, dict) else None
    card = (details or {}).get("card") or {}
    if not card and attempt.stripe_payment_method_id:
        try:
            card = gateway.payment_method_summary(attempt.stripe_payment_method_id)
        except gateway.GatewayError:
            card = {}
    attempt.card_brand = (card.get("brand") or "")[:20] or None
    attempt.card_last4 = (card.get("last4") or "")[:4] or None


def finish_payment(actor, public_id: str) -> PaymentAttempt:
    """After 3-D Secure in the page: read the PaymentIntent back and record what happened."""
    attempt = owned_or_404(PaymentAttempt, public_id, actor)
    if attempt.status in IN_FLIGHT and attempt.stripe_payment_intent_id:
        try:
            pi = gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id)
        except gateway.GatewayError:
            raise DomainError(_("We could not confirm your payment yet. Check your billing page in a minute.")) from None
        apply_payment_intent(attempt, pi, actor=actor)
    return attempt


def client_secret_for(attempt: PaymentAttempt) -> str | None:
    if attempt.status != "requires_action" or not attempt.stripe_payment_intent_id:
        return None
    return gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id).get("client_secret")


def receipt(actor, public_id: str) -> dict:
    attempt = owned_or_404(PaymentAttempt, public_id, actor)
    if attempt.status != "succeeded":
        raise NotFound()
    entry = db.session.execute(select(LedgerEntry).where(LedgerEntry.attempt_id == attempt.id,
                                                         LedgerEntry.kind == money.PAYMENT)).scalars().first()
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=attempt.patient_id, category="billing",
                 object_type="payment_receipt", object_id=attempt.public_id)
    return {"attempt": attempt, "entry": entry, "statement": attempt.statement,
            "balance": balance_cents(attempt.patient_id)}


# --- refunds ---------------------------------------------------------------------------------------

def refunded_cents(payment: LedgerEntry) -> int:
    return int(db.session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.payment_entry_id == payment.id, LedgerEntry.kind == money.REFUND)).scalar_one())


def load_payment(actor, public_id: str) -> LedgerEntry:
    entry = owned_or_404(LedgerEntry, public_id, actor)
    if entry.kind != money.PAYMENT or not entry.stripe_ref:
        raise NotFound()
    return entry


def refund_payment(actor, public_id: str, *, amount_cents: int, reason: str) -> LedgerEntry:
    """Refund all or part of a card payment through Stripe; posted from Stripe's answer, audited."""
    require_function(actor, "billing_refunds")
    payment = load_payment(actor, public_id)
    db.session.execute(select(BillingAccount.id).where(BillingAccount.patient_id == payment.patient_id)
                       .with_for_update()).first()
    already = refunded_cents(payment)
    try:
        money.check_refund(-payment.amount_cents, already, amount_cents)
    except money.MoneyError:
        raise DomainError(_("A refund must be more than zero and at most %(left)s.",
                            left=format_money(-payment.amount_cents - already)), field="amount") from None
    count = db.session.execute(select(func.count(LedgerEntry.id)).where(
        LedgerEntry.payment_entry_id == payment.id)).scalar_one()
    try:
        refund = gateway.refund(payment_intent_id=payment.stripe_ref, amount_cents=amount_cents,
                                key=f"{payment.public_id}-{count + 1}",
                                metadata={"reason": reason[:200], "payment": payment.public_id})
    except gateway.Unavailable:
        raise DomainError(_("Stripe is unavailable right now; nothing was refunded. Try again shortly.")) from None
    except gateway.GatewayError as exc:
        raise DomainError(_("Stripe refused the refund: %(why)s", why=str(exc)[:200])) from None
    entry = _post_refund(payment, refund, reason=reason, actor=actor)
    return entry


def _post_refund(payment: LedgerEntry, refund: dict, *, reason: str | None, actor=None) -> LedgerEntry:
    existing = db.session.execute(select(LedgerEntry).where(LedgerEntry.stripe_ref == refund["id"])).scalars().first()
    if existing is not None:
        return existing
    entry = LedgerEntry(patient_id=payment.patient_id, kind=money.REFUND, amount_cents=int(refund["amount"]),
                        service_date=today_local(), description="Card refund", payment_entry_id=payment.id,
                        stripe_ref=refund["id"], reason=(reason or "")[:200] or None,
                        posted_by_id=getattr(actor, "id", None))
    try:
        with db.session.begin_nested():
            record_entry(entry)
    except IntegrityError:
        return db.session.execute(select(LedgerEntry).where(LedgerEntry.stripe_ref == refund["id"])).scalars().one()
    record_event(BillTag.REFUND_POSTED, actor=actor, patient_id=payment.patient_id, category="billing",
                 object_type="billing_entry", object_id=entry.public_id,
                 detail={"amount_cents": entry.amount_cents, "refund": refund["id"]})
    return entry


# --- webhooks and reconciliation ---------------------------------------------------------------------

def attempt_for_pi(pi: dict) -> PaymentAttempt | None:
    attempt = None
    if pi.get("id"):
        attempt = db.session.execute(select(PaymentAttempt).where(
            PaymentAttempt.stripe_payment_intent_id == pi["id"])).scalars().first()
    key = (pi.get("metadata") or {}).get("attempt")
    if attempt is None and key:
        attempt = _attempt_by_key(key)
    if attempt is None and key and pi.get("status") == "succeeded":
        attempt = _attempt_from_metadata(pi, key)
    return attempt


def _attempt_from_metadata(pi: dict, key: str) -> PaymentAttempt | None:
    """A PaymentIntent we created but whose attempt row was lost (the process died between Stripe's answer
    and our commit): rebuild the attempt from the metadata so the money is posted."""
    statement = db.session.execute(select(Statement).where(
        Statement.public_id == str((pi.get("metadata") or {}).get("statement") or "")[:32])).scalars().first()
    if statement is None:
        return None
    attempt = PaymentAttempt(patient_id=statement.patient_id, statement_id=statement.id, attempt_key=key[:64],
                             amount_cents=int(pi.get("amount") or 0), currency=str(pi.get("currency") or "")[:3],
                             stripe_payment_intent_id=pi["id"], status="created",
                             stripe_payment_method_id=pi.get("payment_method") if isinstance(
                                 pi.get("payment_method"), str) else None, save_card=True)
    db.session.add(attempt)
    db.session.flush()
    return attempt


def handle_event(event: dict) -> str:
    """Process one verified webhook event once. Returns the outcome stored with it."""
    from portal.billing.models import StripeEvent

    obj = ((event.get("data") or {}).get("object")) or {}
    row = StripeEvent(event_id=event["id"][:64], type=event["type"][:64], object_id=str(obj.get("id") or "")[:64])
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return "duplicate"
    kind = event["type"]
    outcome = "ignored"
    if kind.startswith("payment_intent."):
        attempt = attempt_for_pi(obj)
        if attempt is None:
            outcome = "unknown_payment"
        else:
            if kind == "payment_intent.payment_failed" and obj.get("status") != "succeeded":
                obj = dict(obj, status="requires_payment_method")
            apply_payment_intent(attempt, obj)
            outcome = attempt.status
    elif kind == "charge.refunded":
        outcome = _refunds_from_charge(obj)
    row.outcome = outcome
    return outcome


def _refunds_from_charge(charge: dict) -> str:
    pi_id = charge.get("payment_intent")
    payment = db.session.execute(select(LedgerEntry).where(LedgerEntry.stripe_ref == pi_id,
                                                           LedgerEntry.kind == money.PAYMENT)).scalars().first() \
        if pi_id else None
    if payment is None:
        return "unknown_payment"
    refunds = ((charge.get("refunds") or {}).get("data")) or []
    posted = 0
    for refund in refunds:
        if refund.get("status", "succeeded") in ("succeeded", "pending") and refund.get("id"):
            before = db.session.execute(select(LedgerEntry.id).where(LedgerEntry.stripe_ref == refund["id"])).first()
            if before is None:
                _post_refund(payment, refund, reason=(refund.get("metadata") or {}).get("reason") or "Refunded in Stripe")
                posted += 1
    return f"refunds_posted:{posted}"


def reconcile(*, hours: int = 72) -> dict:
    """Compare recent payment attempts with Stripe and the ledger, and fix what is missing: an attempt
    left waiting (3-D Secure abandoned, a lost webhook) is read back from Stripe; a succeeded attempt
    without its ledger entry is posted. Driven by our own rows; safe to run any number of times."""
    since = utcnow() - timedelta(hours=hours)
    settle_after = utcnow() - timedelta(minutes=2)
    report = {"checked": 0, "posted": 0, "failed": 0, "flagged": 0, "errors": 0}
    attempts = db.session.execute(select(PaymentAttempt).where(or_(
        and_(PaymentAttempt.created_at > since, PaymentAttempt.stripe_payment_intent_id.is_not(None),
             PaymentAttempt.status.in_(IN_FLIGHT + ("succeeded",))),
        PaymentAttempt.status == "unknown")).order_by(PaymentAttempt.id)).scalars().all()
    for attempt in attempts:
        posted = attempt.stripe_payment_intent_id is not None and db.session.execute(select(LedgerEntry.id).where(
            LedgerEntry.stripe_ref == attempt.stripe_payment_intent_id)).first() is not None
        if attempt.status == "succeeded" and posted:
            continue
        if attempt.status in IN_FLIGHT and attempt.created_at > settle_after:
            continue  # the page may still be finishing it
        report["checked"] += 1
        before = attempt.status
        try:
            if attempt.stripe_payment_intent_id:
                pi = gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id)
            else:  # "unknown": the charge's answer never came back
                pi = _find_lost_payment_intent(attempt)
        except gateway.GatewayError:
            report["errors"] += 1
            continue
        if pi is None:  # Stripe is back and has no charge for it: nothing was taken
            _fail(attempt, _("Our card processor did not receive this payment."))
        else:
            apply_payment_intent(attempt, pi)
        now_posted = attempt.stripe_payment_intent_id is not None and db.session.execute(select(LedgerEntry.id).where(
            LedgerEntry.stripe_ref == attempt.stripe_payment_intent_id)).first() is not None
        if now_posted and not posted:
            report["posted"] += 1
        if attempt.status == "failed" and before != "failed":
            report["failed"] += 1
        if attempt.status == "flagged":
            report["flagged"] += 1
    if any(report[k] for k in ("posted", "failed", "flagged")):
        record_event(BillTag.RECONCILED, actor=None, category="billing", object_type="reconciliation",
                     detail=report)
    return report


def _find_lost_payment_intent(attempt: PaymentAttempt) -> dict | None:
    customer = db.session.execute(select(BillingAccount.stripe_customer_id).where(
        BillingAccount.patient_id == attempt.patient_id)).scalar_one_or_none()
    if not customer:
        return None
    return gateway.find_payment_intent(customer_id=customer, attempt_key=attempt.attempt_key,
                                       amount_cents=attempt.amount_cents,
                                       created_after=int(attempt.created_at.timestamp()) - 300)


# --- staff: accounts, aging, reports, export ---------------------------------------------------------

def staff_patient(actor, public_id: str) -> dict:
    require_function(actor, "billing_ledger")
    patient = patient_for(actor, public_id)
    entries = db.session.execute(select(LedgerEntry).where(LedgerEntry.patient_id == patient.id)
                                 .order_by(LedgerEntry.id.desc()).limit(200)).scalars().all()
    statements = db.session.execute(select(Statement).where(Statement.patient_id == patient.id)
                                    .order_by(Statement.id.desc()).limit(50)).scalars().all()
    refunded = dict(db.session.execute(select(LedgerEntry.payment_entry_id, func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.patient_id == patient.id, LedgerEntry.kind == money.REFUND).group_by(LedgerEntry.payment_entry_id)
    ).all())
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="billing",
                 object_type="billing_account")
    last = statements[0] if statements else None
    unbilled = [e for e in entries if e.id > (last.last_entry_id if last else 0)]
    return {"patient": patient, "entries": entries, "statements": statements, "refunded": refunded,
            "balance": sum(e.amount_cents for e in entries) if len(entries) < 200 else balance_cents(patient.id),
            "unbilled": len(unbilled)}


def accounts_with_balances(actor, *, limit: int = 200) -> list[dict]:
    """The largest balances first, then (if fewer than `limit` owe) credit balances: read from the running
    balance's index, at most `limit` accounts whatever the size of the ledger."""
    if not _may(actor, "billing_ledger"):
        require_function(actor, "billing_reports")

    def top(condition, n):
        return db.session.execute(
            select(Patient, BillingAccount.balance_cents).join(Patient, Patient.id == BillingAccount.patient_id)
            .where(condition).order_by(BillingAccount.balance_cents.desc(), BillingAccount.id.desc())
            .limit(n)).all()

    rows = top(BillingAccount.balance_cents > 0, limit)
    if len(rows) < limit:
        rows += top(BillingAccount.balance_cents < 0, limit - len(rows))
    return [{"patient": p, "balance": int(b)} for p, b in rows]


def _may(actor, function: str) -> bool:
    from portal.core.access import may_use

    return may_use(actor, function)


def aging_report(actor) -> AgingSnapshot | None:
    """The latest aging snapshot (None before the first): what the staff pages show, with its time."""
    if not _may(actor, "billing_ledger"):
        require_function(actor, "billing_reports")
    return db.session.execute(select(AgingSnapshot).order_by(AgingSnapshot.id.desc()).limit(1)).scalars().first()


AGING_BATCH = 500  # accounts per read of their entries
AGING_KEEP_DAYS = 400  # snapshots older than this are pruned when a new one is written


def aging_totals(today: date) -> tuple[dict[str, int], int]:
    """Totals per age bucket over every account that owes (FIFO: credits pay the oldest charges; an account
    with a zero or credit balance ages nothing, so only accounts with balance_cents > 0 are read, by the
    balance index, in batches, each batch's entries by the patient index). Returns (totals, accounts)."""
    totals = dict.fromkeys(money.AGING_BUCKETS, 0)
    accounts = drift = 0
    after = None
    while True:
        q = select(BillingAccount.balance_cents, BillingAccount.id, BillingAccount.patient_id).where(
            BillingAccount.balance_cents > 0)
        if after is not None:
            q = q.where(tuple_(BillingAccount.balance_cents, BillingAccount.id) > tuple_(*after))
        batch = db.session.execute(q.order_by(BillingAccount.balance_cents, BillingAccount.id)
                                   .limit(AGING_BATCH)).all()
        if not batch:
            break
        after = (batch[-1][0], batch[-1][1])
        stored = {pid: int(bal) for bal, _id, pid in batch}
        entries: dict[int, list] = {pid: [] for pid in stored}
        for pid, on, amount in db.session.execute(select(
                LedgerEntry.patient_id, LedgerEntry.service_date, LedgerEntry.amount_cents).where(
                LedgerEntry.patient_id.in_(list(stored)))):
            entries[pid].append((on, int(amount)))
        for pid, rows in entries.items():
            accounts += 1
            drift += sum(a for _on, a in rows) != stored[pid]
            for k, v in money.aging(rows, today).items():
                totals[k] += v
    if drift:  # never expected (record_entry moves both); the beat job reads one REPEATABLE READ snapshot
        current_app.logger.warning("billing: %s account balance(s) differ from the sum of their entries", drift)
    totals["total"] = sum(totals[k] for k in money.AGING_BUCKETS)
    return totals, accounts


def compute_aging_snapshot(actor=None, *, today: date | None = None) -> AgingSnapshot:
    """Compute the aging once and store it (the beat job, the staff button, the demo seed). Safe to run any
    number of times: each run writes one snapshot of the ledger as it is; old snapshots are pruned."""
    today = today or today_local()
    totals, accounts = aging_totals(today)
    snapshot = AgingSnapshot(computed_at=utcnow(), as_of=today, days_0_30=totals["0_30"],
                             days_31_60=totals["31_60"], days_61_90=totals["61_90"],
                             days_90_plus=totals["90_plus"], total=totals["total"], accounts=accounts,
                             requested_by_id=getattr(actor, "id", None))
    db.session.add(snapshot)
    db.session.execute(delete(AgingSnapshot).where(
        AgingSnapshot.computed_at < utcnow() - timedelta(days=AGING_KEEP_DAYS)))
    db.session.flush()
    return snapshot


def request_aging(actor) -> None:
    """Billing staff ask for the aging to be recomputed now (audited); the work runs off the request."""
    require_function(actor, "billing_reports")
    record_event(BillTag.AGING_REQUESTED, actor=actor, category="billing", object_type="aging_snapshot")


def payments_by_day(actor, days: int = 30) -> list[dict]:
    since = utcnow() - timedelta(days=days)
    tz = clinic_tz()
    out: dict[date, dict] = {}
    for kind, amount, at in db.session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.posted_at)
                                               .where(LedgerEntry.kind.in_((money.PAYMENT, money.REFUND)),
                                                      LedgerEntry.posted_at > since)):
        day = at.astimezone(tz).date()
        row = out.setdefault(day, {"day": day, "payments": 0, "refunds": 0, "count": 0})
        if kind == money.PAYMENT:
            row["payments"] += -int(amount)
        else:
            row["refunds"] += int(amount)
        row["count"] += 1
    return [out[d] for d in sorted(out, reverse=True)]


def export_csv(actor, start: date, end: date) -> str:
    """Ledger entries posted between two clinic dates, for the accounting system."""
    require_function(actor, "billing_reports")
    tz = clinic_tz()
    lo = datetime.combine(start, datetime.min.time(), tz)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), tz)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["entry_id", "posted_at_utc", "mrn", "kind", "service_date", "code", "description", "amount",
                "stripe_ref"])
    n = 0
    for e, mrn in db.session.execute(select(LedgerEntry, Patient.mrn).join(Patient, Patient.id == LedgerEntry.patient_id)
                                     .where(LedgerEntry.posted_at >= lo, LedgerEntry.posted_at < hi)
                                     .order_by(LedgerEntry.id)):
        w.writerow([e.public_id, e.posted_at.isoformat(), mrn, e.kind, e.service_date.isoformat(), e.code or "",
                    _csv_safe(e.description), money.cents_str(e.amount_cents), e.stripe_ref or ""])
        n += 1
    record_event(BillTag.EXPORTED, actor=actor, category="billing", object_type="billing_export",
                 detail={"rows": n, "from": start.isoformat(), "to": end.isoformat()})
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """No spreadsheet formulas from our data (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def find_patients(actor, q: str) -> list[Patient]:
    require_function(actor, "billing_ledger")
    q = (q or "").strip()[:64]
    if len(q) < 2:
        return []
    like = f"%{q.lower()}%"
    return db.session.execute(select(Patient).where(
        (func.lower(Patient.family_name).like(like)) | (func.lower(Patient.given_name).like(like))
        | (Patient.mrn == q.upper())).order_by(Patient.family_name).limit(20)).scalars().all()


def format_money(cents: int) -> str:
    from babel.numbers import format_currency

    from portal.core.i18n import format_locale

    return format_currency(cents / 100, current_app.config["BILLING_CURRENCY"].upper(), locale=format_locale())


def patient_panel(user, patient) -> dict | None:
    row = db.session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0), func.count(LedgerEntry.id))
                             .where(LedgerEntry.patient_id == patient.id)).one()
    record_event(EventTag.PATIENT_VIEW, actor=user, patient=patient, category="billing",
                 object_type="billing_account")
    return {"balance": int(row[0]), "entries": int(row[1]), "patient": patient}


def statement_ref(user, public_id: str):
    """core.registry.refs resolver for "statement:<public_id>" (messaging's "ask about this bill")."""
    from portal.core.registry import ResolvedRef
    from portal.core.web import current_lang  # noqa: F401
    from flask import url_for

    stmt = select(Statement).where(Statement.public_id == str(public_id)[:32], scope_filter(Statement, user))
    statement = db.session.execute(stmt).scalars().first()
    if statement is None:
        return None
    from flask_babel import format_date

    return ResolvedRef(label=_("Statement %(number)s, %(date)s", number=statement.label,
                               date=format_date(statement.issued_at.astimezone(clinic_tz()).date(), "medium")),
                       url=url_for("billing.statement", public_id=statement.public_id), patient_id=statement.patient_id)

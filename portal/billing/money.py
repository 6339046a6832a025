"""Pure money and ledger rules (no Flask, no database): integer cents everywhere, never floats.

Each ledger entry carries a signed amount: what it does to the balance the patient owes. Charges and
refunds (money given back) raise it; insurance payments, patient payments raise nothing but lower it;
adjustments may go either way. The balance is the sum of the entries, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CHARGE = "charge"
INSURANCE_PAYMENT = "insurance_payment"
ADJUSTMENT = "adjustment"
PAYMENT = "payment"
REFUND = "refund"
KINDS = (CHARGE, INSURANCE_PAYMENT, ADJUSTMENT, PAYMENT, REFUND)
STAFF_POSTABLE = (CHARGE, INSURANCE_PAYMENT, ADJUSTMENT)  # payments and refunds come from Stripe only
MAX_CENTS = 10_000_000_00  # one entry above $10M is a typo


class MoneyError(ValueError):
    pass


def parse_cents(text: str | int | Decimal, *, allow_negative: bool = False) -> int:
    """'12.34', '$1,234.5', '-5' → cents. Refuses more than two decimals and anything not a number."""
    if isinstance(text, int):
        cents = text
    else:
        raw = str(text).strip().replace("$", "").replace(",", "").replace(" ", "")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise MoneyError("not an amount") from None
        if not value.is_finite() or value.as_tuple().exponent < -2:
            raise MoneyError("at most two decimals")
        cents = int((value * 100).to_integral_value(rounding=ROUND_HALF_UP))
    if cents < 0 and not allow_negative:
        raise MoneyError("negative")
    if abs(cents) > MAX_CENTS:
        raise MoneyError("too large")
    return cents


def signed_amount(kind: str, cents: int) -> int:
    """The entry's effect on the balance. `cents` is the amount as staff type it: positive for every kind
    except adjustments, where the sign says which way (a write-off is negative)."""
    if kind not in KINDS:
        raise MoneyError("unknown kind")
    if cents == 0:
        raise MoneyError("zero")
    if kind == ADJUSTMENT:
        return cents
    if cents < 0:
        raise MoneyError("negative")
    return cents if kind in (CHARGE, REFUND) else -cents


def balance(amounts) -> int:
    return sum(int(a) for a in amounts)


def cents_str(cents: int) -> str:
    """'-12.34' style, for CSV files (no currency symbol, no thousands separator)."""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


@dataclass(frozen=True)
class Entry:
    kind: str
    amount_cents: int  # signed
    on: date
    payment_ref: int | None = None  # for refunds: which payment


class Ledger:
    """An in-memory ledger with the same rules as the database one (for property tests and previews)."""

    def __init__(self):
        self.entries: list[Entry] = []

    def post(self, kind: str, cents: int, on: date) -> Entry:
        entry = Entry(kind, signed_amount(kind, cents), on)
        self.entries.append(entry)
        return entry

    def pay(self, cents: int, on: date) -> int:
        if cents <= 0:
            raise MoneyError("zero")
        self.entries.append(Entry(PAYMENT, -cents, on))
        return len(self.entries) - 1

    def refund(self, payment_index: int, cents: int, on: date) -> Entry:
        payment = self.entries[payment_index]
        if payment.kind != PAYMENT:
            raise MoneyError("not a payment")
        already = sum(e.amount_cents for e in self.entries if e.kind == REFUND and e.payment_ref == payment_index)
        check_refund(-payment.amount_cents, already, cents)
        entry = Entry(REFUND, cents, on, payment_index)
        self.entries.append(entry)
        return entry

    @property
    def balance(self) -> int:
        return balance(e.amount_cents for e in self.entries)


def check_refund(paid_cents: int, refunded_cents: int, cents: int) -> None:
    """A refund is positive and never exceeds what was paid less what was already refunded."""
    if cents <= 0:
        raise MoneyError("zero")
    if refunded_cents + cents > paid_cents:
        raise MoneyError("more than paid")


def payable(statement_due_cents: int, balance_cents: int) -> int:
    """What a statement's pay page asks for: its amount due, but never more than the account owes now."""
    return max(0, min(statement_due_cents, balance_cents))


def check_payment(amount_cents: int, payable_cents: int, minimum_cents: int) -> None:
    if payable_cents <= 0:
        raise MoneyError("nothing owed")
    if amount_cents > payable_cents:
        raise MoneyError("more than owed")
    if amount_cents < min(minimum_cents, payable_cents):
        raise MoneyError("below minimum")


@dataclass(frozen=True)
class StatementTotals:
    previous_balance: int
    charges: int  # new debits (charges, refunds back to the patient, positive adjustments)
    credits: int  # new credits, as a negative number
    amount_due: int


def statement_totals(previous_balance: int, new_amounts) -> StatementTotals:
    new_amounts = [int(a) for a in new_amounts]
    debits = sum(a for a in new_amounts if a > 0)
    credits = sum(a for a in new_amounts if a < 0)
    return StatementTotals(previous_balance, debits, credits, previous_balance + debits + credits)


AGING_BUCKETS = ("0_30", "31_60", "61_90", "90_plus")


def aging(entries: list[tuple[date, int]], today: date) -> dict[str, int]:
    """Age what is owed: credits pay the oldest debits first (FIFO); each unpaid remainder falls in the
    bucket of its debit's age. A credit balance (overpaid) ages nothing."""
    debits = sorted(((d, a) for d, a in entries if a > 0), key=lambda x: x[0])
    credit = -sum(a for _d, a in entries if a < 0)
    out = dict.fromkeys(AGING_BUCKETS, 0)
    for on, amount in debits:
        used = min(credit, amount)
        credit -= used
        left = amount - used
        if not left:
            continue
        days = (today - on).days
        key = "0_30" if days <= 30 else "31_60" if days <= 60 else "61_90" if days <= 90 else "90_plus"
        out[key] += left
    return out

"""Billing figures (issue 10): statement PDF render time vs a bare WeasyPrint render of the same HTML, the
statement batch for 10k accounts (time, memory), and the payment page's latency against localstripe.

    python bench/billing.py pdf            # 1-page (20 items) and 3-page (150 items) statements, interleaved
    python bench/billing.py batch          # 10,000 accounts with a balance → one run (SQLite scratch file)
    python bench/billing.py pay            # GET /billing/statements/<id>/pay x N (creates a SetupIntent each)
    python bench/billing.py all [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_billing_bench]

"Portal" PDF = the staff PDF endpoint through the Flask test client (ownership query, audit row, template,
WeasyPrint with our url_fetcher, tagged PDF). "Bare" = weasyprint.HTML(string=the same HTML).write_pdf()
with WeasyPrint's defaults. Prints tables; never asserts timings (PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_ENV", "development")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(url, **extra):
    import logging

    logging.basicConfig(level=logging.WARNING)
    from config import DevelopmentConfig
    from portal import create_app

    app = create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=tempfile.mkdtemp(),
                     SMS_FILE_DIR=tempfile.mkdtemp(), **extra)
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


def scratch_url(url: str | None) -> str:
    if url:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        u = make_url(url)
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{u.database}"'))
        admin.dispose()
        return url
    return f"sqlite:///{tempfile.mkdtemp(prefix='billing-bench-')}/bench.sqlite3"


def signed_client(app, user):
    from portal.accounts.models import UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                               mfa_verified_at=now, reauth_at=now, ip="127.0.0.1", user_agent="bench"))
    db.session.commit()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = token
    return client


def statement_for(app, items: int):
    from tests.billing.helpers import bill
    from tests.factories import PatientFactory

    patient = PatientFactory.create()
    return bill(patient, [(f"Physical therapy session {i}", "97110", 4500 + i) for i in range(items)], days_ago=1)


# --- pdf ---------------------------------------------------------------------------------------------

def bench_pdf(url, reps: int) -> None:
    from weasyprint import HTML

    from portal.billing import pdf, services
    from portal.extensions import db
    from tests.factories import create_user

    app = make_app(scratch_url(url))
    with app.app_context():
        staff = create_user("billing")
        db.session.commit()
        client = signed_client(app, staff)
        cases = []
        for label, items in (("1 page (20 items)", 20), ("3 pages (150 items)", 150)):
            statement = statement_for(app, items)
            with app.test_request_context("/"):
                ctx = services.view_statement(staff, statement.public_id)
                html = pdf.statement_html(ctx, "en")
            db.session.commit()
            cases.append((label, statement.public_id, html))
        db.session.remove()
    # requests outside any app context: each has its own, as in production
    print(f"HarfBuzz subsetting: {'yes' if pdf.harfbuzz_subset_available() else 'NO (slow fallback)'}")
    print(f"{'statement':<22}{'portal p50':>12}{'bare p50':>12}{'ratio':>8}{'portal p95':>12}{'bare p95':>12}{'pages':>7}")
    for label, public_id, html in cases:
        path = f"/billing/staff/statements/{public_id}.pdf?lang=en"
        warm = client.get(path)  # warm fonts and caches
        assert warm.status_code == 200 and warm.data[:4] == b"%PDF", warm.status_code
        HTML(string=html, base_url=pdf.STATIC_PREFIX, url_fetcher=pdf.url_fetcher()).write_pdf(pdf_tags=True)
        portal, bare = [], []
        for _ in range(reps):  # interleaved
            t = time.perf_counter()
            client.get(path)
            portal.append(time.perf_counter() - t)
            t = time.perf_counter()
            HTML(string=html, base_url=pdf.STATIC_PREFIX, url_fetcher=pdf.url_fetcher()).write_pdf(pdf_tags=True)
            bare.append(time.perf_counter() - t)
        pages = "?"
        try:
            info = subprocess.run(["pdfinfo", "-"], input=warm.data, capture_output=True).stdout.decode()
            pages = next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:"))
        except (OSError, StopIteration):
            pass
        p50, b50 = statistics.median(portal) * 1000, statistics.median(bare) * 1000
        print(f"{label:<22}{p50:>10.0f}ms{b50:>10.0f}ms{p50 / b50:>8.2f}{pct(portal, 95) * 1000:>10.0f}ms"
              f"{pct(bare, 95) * 1000:>10.0f}ms{pages:>7}")
    print(f"peak RSS of this process: {rss_mib():.0f} MiB")


# --- batch -------------------------------------------------------------------------------------------

def bench_batch(url, accounts: int) -> None:
    from sqlalchemy import insert

    from portal.billing import services
    from portal.billing.models import BillingAccount, LedgerEntry
    from portal.core.db import new_public_id, utcnow
    from portal.extensions import db
    from portal.patients.models import Patient
    from tests.factories import create_user

    app = make_app(scratch_url(url))
    with app.app_context():
        staff = create_user("billing")
        db.session.commit()
        t = time.perf_counter()
        today = date.today()
        rows = [{"public_id": new_public_id(), "mrn": f"B{n:07d}", "given_name": "Bench", "family_name": f"P{n}",
                 "birth_date": date(1970, 1, 1), "preferred_language": "en"} for n in range(accounts)]
        db.session.execute(insert(Patient), rows)
        ids = [p for (p,) in db.session.execute(db.select(Patient.id).where(Patient.mrn.like("B%")))]
        now = utcnow()
        entries = []
        for pid in ids:
            for k, (kind, cents) in enumerate((("charge", 18500), ("charge", 4200), ("insurance_payment", -12000))):
                entries.append({"public_id": new_public_id(), "patient_id": pid, "kind": kind, "amount_cents": cents,
                                "service_date": today - timedelta(days=10 + k), "description": "Bench item",
                                "posted_at": now})
        for i in range(0, len(entries), 5000):
            db.session.execute(insert(LedgerEntry), entries[i:i + 5000])
        # inserted past services.record_entry: each account with its running balance (the sum of its entries)
        db.session.execute(insert(BillingAccount), [{"public_id": new_public_id(), "patient_id": pid,
                                                      "balance_cents": 18500 + 4200 - 12000} for pid in ids])
        db.session.commit()
        print(f"data: {accounts} accounts, {len(entries)} entries in {time.perf_counter() - t:.1f}s")
        before = rss_mib()
        with app.test_request_context("/"):
            run = services.start_run(staff)
            db.session.commit()
            t = time.perf_counter()
            run = services.process_run(run.id, commit=True)
            took = time.perf_counter() - t
            peak = rss_mib()
            t = time.perf_counter()
            rerun = services.process_run(services.start_run(staff).id, commit=True)
            took2 = time.perf_counter() - t
        print(f"batch run: {run.issued} statements issued, {run.failed} failed in {took:.1f}s "
              f"({run.issued / took:.0f}/s); peak RSS {before:.0f} MiB before the run, {peak:.0f} MiB after")
        print(f"rerun: {rerun.issued} issued, {rerun.total} accounts to check, {took2:.2f}s")


# --- pay page ------------------------------------------------------------------------------------------

def bench_pay(url, n: int) -> None:
    from portal.extensions import db
    from tests.billing.stripe_fake import LocalStripe
    from tests.factories import create_user

    fake = LocalStripe.__new__(LocalStripe)
    LocalStripe.__init__(fake)
    try:
        app = make_app(scratch_url(url), **fake.config())
        with app.app_context():
            from tests.billing.helpers import bill

            user = create_user("patient")
            statement = bill(user._patient)
            db.session.commit()
            client = signed_client(app, user)
            path = f"/billing/statements/{statement.public_id}/pay"
            db.session.remove()
        for _ in range(5):
            client.get(path)
        times = []
        t0 = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            r = client.get(path)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200 and b"data-client-secret" in r.data, r.status_code
        wall = time.perf_counter() - t0
        bt = []
        for _ in range(n):
            t = time.perf_counter()
            client.get("/billing")
            bt.append(time.perf_counter() - t)
        print(f"pay page (1 client, {n} requests, each creates a SetupIntent at localstripe): "
              f"p50 {statistics.median(times) * 1000:.0f} ms, p95 {pct(times, 95) * 1000:.0f} ms, "
              f"{n / wall:.0f} req/s")
        print(f"billing overview page for comparison: p50 {statistics.median(bt) * 1000:.0f} ms, "
              f"p95 {pct(bt, 95) * 1000:.0f} ms")
    finally:
        fake.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["pdf", "batch", "pay", "all"])
    parser.add_argument("--database-url")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.what in ("pdf", "all"):
        bench_pdf(args.database_url, args.reps)
    if args.what in ("pay", "all"):
        bench_pay(args.database_url, args.requests)
    if args.what in ("batch", "all"):
        bench_batch(args.database_url, args.accounts)


# --- bench/load.py registry (bench/registry.py): the billing pages and their data -----------------------

BENCH_CHARGES = [("99213", "Office visit, established patient", 14500), ("80053", "Comprehensive metabolic panel", 4200),
                 ("85025", "Complete blood count", 2800), ("93000", "Electrocardiogram", 6100),
                 ("90686", "Influenza vaccine", 3500), ("71046", "Chest X-ray, 2 views", 9800)]


def seed_ledger(ctx) -> None:
    """registry.PER_PATIENT ledger entries per patient (10: 6 charges, 3 insurance payments, 1 adjustment)
    and one statement covering them (numbered 1..N), plus each patient's billing account (paperless) with
    its running balance (balance_cents = the sum of its entries, as services.record_entry keeps it), and the
    aging snapshot the staff pages show (what the beat job would compute: money.aging per account)."""
    from bench_ids import next_ids

    from portal.billing import money
    from portal.core.i18n import clinic_tz

    from portal.core.db import new_public_id

    per, rng, now = ctx.per_patient["ledger_entries"], ctx.rng, ctx.now
    today = now.astimezone(clinic_tz()).date()
    aging, owing = dict.fromkeys(money.AGING_BUCKETS, 0), 0
    first = next_ids(ctx, "billing_entries", len(ctx.patient_ids) * per)
    accounts, entries, statements, eid = [], [], [], first
    for n, pid in enumerate(ctx.patient_ids):
        amounts, dated, start = [], [], eid
        for k in range(per):
            day = (now - timedelta(days=10 * (per - k) + rng.randrange(5))).date()
            if k % 10 == 9:
                kind, code, desc, cents = "adjustment", None, "Courtesy discount", -rng.randrange(500, 2000)
            elif k % 3 == 2:
                kind, code, desc = "insurance_payment", None, "Insurance payment, Bench Health Plan"
                cents = -rng.randrange(2000, 9000)
            else:
                code, desc, base = BENCH_CHARGES[(k + n) % len(BENCH_CHARGES)]
                kind, cents = "charge", base
            amounts.append(cents)
            dated.append((day, cents))
            entries.append((eid, new_public_id(), pid, kind, cents, day, desc, code, now - timedelta(days=1)))
            eid += 1
        accounts.append((new_public_id(), pid, True, now, sum(amounts)))
        if sum(amounts) > 0:
            owing += 1
            for k, v in money.aging(dated, today).items():
                aging[k] += v
        debits = sum(a for a in amounts if a > 0)
        credits = sum(a for a in amounts if a < 0)
        statements.append((new_public_id(), pid, n + 1, now, (now + timedelta(days=30)).date(), 0, debits, credits,
                           debits + credits, start - 1 if n else 0, eid - 1))
    ctx.copy("billing_accounts", ["public_id", "patient_id", "paperless", "created_at", "balance_cents"], accounts)
    ctx.copy("billing_aging_snapshots", ["computed_at", "as_of", "days_0_30", "days_31_60", "days_61_90",
                                         "days_90_plus", "total", "accounts"],
             [(now, today, aging["0_30"], aging["31_60"], aging["61_90"], aging["90_plus"], sum(aging.values()),
               owing)])
    n_entries = ctx.copy("billing_entries", ["id", "public_id", "patient_id", "kind", "amount_cents", "service_date",
                                             "description", "code", "posted_at"], entries)
    # first_entry_id is exclusive and per patient: 0 = "no earlier statement" for each of them
    ctx.copy("billing_statements", ["public_id", "patient_id", "number", "issued_at", "due_date",
                                    "previous_balance_cents", "charges_cents", "credits_cents", "amount_due_cents",
                                    "first_entry_id", "last_entry_id"],
             (row[:9] + (0, row[10]) for row in statements))
    ctx.notes.append(f"billing: {n_entries:,} ledger entries, {len(statements):,} statements")


def _first_statement(ctx):
    return ctx.first("SELECT s.public_id FROM billing_statements s JOIN access_grants g ON g.patient_id = "
                     "s.patient_id JOIN users u ON u.id = g.user_id WHERE u.email = 'p0@bench.example' "
                     "ORDER BY s.id DESC LIMIT 1")


def statement_html(app, ctx, path: str) -> str:
    """The HTML the statement PDF endpoint renders (for load.py's bare WeasyPrint baseline)."""
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.billing import pdf, services
    from portal.extensions import db

    public_id = path.rsplit("/", 1)[-1].removesuffix(".pdf")
    with app.test_request_context("/"):
        user = db.session.execute(select(User).where(User.email == "p0@bench.example")).scalars().one()
        view = services.view_statement(user, public_id, pdf=True)
        html = pdf.statement_html(view, "en")
        db.session.rollback()
    return html


def bench_register(reg) -> None:
    reg.seed_step("billing", seed_ledger, order=60)
    reg.scenario("billing page (patient)", "/billing", role="patient", baseline="orm")
    reg.scenario("statement (patient)", lambda ctx: f"/billing/statements/{_first_statement(ctx)}", role="patient",
                 baseline="orm")
    reg.scenario("statement PDF (patient)", lambda ctx: f"/billing/statements/{_first_statement(ctx)}.pdf",
                 role="patient", baseline="weasyprint", goal="G5", min_ratio=0.67, baseline_html=statement_html)


if __name__ == "__main__":
    main()

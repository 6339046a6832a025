"""Records figures (issue 7): the lab-results list and one result page against the bare one-query ORM
page (PERFORMANCE.md G1), with 10k lab observations for one patient; the record PDF render time; and the
FHIR import rate.

    python bench/records.py pages                     # SQLite scratch file (default)
    python bench/records.py pages --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_records_bench
    python bench/records.py import PATH... --database-url postgresql+psycopg://...   # e.g. a Synthea bulk folder
    python bench/records.py pdf

Pages are measured in-process (Flask test client, one thread), portal and bare baseline interleaved,
`--reps` rounds of `--n` requests each; the table gives req/s and p95 of each and the ratio portal / bare.
(The gunicorn + wrk harness of bench/run.py measures whole servers; this isolates the page's own work.)
The bare page: one SQLAlchemy 2 ORM query for the newest 50 of the same patient's observations joined to
their report, rendered by a small Jinja template, no session, no audit. A PostgreSQL database named by
--database-url is dropped and re-created (use your own prefix). Tests never assert timings.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PORTAL_ENV", "development")

BARE_TEMPLATE = """<!doctype html><html><body><h1>Results</h1><table>
{% for o in rows %}<tr><td>{{ o.display }}</td><td>{{ o.value_num }} {{ o.unit }}</td>
<td>{{ o.report.display if o.report else '' }}</td><td>{{ o.effective_at }}</td></tr>{% endfor %}</table></body></html>"""


def make_app(url):
    import logging

    logging.basicConfig(level=logging.WARNING)
    from config import DevelopmentConfig
    from portal import create_app

    return create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=tempfile.mkdtemp(),
                      WTF_CSRF_ENABLED=True)


def fresh_database(url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{u.database}"'))
        admin.dispose()


def setup(url, observations: int):
    from flask_migrate import upgrade

    from portal.extensions import db
    from tests.factories import PatientFactory, create_user

    fresh_database(url)
    app = make_app(url)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        patient = PatientFactory.create(fhir_id="bench-patient")
        user = create_user(role="patient", patient=patient, email="bench@patient.example")
        db.session.commit()
        from portal.records.models import LabReport, Observation
        from portal.core.db import utcnow

        now = utcnow()
        codes = [("2339-0", "Glucose", "mg/dL", 90), ("2093-3", "Total Cholesterol", "mg/dL", 190),
                 ("718-7", "Hemoglobin", "g/dL", 13.5), ("6298-4", "Potassium", "mmol/L", 4.2),
                 ("38483-4", "Creatinine", "mg/dL", 1.0)]
        rows, n = [], 0
        while n < observations:
            when = now - timedelta(days=n // len(codes))
            report = LabReport(patient_id=patient.id, source="bench", fhir_id=f"r{n}", display="Panel",
                               code="24323-8", status="final", effective_at=when)
            db.session.add(report)
            db.session.flush()
            for code, name, unit, base in codes:
                rows.append(dict(patient_id=patient.id, report_id=report.id, source="bench", fhir_id=f"o{n}",
                                 category="laboratory", code=code, display=name, unit=unit, status="final",
                                 value_num=base * (0.8 + 0.4 * ((n * 7919) % 100) / 100), effective_at=when,
                                 released_at=when, available_at=when, public_id=secrets.token_hex(16),
                                 imported_at=now, wait_for_clinician=False))
                n += 1
            if len(rows) >= 2000:
                db.session.execute(Observation.__table__.insert(), rows)
                rows = []
        if rows:
            db.session.execute(Observation.__table__.insert(), rows)
        db.session.commit()
        first = db.session.execute(db.select(Observation.public_id).where(Observation.code == "2339-0")
                                   .order_by(Observation.effective_at.desc())).scalars().first()
        return app, user.id, patient.id, first


def signed_in_client(app, user_id):
    from portal.accounts.models import User, UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    client = app.test_client()
    with app.app_context():
        user = db.session.get(User, user_id)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                                   mfa_verified_at=now, reauth_at=now, ip="127.0.0.1", user_agent="bench"))
        db.session.commit()
    with client.session_transaction() as sess:
        sess["sid"] = token
    return client


def bare_app(url, patient_id):
    from flask import Flask, render_template_string
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session, joinedload

    from portal.records.models import Observation

    app = Flask("bare")
    engine = create_engine(url)

    @app.get("/page")
    def page():
        with Session(engine) as s:
            rows = s.execute(select(Observation).options(joinedload(Observation.report))
                             .where(Observation.patient_id == patient_id, Observation.category == "laboratory")
                             .order_by(Observation.effective_at.desc()).limit(50)).scalars().all()
            return render_template_string(BARE_TEMPLATE, rows=rows)

    return app


def measure(client, path, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, (path, r.status_code)
    return n / sum(times), sorted(times)[int(0.95 * (len(times) - 1))] * 1000


def pages(args):
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/records-bench.sqlite3"
    app, user_id, patient_id, glucose = setup(url, args.observations)
    client = signed_in_client(app, user_id)
    bare = bare_app(url, patient_id).test_client()
    targets = {"results list (/record/results)": "/record/results",
               "one result (/record/results/<id>)": f"/record/results/{glucose}"}
    out = {name: {"portal": [], "bare": []} for name in targets}
    for name, path in targets.items():
        measure(client, path, 20)
    measure(bare, "/page", 20)
    for _ in range(args.reps):
        for name, path in targets.items():
            out[name]["bare"].append(measure(bare, "/page", args.n))
            out[name]["portal"].append(measure(client, path, args.n))
    print(f"\n{args.observations:,} lab observations for one patient; {args.reps} x {args.n} requests, in-process; "
          f"{url.split(':', 1)[0]}")
    print(f"{'page':38} {'portal req/s':>12} {'p95 ms':>7} {'bare req/s':>10} {'p95 ms':>7} {'ratio':>6}")
    for name, d in out.items():
        prs = statistics.median(x[0] for x in d["portal"])
        pp95 = statistics.median(x[1] for x in d["portal"])
        brs = statistics.median(x[0] for x in d["bare"])
        bp95 = statistics.median(x[1] for x in d["bare"])
        print(f"{name:38} {prs:12.0f} {pp95:7.1f} {brs:10.0f} {bp95:7.1f} {prs / brs:6.2f}")


def pdf(args):
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/records-pdf.sqlite3"
    app, user_id, _pid, _g = setup(url, 400)
    client = signed_in_client(app, user_id)
    times = []
    for _ in range(args.reps + 1):
        t = time.perf_counter()
        r = client.get("/record/export.pdf")
        times.append(time.perf_counter() - t)
        assert r.status_code == 200 and r.data[:4] == b"%PDF"
    print(f"\nrecord PDF (400 results): median {statistics.median(times[1:]) * 1000:.0f} ms over {args.reps} "
          f"(first, with font loading: {times[0] * 1000:.0f} ms); {len(r.data):,} bytes")


def import_rate(args):
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.records.fhir.importer import import_path

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/records-import.sqlite3"
    fresh_database(url)
    app = make_app(url)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    print(f"\nimport into {url.split(':', 1)[0]}")
    for path in args.paths:
        for label in ("first", "again (unchanged)"):
            with app.test_request_context("/"):
                t = time.perf_counter()
                result = import_path(path, source="bench", notify=False)
                db.session.commit()
                dt = time.perf_counter() - t
            print(f"{Path(path).name:32} {label:18} {result.total:6} resources in {dt:6.1f} s = "
                  f"{result.total / dt:7.0f} resources/s")


# --- bench/load.py registry (bench/registry.py): the records pages and their data -----------------------

BENCH_PANELS = [("24323-8", "Basic metabolic panel", [
    ("2339-0", "Glucose", "mg/dL", 70, 99), ("2951-2", "Sodium", "mmol/L", 135, 145),
    ("6298-4", "Potassium", "mmol/L", 3.5, 5.1), ("2160-0", "Creatinine", "mg/dL", 0.6, 1.3),
    ("3094-0", "Urea nitrogen", "mg/dL", 7, 20)]),
    ("57698-3", "Lipid panel", [
    ("2093-3", "Total cholesterol", "mg/dL", 100, 199), ("2571-8", "Triglycerides", "mg/dL", 0, 149),
    ("2085-9", "HDL cholesterol", "mg/dL", 40, 90), ("13457-7", "LDL cholesterol", "mg/dL", 0, 99),
    ("4548-4", "Hemoglobin A1c", "%", 4.0, 5.6)])]


def seed_results(ctx) -> None:
    """registry.PER_PATIENT observations per patient (100): released lab results in panels of 5, each panel
    a lab report (record_reports), every 9 days back, values around the reference range (some flagged)."""
    from bench_ids import next_ids

    from portal.core.db import new_public_id

    per, rng, now = ctx.per_patient["observations"], ctx.rng, ctx.now
    panels_per = max(1, per // 5)
    first = next_ids(ctx, "record_reports", len(ctx.patient_ids) * panels_per)
    reports, obs, rid = [], [], first
    for pid in ctx.patient_ids:
        for k in range(panels_per):
            code, name, tests = BENCH_PANELS[k % len(BENCH_PANELS)]
            when = now - timedelta(days=9 * k + rng.randrange(9), minutes=rng.randrange(600))
            reports.append((rid, new_public_id(), pid, "bench", f"r{rid}", code, name, "laboratory", "final", when,
                            when, "Bench Lab", now))
            for j, (tcode, tname, unit, lo, hi) in enumerate(tests):
                value = round(rng.uniform(lo * 0.8, hi * 1.15 if hi else 1), 2)
                obs.append((new_public_id(), pid, rid, "bench", f"o{rid}-{j}", "laboratory", "http://loinc.org", tcode,
                            tname, "final", value, unit, lo, hi, when, when, when, when, when, now, False))
            rid += 1
    ctx.copy("record_reports", ["id", "public_id", "patient_id", "source", "fhir_id", "code", "display", "category",
                                "status", "effective_at", "issued_at", "performer", "imported_at"], reports)
    n = ctx.copy("record_observations", [
        "public_id", "patient_id", "report_id", "source", "fhir_id", "category", "code_system", "code", "display",
        "status", "value_num", "unit", "ref_low", "ref_high", "effective_at", "issued_at", "available_at",
        "released_at", "reviewed_at", "imported_at", "wait_for_clinician"], obs)
    ctx.notes.append(f"records: {n:,} lab observations in {len(reports):,} reports")


def _first_result(ctx):
    """The newest result of the patient whose bench session load.py uses (bench/seed.py: patient_email(0))."""
    return ctx.first("SELECT o.public_id FROM record_observations o JOIN access_grants g ON g.patient_id = "
                     "o.patient_id JOIN users u ON u.id = g.user_id WHERE u.email = 'p0@bench.example' "
                     "AND o.category = 'laboratory' ORDER BY o.effective_at DESC LIMIT 1")


def bench_register(reg) -> None:
    reg.seed_step("records", seed_results, order=40)
    reg.scenario("lab list (patient)", "/record/results", role="patient", baseline="orm", goal="G1",
                 min_ratio=0.50)
    reg.scenario("lab detail (patient)", lambda ctx: f"/record/results/{_first_result(ctx)}", role="patient",
                 baseline="orm")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("pages", "pdf", "import"))
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--database-url")
    ap.add_argument("--observations", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    {"pages": pages, "pdf": pdf, "import": import_rate}[args.what](args)


if __name__ == "__main__":
    main()

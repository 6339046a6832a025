"""A reproducible benchmark data set on PostgreSQL, in seconds (issue 12; bench/README.md).

    python bench/seed.py --size 1k                      # 1,000 patients  (also 10k, 100k)
    python bench/seed.py --size 10k --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_ops_bench_10k

The database is dropped and re-created, migrated to head, then every registered seed step runs in order
(bench/registry.py): core accounts (patients, their accounts with access grants, one account per staff role),
the bare ORM baseline's table (100 observations per patient, COPY) and each domain's own step (bench/<domain>.py:
scheduling's 5 appointments per patient). Same seed, same data: a run at 10k is comparable with a run at 1k.
The volumes per patient are `registry.PER_PATIENT`; domains that do not exist yet add their step when they land.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000}
BENCH_PASSWORD = "bench password lantern 2026"
STAFF_ROLES = ("clinician", "support", "billing", "admin")
CODES = [("Hemoglobin A1c", "%", "< 5.7"), ("LDL cholesterol", "mg/dL", "< 100"), ("Sodium", "mmol/L", "135-145"),
         ("Potassium", "mmol/L", "3.5-5.1"), ("Creatinine", "mg/dL", "0.6-1.3"), ("TSH", "mIU/L", "0.4-4.0"),
         ("Hemoglobin", "g/dL", "12.0-16.0"), ("Glucose (fasting)", "mg/dL", "70-99")]


def default_url(size: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/portal_ops_bench_{size}"


def patient_email(n: int) -> str:
    return f"p{n}@bench.example"


def staff_email(role: str) -> str:
    return f"{role}@bench.example"


def make_app(url: str):
    import logging

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PORTAL_ENV", "development")
    from config import DevelopmentConfig
    from portal import create_app

    return create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=tempfile.mkdtemp())


def fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


# --- core steps ---------------------------------------------------------------------------------------

def seed_accounts(ctx) -> None:
    """Patients, each with an account (same password hash, one TOTP secret: bench sessions skip the form)
    and a `self` access grant; one account per staff role."""
    from sqlalchemy import insert, select

    from portal.accounts.models import User
    from portal.accounts.passwords import hash_password
    from portal.core.crypto import encrypt
    from portal.core.db import new_public_id
    from portal.extensions import db
    from portal.patients.models import AccessGrant, Patient

    pw, totp = hash_password(BENCH_PASSWORD), encrypt("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    now, rng = ctx.now, ctx.rng
    given = ["Ana", "Luis", "Maria", "John", "Grace", "Omar", "Mei", "Ravi", "Sofia", "Tom"]
    for start in range(0, ctx.size, 10_000):
        stop = min(ctx.size, start + 10_000)
        db.session.execute(insert(Patient), [
            {"public_id": new_public_id(), "mrn": f"B{n:08d}", "given_name": given[n % len(given)],
             "family_name": f"Bench{n}", "birth_date": date(1940, 1, 1) + timedelta(days=rng.randrange(25_000)),
             "sex": "female" if n % 2 else "male", "preferred_language": "es" if n % 5 == 0 else "en",
             "created_at": now} for n in range(start, stop)])
        db.session.execute(insert(User), [
            {"public_id": new_public_id(), "email": patient_email(n), "role": "patient",
             "display_name": f"{given[n % len(given)]} Bench{n}", "password_hash": pw, "email_verified_at": now,
             "preferred_language": "en", "totp_secret_enc": totp, "totp_enabled_at": now, "created_at": now}
            for n in range(start, stop)])
    ctx.patient_ids = list(db.session.execute(select(Patient.id).order_by(Patient.id)).scalars())
    ctx.user_ids = list(db.session.execute(select(User.id).where(User.role == "patient").order_by(User.id)).scalars())
    for start in range(0, ctx.size, 10_000):
        db.session.execute(insert(AccessGrant), [
            {"user_id": u, "patient_id": p, "relationship_kind": "self"}
            for u, p in zip(ctx.user_ids[start:start + 10_000], ctx.patient_ids[start:start + 10_000])])
    for role in STAFF_ROLES:
        db.session.add(User(email=staff_email(role), role=role, display_name=f"Bench {role}", password_hash=pw,
                            email_verified_at=now, totp_secret_enc=totp, totp_enabled_at=now))
    db.session.flush()


def seed_baseline(ctx) -> None:
    """The bare ORM page's data (bench/baselines.py:orm_app): observations per patient, COPY."""
    cur = ctx.conn.cursor()
    cur.execute("CREATE TABLE bench_obs_codes (id integer PRIMARY KEY, name varchar(100), unit varchar(20), "
                "ref_range varchar(40))")
    cur.execute("CREATE TABLE bench_obs (id bigserial PRIMARY KEY, patient_id integer NOT NULL, code_id integer "
                "NOT NULL REFERENCES bench_obs_codes(id), value numeric(10,2), flag varchar(2), "
                "effective_at timestamptz NOT NULL)")
    ctx.copy("bench_obs_codes", ["id", "name", "unit", "ref_range"],
             ((i + 1, n, u, r) for i, (n, u, r) in enumerate(CODES)))
    per, rng, now = ctx.per_patient["observations"], ctx.rng, ctx.now
    rows = ((pid, 1 + k % len(CODES), round(rng.uniform(0.5, 150), 2), rng.choice(("", "", "", "H", "L")),
             now - timedelta(days=3 * k + rng.randrange(3), minutes=rng.randrange(600)))
            for pid in ctx.patient_ids for k in range(per))
    n = ctx.copy("bench_obs", ["patient_id", "code_id", "value", "flag", "effective_at"], rows)
    cur.execute("CREATE INDEX ix_bench_obs_patient_time ON bench_obs (patient_id, effective_at DESC)")
    cur.execute("ANALYZE bench_obs")
    ctx.notes.append(f"bench_obs: {n:,} observations")


def bench_register(reg) -> None:  # the core steps, through the same registry the domains use
    reg.seed_step("accounts", seed_accounts, order=10)
    reg.seed_step("baseline", seed_baseline, order=20)


# --- driver ---------------------------------------------------------------------------------------------

def seed(size: str, url: str | None = None, quiet: bool = False) -> dict:
    from registry import SeedContext, load_registry

    url = url or default_url(size)
    n = SIZES[size]
    t0 = time.monotonic()
    fresh_database(url)
    app = make_app(url)
    reg = load_registry()
    bench_register(reg)
    reg.seed_steps.sort(key=lambda s: s.order)
    from flask_migrate import upgrade

    from portal.extensions import db

    timings = []
    with app.app_context(), app.test_request_context():
        upgrade(directory=str(ROOT / "migrations"))
        raw = db.session.connection().connection.driver_connection  # psycopg 3, in the session's transaction
        ctx = SeedContext(conn=raw, size=n)
        for step in reg.seed_steps:
            t = time.monotonic()
            step.fn(ctx)
            db.session.flush()
            timings.append((step.domain, time.monotonic() - t))
            if not quiet:
                print(f"seed: {step.domain:12} {timings[-1][1]:6.1f} s", flush=True)
        with raw.cursor() as cur:
            cur.execute("CREATE TABLE bench_meta (size varchar(8), patients integer, seeded_at timestamptz)")
            cur.execute("INSERT INTO bench_meta VALUES (%s, %s, now())", (size, n))
        db.session.commit()
        with db.engine.connect() as c:
            c.exec_driver_sql("COMMIT")
        db.engine.dispose()
    # VACUUM ANALYZE outside a transaction: planner statistics for every seeded table
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database,
                         autocommit=True) as c:
        c.execute("VACUUM ANALYZE")
    elapsed = time.monotonic() - t0
    if not quiet:
        for note in ctx.notes:
            print(f"seed: {note}")
        print(f"seed: {n:,} patients in {elapsed:.1f} s -> {url}")
    return {"url": url, "patients": n, "seconds": elapsed, "steps": timings}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=SIZES, default="1k")
    ap.add_argument("--database-url", help="dropped and re-created (default portal_ops_bench_<size>)")
    args = ap.parse_args(argv)
    seed(args.size, args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

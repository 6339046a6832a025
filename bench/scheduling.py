"""Scheduling figures (issue 8): open-slot search latency at 50 providers x 6 months of availability,
booking throughput at 16 concurrent clients through gunicorn on PostgreSQL, and race outcome counts.

    python bench/scheduling.py slots                       # SQLite scratch file (default) ...
    python bench/scheduling.py slots --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_sched_bench
    python bench/scheduling.py booking --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_sched_bench
    python bench/scheduling.py all --database-url ...     # both, plus the race rounds

The data: 2 locations, 50 providers each with Monday-Friday 08:00-12:00 and 13:00-17:00 for 6 months,
one 30-minute visit type, half of all slots booked (appointments + slot claims, bulk-inserted), 2,000
patients. A PostgreSQL database named by --database-url is dropped and re-created (use your own
prefix). Prints tables; tests never assert timings (PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("PORTAL_ENV", "development")

PROVIDERS, MONTHS, BOOKED, PATIENTS = 50, 6, 0.5, 2000
PASSWORD_HASH_OF = "bench scheduling password 2026"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def make_app(url):
    import logging

    logging.basicConfig(level=logging.WARNING)
    from config import DevelopmentConfig
    from portal import create_app

    return create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=tempfile.mkdtemp(),
                      SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True})


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
    elif u.database and os.path.exists(u.database):
        os.unlink(u.database)


def seed(app, *, booked=BOOKED, patients=PATIENTS, users=0):
    """The clinic; returns (visit type id, location ids). Bulk inserts keep it to seconds."""
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from portal.accounts.passwords import hash_password
    from portal.core.db import new_public_id, utcnow
    from portal.extensions import db
    from portal.patients.models import AccessGrant, Patient
    from portal.accounts.models import User
    from portal.scheduling import rules
    from portal.scheduling.models import (Appointment, AvailabilityTemplate, Location, Provider, SlotClaim,
                                          VisitType, provider_visit_types)

    rng = random.Random(8)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        locs = [Location(name=f"Bench site {i}", timezone="America/Chicago") for i in range(2)]
        vt = VisitType(name="Consultation", duration_minutes=30, modality="in_person", booking="any",
                       min_lead_minutes=0, max_ahead_days=31 * MONTHS + 7, cancel_cutoff_hours=24)
        db.session.add_all([*locs, vt])
        db.session.flush()
        today = utcnow().astimezone(locs[0].tz).date()
        until = today + timedelta(days=31 * MONTHS)
        providers = []
        for i in range(PROVIDERS):
            p = Provider(display_name=f"Dr. Bench {i:02d}", credentials="MD")
            p.visit_types = [vt]
            db.session.add(p)
            providers.append(p)
        db.session.flush()
        for i, p in enumerate(providers):
            for day in range(5):
                for start, end in ((dtime(8), dtime(12)), (dtime(13), dtime(17))):
                    db.session.add(AvailabilityTemplate(provider_id=p.id, location_id=locs[i % 2].id, weekday=day,
                                                        start_time=start, end_time=end, valid_from=today,
                                                        valid_until=until))
        db.session.flush()
        db.session.execute(insert(Patient), [{"public_id": new_public_id(), "mrn": f"B{n:07d}", "given_name": "Bench",
                                              "family_name": f"Patient{n}", "birth_date": date(1970, 1, 1),
                                              "preferred_language": "en", "created_at": utcnow()}
                                             for n in range(patients)])
        patient_ids = [r for (r,) in db.session.execute(db.select(Patient.id).order_by(Patient.id))]
        appts, day = [], today + timedelta(days=1)
        while day <= until:
            if day.weekday() < 5:
                for i, p in enumerate(providers):
                    for start in (dtime(8), dtime(13)):
                        t = rules.wall_to_utc(day, start, locs[0].tz)
                        for k in range(8):
                            if rng.random() < booked:
                                s = t + timedelta(minutes=30 * k)
                                appts.append({"public_id": new_public_id(), "patient_id": rng.choice(patient_ids),
                                              "provider_id": p.id, "location_id": locs[i % 2].id,
                                              "visit_type_id": vt.id, "starts_at": s,
                                              "ends_at": s + timedelta(minutes=30), "status": "booked",
                                              "source": "staff", "sequence": 0, "created_at": utcnow()})
            day += timedelta(days=1)
        for chunk in range(0, len(appts), 5000):
            db.session.execute(insert(Appointment), appts[chunk:chunk + 5000])
        rows = db.session.execute(db.select(Appointment.id, Appointment.provider_id, Appointment.starts_at)).all()
        claims = [{"provider_id": pid, "starts_at": s + timedelta(minutes=15 * c), "appointment_id": aid}
                  for aid, pid, s in rows for c in (0, 1)]
        for chunk in range(0, len(claims), 10000):
            db.session.execute(insert(SlotClaim), claims[chunk:chunk + 10000])
        user_ids = []
        if users:
            pw = hash_password(PASSWORD_HASH_OF)
            for n in range(users):
                u = User(email=f"bench{n}@patient.example", role="patient", display_name=f"Bench {n}",
                         password_hash=pw, email_verified_at=utcnow())
                db.session.add(u)
                db.session.flush()
                db.session.add(AccessGrant(user_id=u.id, patient_id=patient_ids[n], relationship_kind="self"))
                user_ids.append(u.id)
        db.session.commit()
        info = {"visit_type": vt.public_id, "locations": [loc.public_id for loc in locs], "appointments": len(appts),
                "claims": len(claims), "users": user_ids}
        db.session.remove()
        db.engine.dispose()
        _ = provider_visit_types
        return info


# --- open-slot search ------------------------------------------------------------------------------

def bench_slots(url, reps):
    from portal.core.db import utcnow
    from portal.extensions import db
    from portal.scheduling import rules, slots
    from portal.scheduling.models import Location, Provider, VisitType

    app = make_app(url)
    t0 = time.monotonic()
    info = seed(app, users=1)
    print(f"seeded {PROVIDERS} providers x {MONTHS} months: {info['appointments']:,} appointments, "
          f"{info['claims']:,} slot claims in {time.monotonic() - t0:.1f} s ({url.split(':')[0]})")
    from tests.conftest import sign_in_session  # noqa: F401  (the bench signs in the same way)

    with app.app_context():
        vt = db.session.execute(db.select(VisitType)).scalars().one()
        loc = db.session.execute(db.select(Location).where(Location.public_id == info["locations"][0])).scalar_one()
        provider = db.session.execute(db.select(Provider).order_by(Provider.id)).scalars().first()
        now = utcnow()
        rng = random.Random(3)

        def week_from(offset_days):
            d = now.astimezone(loc.tz).date() + timedelta(days=offset_days)
            return rules.local_day_bounds(d, loc.tz)[0], rules.local_day_bounds(d + timedelta(days=6), loc.tz)[1]

        cases = {
            "first available, all 50 providers": lambda: slots.first_available(vt, frm=now, count=1),
            "one week, one provider": lambda: slots.search(vt, *(), **dict(zip(("frm", "to"),
                                                           week_from(rng.randrange(0, 170))),
                                                           provider_ids=[provider.id], location_id=loc.id)),
            "one week, any provider at a site (25)": lambda: slots.search(vt, **dict(zip(("frm", "to"),
                                                                  week_from(rng.randrange(0, 170))),
                                                                  location_id=loc.id)),
            "6 months, one provider": lambda: slots.search(vt, frm=now, to=now + timedelta(days=31 * MONTHS),
                                                           provider_ids=[provider.id], location_id=loc.id),
        }
        rows = []
        for name, fn in cases.items():
            fn()
            times, found = [], 0
            for _ in range(reps):
                s = time.perf_counter()
                out = fn()
                times.append((time.perf_counter() - s) * 1000)
                found += len(out)
            rows.append((name, statistics.median(times), pct(times, 95), found / reps))
        # the whole page, signed in (session, audit row, rendering 7 days of times for 25 providers)
        from portal.accounts.models import UserSession
        from portal.core.crypto import keyed_hash

        token = secrets.token_urlsafe(32)
        db.session.add(UserSession(user_id=info["users"][0], token_hash=keyed_hash(token, "session"),
                                   last_seen_at=utcnow(), mfa_verified_at=utcnow(), reauth_at=utcnow(), ip="127.0.0.1",
                                   user_agent="bench"))
        db.session.commit()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = token
    page = f"/appointments/book?type={info['visit_type']}&provider=any&location={info['locations'][0]}"
    times = []
    for i in range(max(10, reps // 4)):
        s = time.perf_counter()
        r = client.get(page + f"&week={(date.today() + timedelta(days=7 * (i % 20))).isoformat()}")
        times.append((time.perf_counter() - s) * 1000)
        assert r.status_code == 200, r.status_code
    rows.append(("booking page: a week, any provider (HTTP, in-process)", statistics.median(times), pct(times, 95),
                 r.get_data(as_text=True).count('name="slot"')))
    print(f"\nOpen-slot search ({reps} runs each)")
    print(f"{'case':58} {'p50 ms':>8} {'p95 ms':>8} {'slots':>8}")
    for name, p50, p95, n in rows:
        print(f"{name:58} {p50:8.1f} {p95:8.1f} {n:8.0f}")
    with app.app_context():
        db.engine.dispose()


# --- booking throughput and races (gunicorn, real HTTP) -------------------------------------------------

def _server(url, workers, tmp):
    from run import Server

    env = dict(os.environ, PORTAL_ENV="development", DATABASE_URL=url, MAIL_FILE_DIR=str(tmp / "mail"),
               PYTHONUNBUFFERED="1", SCHEDULING_REMINDER_OFFSETS="72h,24h")
    args = argparse.Namespace(workers=workers, worker_class="sync")
    server = Server("portal", "wsgi:app", args, env, tmp)
    server.start()
    server.wait_up("/help")
    return server


def _clients(app, base, user_ids):
    import requests

    from portal.accounts.models import UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    out = []
    with app.app_context():
        for uid in user_ids:
            token = secrets.token_urlsafe(32)
            db.session.add(UserSession(user_id=uid, token_hash=keyed_hash(token, "session"), last_seen_at=utcnow(),
                                       mfa_verified_at=utcnow(), reauth_at=utcnow(), ip="127.0.0.1",
                                       user_agent="bench"))
            s = requests.Session()
            s.cookies.set(app.config["SESSION_COOKIE_NAME"],
                          app.session_interface.get_signing_serializer(app).dumps({"sid": token}),
                          domain="127.0.0.1", path="/")
            out.append(s)
        db.session.commit()
        db.engine.dispose()
    for s in out:
        s.csrf = re.search(r'name="csrf-token" content="([^"]+)"', s.get(base + "/help", timeout=30).text).group(1)
    return out


def _free_tokens(app, vt_public_id, n):
    from portal.core.db import utcnow
    from portal.extensions import db
    from portal.scheduling import slots
    from portal.scheduling.services import visit_type_by_public_id

    with app.app_context():
        vt = visit_type_by_public_id(vt_public_id)
        found = slots.search(vt, frm=utcnow() + timedelta(days=1), to=utcnow() + timedelta(days=60))
        db.engine.dispose()
    rng = random.Random(5)
    rng.shuffle(found)
    return [o.token for o in found[:n]]


def _post(http, base, token, vt):
    return http.post(base + "/appointments/book/confirm", allow_redirects=False, timeout=60,
                     data={"csrf_token": http.csrf, "slot": token, "visit_type": vt,
                           "booking_key": secrets.token_hex(16)})


def bench_booking(url, seconds, workers, rounds):
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() != "postgresql":
        print("booking throughput is measured on PostgreSQL: pass --database-url postgresql+psycopg://…")
    app = make_app(url)
    fresh_database(url)
    info = seed(app, booked=0.3, users=16 * 8 + 20)
    tmp = Path(tempfile.mkdtemp(prefix="sched-bench-"))
    server = _server(url, workers, tmp)
    base = f"http://127.0.0.1:{server.port}"
    try:
        clients = _clients(app, base, info["users"])
        vt = info["visit_type"]
        tokens = _free_tokens(app, vt, 20000)
        lock = threading.Lock()
        results, lat = [], []
        stop = time.monotonic() + seconds

        def worker(k):
            mine = clients[k * 8:(k + 1) * 8]
            i = 0
            while time.monotonic() < stop:
                with lock:
                    if not tokens:
                        return
                    token = tokens.pop()
                s = time.perf_counter()
                r = _post(mine[i % len(mine)], base, token, vt)
                with lock:
                    lat.append((time.perf_counter() - s) * 1000)
                    results.append(r.status_code)
                i += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        ok = results.count(302)
        print(f"\nBooking throughput, 16 concurrent clients, distinct free times, gunicorn -w {workers} sync, "
              f"{make_url(url).get_backend_name()}:")
        print(f"  {ok} bookings in {elapsed:.1f} s = {ok / elapsed:.1f} bookings/s; "
              f"latency p50 {statistics.median(lat):.0f} ms, p95 {pct(lat, 95):.0f} ms; "
              f"other answers: {sorted(set(results) - {302}) or 'none'}")
        # races: 20 clients on one time, `rounds` times
        racers = clients[16 * 8:16 * 8 + 20]
        counts = {"booked": 0, "taken": 0, "other": 0}
        from tests.concurrency import race

        for r in range(rounds):
            token = tokens.pop()
            queue = list(racers)
            out = race(20, lambda: _post(queue.pop(), base, token, vt))
            counts["booked"] += sum(1 for x in out if getattr(x, "status_code", 0) == 302)
            counts["taken"] += sum(1 for x in out if getattr(x, "status_code", 0) == 409 and "just taken" in x.text)
            counts["other"] += sum(1 for x in out if getattr(x, "status_code", 0) not in (302, 409))
        print(f"  races: {rounds} rounds x 20 clients on one time -> {counts} "
              f"(exactly one booking per round: {counts['booked'] == rounds})")
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("slots", "booking", "all"))
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='sched-bench-')}/bench.sqlite3"
    if args.what in ("slots", "all"):
        fresh_database(url)
        bench_slots(url, args.reps)
    if args.what in ("booking", "all"):
        bench_booking(url, args.seconds, args.workers, args.rounds)
    _ = (datetime, timezone)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- bench/load.py registry (bench/registry.py): the scheduling pages and their data --------------------

BENCH_PROVIDERS = 20


def seed_appointments(ctx) -> None:
    """5 appointments per patient (registry.PER_PATIENT): past visits (completed, some no-shows) and, for one
    patient in five, one upcoming booking holding its slot claims; 20 providers at 2 sites, Monday-Friday
    08:00-12:00 and 13:00-17:00; every other future slot left open for the booking search."""
    from portal.core.db import new_public_id
    from portal.extensions import db
    from portal.scheduling import rules
    from portal.scheduling.models import AvailabilityTemplate, Location, Provider, VisitType

    tz_name = "America/Chicago"
    locs = [Location(name=f"Bench site {i}", timezone=tz_name) for i in range(2)]
    vt = VisitType(name="Consultation", duration_minutes=30, modality="in_person", booking="any",
                   min_lead_minutes=0, max_ahead_days=190, cancel_cutoff_hours=24)
    db.session.add_all([*locs, vt])
    db.session.flush()
    tz = locs[0].tz
    today = ctx.now.astimezone(tz).date()
    providers = []
    for i in range(BENCH_PROVIDERS):
        p = Provider(display_name=f"Dr. Bench {i:02d}", credentials="MD")
        p.visit_types = [vt]
        providers.append(p)
    db.session.add_all(providers)
    db.session.flush()
    per = ctx.per_patient["appointments"]
    weekdays_back = (ctx.size * per // (BENCH_PROVIDERS * 16)) + 10
    valid_from = today - timedelta(days=weekdays_back * 7 // 5 + 14)
    for i, p in enumerate(providers):
        for wd in range(5):
            for start, end in ((dtime(8), dtime(12)), (dtime(13), dtime(17))):
                db.session.add(AvailabilityTemplate(provider_id=p.id, location_id=locs[i % 2].id, weekday=wd,
                                                    start_time=start, end_time=end, valid_from=valid_from,
                                                    valid_until=today + timedelta(days=190)))
    db.session.flush()
    starts = [dtime(8 + h // 2 + (1 if h >= 8 else 0), 30 * (h % 2)) for h in range(16)]  # 8:00..11:30, 13:00..16:30

    def weekdays(first, step):
        day = first
        while True:
            if day.weekday() < 5:
                yield day
            day += timedelta(days=step)

    def slots(first, step, every=1):
        for day in weekdays(first, step):
            for k in range(0, 16, every):
                for pi in range(BENCH_PROVIDERS):
                    yield pi, rules.wall_to_utc(day, starts[k], tz)

    past = slots(today - timedelta(days=1), -1)
    future = slots(today + timedelta(days=2), 1, every=2)
    appts, future_rows = [], []
    for n, patient_id in enumerate(ctx.patient_ids):
        upcoming = 1 if n % 5 == 0 else 0
        for k in range(per):
            pi, at = next(future) if (upcoming and k == 0) else next(past)
            status = rules.BOOKED if (upcoming and k == 0) else (rules.NO_SHOW if ctx.rng.random() < 0.05
                                                                  else rules.COMPLETED)
            row = (new_public_id(), patient_id, providers[pi].id, locs[pi % 2].id, vt.id, at,
                   at + timedelta(minutes=30), status, "patient", 0, ctx.now)
            appts.append(row)
    ctx.copy("appointments", ["public_id", "patient_id", "provider_id", "location_id", "visit_type_id",
                              "starts_at", "ends_at", "status", "source", "sequence", "created_at"], appts)
    with ctx.conn.cursor() as cur:
        cur.execute("INSERT INTO sched_slot_claims (provider_id, starts_at, appointment_id) "
                    "SELECT provider_id, starts_at + make_interval(mins => 15 * c), id FROM appointments, "
                    "generate_series(0, 1) AS c WHERE status = 'booked'")
    ctx.notes.append(f"appointments: {len(appts):,} ({sum(1 for a in appts if a[7] == rules.BOOKED):,} upcoming)")


def _visit_type(ctx):
    return ctx.first("SELECT public_id FROM sched_visit_types ORDER BY id LIMIT 1")


def bench_register(reg) -> None:
    reg.seed_step("scheduling", seed_appointments, order=30)
    reg.scenario("appointments (patient)", "/appointments", role="patient", baseline="orm")
    reg.scenario("booking search (patient)", lambda ctx: f"/appointments/book?type={_visit_type(ctx)}",
                 role="patient", baseline="orm")
    reg.scenario("schedule day (staff)", "/schedule", role="support", baseline="orm")

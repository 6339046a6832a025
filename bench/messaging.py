"""Messaging figures (issue 9): the staff inbox page and the staff thread page on PostgreSQL with
100,000 threads and 1,000,000 messages, against the bare ORM pages of the same data (bench/msg_baseline.py),
under the same gunicorn flags, interleaved (PERFORMANCE.md); and the SQL statements per inbox page.

    python bench/messaging.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_msg_bench
    python bench/messaging.py --database-url ... --threads 10000 --per-thread 10 --duration 5 --reps 1   # smoke

History is mostly closed, as in a clinic: 4% of threads open, 2% waiting on the patient, 94% closed.
The database named by --database-url is dropped and re-created (use your own prefix). Seeding is done
in SQL (generate_series), so 1M messages take well under a minute. wrk reports p50/p90/p99 (no p95).
Tests never assert timings; this prints a table and exits 0 once it has measured.
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
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("PORTAL_ENV", "development")

POOLS = 4


def make_app(url):
    import logging

    logging.basicConfig(level=logging.WARNING)
    from config import DevelopmentConfig
    from portal import create_app

    return create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=tempfile.mkdtemp())


def seed(app, url, threads: int, per_thread: int) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from scheduling import fresh_database
    from portal.extensions import db
    from portal.messaging.models import Pool, PoolMember
    from tests.factories import create_user

    fresh_database(url)
    t0 = time.monotonic()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        staff = create_user("support", email="bench-support@clinic.example", display_name="Bench Support")
        pools = []
        for n in range(POOLS):
            pool = Pool(key=f"pool-{n}", name=f"Team {n}", kind="support", topics="other", target_hours=24)
            db.session.add(pool)
            db.session.flush()
            db.session.add(PoolMember(pool_id=pool.id, user_id=staff.id))
            pools.append(pool.id)
        db.session.commit()
        patients = max(1, threads // 10)
        conn = db.session.connection()
        conn.execute(text("""
            INSERT INTO patients (public_id, created_at, mrn, given_name, family_name, birth_date, preferred_language)
            SELECT md5('p' || g), now(), 'B' || lpad(g::text, 8, '0'), 'Given' || g, 'Family' || (g % 997),
                   date '1950-01-01' + (g % 20000), 'en'
            FROM generate_series(1, :n) g"""), {"n": patients})
        first_patient = conn.execute(text("SELECT min(id) FROM patients")).scalar()
        conn.execute(text("""
            INSERT INTO msg_threads (public_id, created_at, patient_id, pool_id, topic, subject, channel, status,
                                     last_message_at, last_preview, awaiting_since, version, patient_unread)
            SELECT md5('t' || g), now() - (g % 5000) * interval '1 minute', :fp + (g % :np),
                   (ARRAY[:p0, :p1, :p2, :p3])[1 + g % 4], 'other', 'Question number ' || g, 'portal',
                   CASE WHEN (g / 4) % 50 < 2 THEN 'open' WHEN (g / 4) % 50 = 2 THEN 'waiting' ELSE 'closed' END,
                   now() - (g % 5000) * interval '1 minute', 'Hello, I have a question about my visit',
                   CASE WHEN (g / 4) % 50 < 2 THEN now() - (g % 5000) * interval '1 minute' END, 1, 0
            FROM generate_series(1, :n) g"""),
            {"n": threads, "fp": first_patient, "np": patients, "p0": pools[0], "p1": pools[1], "p2": pools[2],
             "p3": pools[3]})
        first_thread = conn.execute(text("SELECT min(id) FROM msg_threads")).scalar()
        conn.execute(text("""
            INSERT INTO msg_messages (public_id, patient_id, thread_id, kind, author_name, body_html, body_text,
                                      created_at)
            SELECT md5('m' || g), t.patient_id, t.id, CASE WHEN g % 2 = 0 THEN 'patient' ELSE 'staff' END,
                   'Someone', '<p>Message ' || g || ' with a few words of text, a <strong>bit</strong> of '
                   || 'formatting and a link <a href="https://example.org" rel="nofollow noopener noreferrer">'
                   || 'here</a>.</p>', 'Message ' || g, now() - (g % 5000) * interval '1 minute'
            FROM generate_series(0, :m - 1) g JOIN msg_threads t ON t.id = :ft + (g % :n)"""),
            {"m": threads * per_thread, "ft": first_thread, "n": threads})
        db.session.commit()
        conn = db.session.connection()
        conn.execute(text("ANALYZE"))
        db.session.commit()
        sample = [r[0] for r in db.session.execute(text(
            "SELECT public_id FROM msg_threads WHERE pool_id = :p ORDER BY id LIMIT 200"), {"p": pools[0]})]
        conn = db.session.connection()
        conn.execute(text("UPDATE msg_threads SET closed_at = last_message_at WHERE status = 'closed'"))
        db.session.commit()
        db.engine.dispose()
    print(f"seeded {threads:,} threads, {threads * per_thread:,} messages, {patients:,} patients "
          f"in {time.monotonic() - t0:.0f} s", flush=True)
    return {"pools": pools, "sample": sample, "email": "bench-support@clinic.example"}


def statements_per_inbox_page(app, info) -> int:
    from sqlalchemy import event

    from portal.extensions import db
    from tests.conftest import sign_in_session

    with app.app_context():
        from sqlalchemy import select

        from portal.accounts.models import User

        user = db.session.execute(select(User).where(User.email == info["email"])).scalars().one()
        client = app.test_client()
        sign_in_session(client, user)
        seen = []
        listener = lambda *a: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/inbox?queue=open").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        db.session.remove()
        db.engine.dispose()
    return len(seen)


class Cookies:
    """Bench-only sign-in as tests/conftest.py's sign_in_session(): a live MFA-verified UserSession row and
    the app's own signed cookie {"sid": token} (bench/run.py's SignIn, on this database)."""

    def __init__(self, app):
        self.app = app

    def cookie(self, email: str) -> str:
        from sqlalchemy import select

        from portal.accounts.models import User, UserSession
        from portal.core.crypto import keyed_hash
        from portal.core.db import utcnow
        from portal.extensions import db

        token = secrets.token_urlsafe(32)
        with self.app.app_context():
            user = db.session.execute(select(User).where(User.email == email)).scalars().one()
            now = utcnow()
            db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                                       mfa_verified_at=now, reauth_at=now, ip="127.0.0.1", user_agent="bench"))
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        value = self.app.session_interface.get_signing_serializer(self.app).dumps({"sid": token})
        return f"{self.app.config['SESSION_COOKIE_NAME']}={value}"


def lua_paths(tmp: Path, paths: list[str]) -> str:
    script = tmp / "paths.lua"
    items = ",".join(f'"{p}"' for p in paths)
    script.write_text("local paths = {" + items + "}\nrequest = function()\n"
                      "  return wrk.format(nil, paths[math.random(#paths)])\nend\n")
    return str(script)


def wrk_run(port, conns, seconds, threads, headers, script=None, path="/"):
    import subprocess

    from run import HOST, parse_wrk

    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    run = parse_wrk(out.stdout)
    import re

    m = re.search(r"^\s+90%\s+(\S+)", out.stdout, re.M)
    from run import _ms

    run.p90 = _ms(m.group(1)) if m else float("nan")
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--threads", type=int, default=100_000)
    ap.add_argument("--per-thread", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args(argv)
    from run import Server

    app = make_app(args.database_url)
    info = seed(app, args.database_url, args.threads, args.per_thread)
    n_statements = statements_per_inbox_page(app, info)
    tmp = Path(tempfile.mkdtemp(prefix="msg-bench-"))
    env = dict(os.environ, PORTAL_ENV="development", DATABASE_URL=args.database_url, MAIL_FILE_DIR=str(tmp / "mail"),
               PYTHONUNBUFFERED="1")
    sargs = argparse.Namespace(workers=args.workers, worker_class="sync")
    portal = Server("portal", "wsgi:app", sargs, env, tmp)
    bare = Server("bare", "msg_baseline:app", sargs, env, tmp, extra=["--pythonpath", str(ROOT / "bench")])
    servers = [portal, bare]
    try:
        for s in servers:
            s.start()
        portal.wait_up("/help")
        bare.wait_up(f"/inbox/{info['pools'][0]}")
        signin = Cookies(app)
        cookie = signin.cookie(info["email"])
        pool_public = None
        with app.app_context():
            from sqlalchemy import select

            from portal.extensions import db
            from portal.messaging.models import Pool

            pool_public = db.session.execute(select(Pool.public_id).where(Pool.id == info["pools"][0])).scalar()
            db.engine.dispose()
        sample = info["sample"]
        from run import http_get

        for path in (f"/inbox?queue=open&pool={pool_public}", f"/inbox/{sample[0]}"):
            status, _h, body = http_get(portal.port, path, headers={"Cookie": signin.cookie(info["email"])},
                                        timeout=60)
            if status != 200:
                print(f"portal {path} answered {status}: {body[:300]!r}\n{portal.log_tail()}")
                return 1
        thread_script_portal = lua_paths(tmp, [f"/inbox/{p}" for p in sample])
        (tmp / "bare").mkdir()
        thread_script_bare = lua_paths(tmp / "bare", [f"/thread/{p}" for p in sample])
        pairs = {
            "inbox page (open queue, one team)": (
                dict(path=f"/inbox?queue=open&pool={pool_public}", headers={"Cookie": cookie}),
                dict(path=f"/inbox/{info['pools'][0]}", headers={})),
            "thread page (200 threads, random)": (
                dict(script=thread_script_portal, headers={"Cookie": cookie}),
                dict(script=thread_script_bare, headers={})),
        }
        results = {name: {"portal": [], "bare": []} for name in pairs}
        for name, (p, b) in pairs.items():  # warm-up, unmeasured: first requests load templates and caches
            wrk_run(bare.port, 4, 2, 2, **b)
            wrk_run(portal.port, 4, 2, 2, **dict(p, headers={"Cookie": signin.cookie(info["email"])}))
        for rep in range(args.reps):
            for name, (p, b) in pairs.items():
                for label, server, spec in (("bare", bare, b), ("portal", portal, p)):
                    if label == "portal":
                        spec = dict(spec, headers={"Cookie": signin.cookie(info["email"])})
                    results[name][label].append(wrk_run(server.port, args.conns, args.duration, 2, **spec))
        print(f"\nMessaging pages, PostgreSQL, {args.threads:,} threads / {args.threads * args.per_thread:,} "
              f"messages, gunicorn -w {args.workers} sync, wrk -c{args.conns}, {args.reps} x {args.duration}s "
              f"(median of reps)")
        print(f"{'page':38} {'portal r/s':>10} {'bare r/s':>9} {'ratio':>6} {'p50 ms':>7} {'p90 ms':>7} "
              f"{'p99 ms':>7} {'bare p99':>8} {'non-2xx':>7}")
        for name, r in results.items():
            def m(runs, attr):
                vals = [getattr(x, attr) for x in runs if getattr(x, attr) == getattr(x, attr)]
                return statistics.median(vals) if vals else float("nan")
            prps, brps = m(r["portal"], "rps"), m(r["bare"], "rps")
            non2xx = sum(x.non2xx for x in r["portal"])
            print(f"{name:38} {prps:10.1f} {brps:9.1f} {prps / brps if brps else float('nan'):6.2f} "
                  f"{m(r['portal'], 'p50'):7.1f} {m(r['portal'], 'p90'):7.1f} {m(r['portal'], 'p99'):7.1f} "
                  f"{m(r['bare'], 'p99'):8.1f} {non2xx:7d}")
        print(f"SQL statements per inbox page (signed in, audit row included): {n_statements}")
    finally:
        for s in servers:
            s.stop()
    _ = secrets
    return 0


# --- bench/load.py registry (bench/registry.py): the messaging pages and their data ---------------------

BENCH_MESSAGES_PER_THREAD = 4
BENCH_TOPICS = ("medical", "refill", "billing", "appointment", "technical", "records", "other")


def seed_threads(ctx) -> None:
    """registry.PER_PATIENT threads per patient (5), each with 4 messages (patient / staff alternating), in
    one support pool whose members are the bench support and clinician accounts; history mostly closed as in
    a clinic (8% open, 4% waiting on the patient)."""
    from bench_ids import next_ids

    from portal.core.db import new_public_id

    per, rng, now = ctx.per_patient["threads"], ctx.rng, ctx.now
    with ctx.conn.cursor() as cur:
        cur.execute("INSERT INTO msg_pools (public_id, key, name, kind, topics, target_hours, active, created_at) "
                    "VALUES (%s, 'bench-support', 'Bench support', 'support', %s, 24, true, %s) RETURNING id",
                    (new_public_id(), ",".join(BENCH_TOPICS), now))
        pool_id = cur.fetchone()[0]
        cur.execute("INSERT INTO msg_pool_members (pool_id, user_id, created_at) SELECT %s, id, %s FROM users "
                    "WHERE email IN ('support@bench.example', 'clinician@bench.example')", (pool_id, now))
    first = next_ids(ctx, "msg_threads", len(ctx.patient_ids) * per)
    threads, messages, tid = [], [], first
    for pid in ctx.patient_ids:
        for k in range(per):
            last = now - timedelta(days=20 * k + rng.randrange(20), minutes=rng.randrange(1440))
            r = rng.random()
            status = "open" if r < 0.08 else "waiting" if r < 0.12 else "closed"
            preview = "Thank you, that answers my question about the visit."
            threads.append((tid, new_public_id(), pid, pool_id, BENCH_TOPICS[k % len(BENCH_TOPICS)],
                            f"Question {k + 1} about my care", "portal", status, last, preview,
                            last if status == "open" else None, last if status == "closed" else None, 1,
                            0, last - timedelta(hours=3 * BENCH_MESSAGES_PER_THREAD)))
            for m in range(BENCH_MESSAGES_PER_THREAD):
                at = last - timedelta(hours=3 * (BENCH_MESSAGES_PER_THREAD - 1 - m))
                kind = "patient" if m % 2 == 0 else "staff"
                text = (f"Message {m + 1}: a few sentences about the question, the medication and the next "
                        f"appointment, as patients and staff write them.")
                messages.append((new_public_id(), pid, tid, kind, "Patient" if kind == "patient" else "Bench support",
                                 f"<p>{text}</p>", text, at))
            tid += 1
    ctx.copy("msg_threads", ["id", "public_id", "patient_id", "pool_id", "topic", "subject", "channel", "status",
                             "last_message_at", "last_preview", "awaiting_since", "closed_at", "version",
                             "patient_unread", "created_at"], threads)
    n = ctx.copy("msg_messages", ["public_id", "patient_id", "thread_id", "kind", "author_name", "body_html",
                                  "body_text", "created_at"], messages)
    ctx.notes.append(f"messaging: {len(threads):,} threads, {n:,} messages")


def _first_thread(ctx):
    return ctx.first("SELECT t.public_id FROM msg_threads t JOIN access_grants g ON g.patient_id = t.patient_id "
                     "JOIN users u ON u.id = g.user_id WHERE u.email = 'p0@bench.example' "
                     "ORDER BY t.last_message_at DESC LIMIT 1")


def bench_register(reg) -> None:
    reg.seed_step("messaging", seed_threads, order=50)
    reg.scenario("messages (patient)", "/messages", role="patient", baseline="orm")
    reg.scenario("thread (patient)", lambda ctx: f"/messages/{_first_thread(ctx)}", role="patient", baseline="orm")
    reg.scenario("inbox (support)", "/inbox?queue=open", role="support", baseline="orm")


if __name__ == "__main__":
    sys.exit(main())

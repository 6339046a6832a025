"""Where one page's time goes, in process (cProfile through the Flask test client on a seeded database).

    python bench/profile_page.py /record/results                      # the bench patient's lab list
    python bench/profile_page.py /home /record --n 300 --top 40       # several pages, more requests
    python bench/profile_page.py /staff --role support --sort tottime
    python bench/profile_page.py /record/results --sql                # also print the SQL of one request
    python bench/profile_page.py /home --time-only                    # ms per request, no profiler
    python bench/profile_page.py /record/results /home --vs-orm       # in-process ratio to the bare ORM page

Uses the database bench/seed.py built (default portal_ops_bench_1k; `--database-url` for your own) and signs in
exactly as bench/load.py does (`Portal.cookie`: a live UserSession row and the app's own signed cookie; no
route). For each path: warms up, prints ms per request without the profiler (median of 5 rounds), the SQL
statement count of one request, then the top functions of `--n` requests under cProfile (cumulative time by
default). With --vs-orm, the bare one-query ORM page of the same size (bench/baseline_orm.py, the G1/G2
floor) is timed in the same process, interleaved with the portal page, and the ratio printed: no gunicorn,
wrk or network, so a steadier guide than load.py on a busy machine (load.py's figures are the goals').
A report for finding costs; tests never assert timings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import seed as seeder  # noqa: E402
from load import Portal  # noqa: E402


def one_request_sql(portal, client, path, headers):
    from sqlalchemy import event

    from portal.extensions import db

    seen = []

    def on_execute(_conn, _cursor, statement, _params, _context, _many):
        seen.append(" ".join(statement.split()))

    with portal.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        status = client.get(path, headers=headers).status_code
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return status, seen


def _ms(client, path, headers, n):
    t = time.perf_counter()
    for _ in range(n):
        client.get(path, headers=headers)
    return (time.perf_counter() - t) / n * 1000


def vs_orm(client, path, headers, orm, nbytes, n, rounds=7) -> str:
    """The portal page and the bare ORM page of its size, alternating rounds of n requests each."""
    base_path = f"/orm/{nbytes}"
    for _ in range(20):
        orm.get(base_path)
    pairs = [(_ms(orm, base_path, {}, n), _ms(client, path, headers, n)) for _ in range(rounds)]
    ratios = sorted(b / p for b, p in pairs)  # req/s ratio = base time / portal time
    return (f"bare ORM page {statistics.median(b for b, _ in pairs):.2f} ms, portal "
            f"{statistics.median(p for _, p in pairs):.2f} ms: in-process ratio {statistics.median(ratios):.2f} "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}, {rounds} x {n} requests each)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--database-url", default=None, help="default: bench/seed.py's database for --size")
    ap.add_argument("--size", choices=seeder.SIZES, default="1k")
    ap.add_argument("--role", default="patient", help="patient (p0@bench.example), a staff role, or none")
    ap.add_argument("--n", type=int, default=200, help="requests under the profiler (default 200)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="cumulative", help="pstats sort key: cumulative, tottime, ncalls")
    ap.add_argument("--sql", action="store_true", help="print the statements of one request")
    ap.add_argument("--time-only", action="store_true", help="only ms per request")
    ap.add_argument("--vs-orm", action="store_true", help="also the bare ORM page, interleaved: the ratio")
    args = ap.parse_args(argv)

    url = args.database_url or seeder.default_url(args.size)
    portal = Portal(url, Path(tempfile.mkdtemp(prefix="portal-profile-")))
    cookie = portal.cookie(args.role) if args.role != "none" else None
    headers = {"Cookie": cookie} if cookie else {}
    client = portal.app.test_client(use_cookies=False)
    orm = None
    if args.vs_orm:
        import os

        os.environ["BENCH_DATABASE_URL"] = url
        from baseline_orm import orm_app

        orm = orm_app.test_client()

    for path in args.paths:
        for _ in range(20):
            r = client.get(path, headers=headers)
        if r.status_code != 200:
            print(f"{path}: HTTP {r.status_code} (Location: {r.headers.get('Location')})")
            continue
        rounds = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(max(10, args.n // 5)):
                client.get(path, headers=headers)
            rounds.append((time.perf_counter() - t) / max(10, args.n // 5) * 1000)
        status, sql = one_request_sql(portal, client, path, headers)
        print(f"\n== {path}: {statistics.median(rounds):.2f} ms per request (median of 5 rounds; "
              f"min {min(rounds):.2f}), {len(r.data):,} bytes, {len(sql)} SQL statements (HTTP {status})")
        if orm is not None:
            print("   " + vs_orm(client, path, headers, orm, len(r.data), max(10, args.n // 5)))
        if args.sql:
            for i, s in enumerate(sql, 1):
                print(f"  {i:2}. {s[:400]}")
        if args.time_only:
            continue
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            client.get(path, headers=headers)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

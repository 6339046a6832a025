"""Every registered page against its bare baseline, on a seeded PostgreSQL, under gunicorn with 2 and 4
workers, one table (issue 12; PERFORMANCE.md; bench/README.md).

    python bench/load.py                                # 1k patients, -w 2 and -w 4, -c16, 3 x 10 s
    python bench/load.py --size 10k --c64               # also -c64 (G9: no errors under load)
    python bench/load.py --quick                        # make bench: 1 x 3 s per pair, ~3 minutes
    python bench/load.py --only scheduling              # one domain's pages (plus nothing else)

Seeds `portal_ops_bench_<size>` with bench/seed.py unless it already holds that size (--reseed forces it).
Starts the portal (wsgi:app, PORTAL_ENV=development on that database) and the bare baselines
(bench/baselines.py: hello, Jinja page of a given size; bench/baseline_orm.py: the same page from one ORM query
on the same database)
under the same gunicorn flags; measures with wrk, baseline then portal, interleaved; prints req/s, the ratio,
p50/p95/p99, errors, SQL statements per request (in process, G7) and worker memory (G9). A report, not a test:
exits 0 once it has measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from run import (HOST, Server, bench_cookie, children_of, http_get, loadavg, med, parse_wrk,  # noqa: E402
                 print_table, rss_mib)

import seed as seeder  # noqa: E402
from registry import SeedContext, load_registry  # noqa: E402

LUA = """
done = function(summary, latency, requests)
  io.write(string.format("PCTL %d %d %d\\n", latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


class Args:  # what Server needs from argparse
    def __init__(self, workers, worker_class="sync"):
        self.workers, self.worker_class = workers, worker_class


WRK_TIMEOUT = "5s"  # wrk's default 2 s counts a slow answer on a busy shared machine as a socket error


def wrk(port, path, conns, seconds, threads, lua, headers=None):
    cmd = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", WRK_TIMEOUT,
           "-s", lua]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    run = parse_wrk(out.stdout)
    run.p95 = float("nan")
    if m := re.search(r"PCTL (\d+) (\d+) (\d+)", out.stdout):
        run.p50, run.p95, run.p99 = (int(x) / 1000 for x in m.groups())  # us -> ms
    if out.returncode or not run.rps:
        run.note = f"wrk failed: {(out.stderr or out.stdout).strip()[:200]}"
    return run


def mix_script(mixed, cookies: dict) -> str:
    """A wrk Lua script cycling through the pages, weighted by who uses the portal most."""
    weight = {None: 1, "patient": 4}
    lines = ["local reqs = {}"]
    n = 0
    for s, path in mixed:
        for _ in range(weight.get(s.role, 2)):
            n += 1  # several sessions per role: no single session row takes every request's touch
            headers = "{}" if not s.role else '{["Cookie"] = "%s"}' % cookies[s.role][n % len(cookies[s.role])]
            lines.append(f'reqs[#reqs + 1] = wrk.format("GET", "{path}", {headers})')
    lines += ["local i = 0", "request = function()", "  i = i % #reqs + 1", "  return reqs[i]", "end",
              LUA.strip()]
    return "\n".join(lines) + "\n"


def seeded_size(url: str) -> str | None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    try:
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database,
                             connect_timeout=3) as c:
            return c.execute("SELECT size FROM bench_meta").fetchone()[0]
    except Exception:
        return None


class Portal:
    """In-process app on the seeded database: bench sessions (as tests/conftest.py:sign_in_session does: a
    live MFA-verified UserSession row and the app's own signed cookie), paths, and statement counts."""

    def __init__(self, url: str, tmp: Path):
        import logging

        logging.basicConfig(level=logging.WARNING)
        os.environ.update(PORTAL_ENV="development", DATABASE_URL=url, MAIL_FILE_DIR=str(tmp / "mail"))
        from portal import create_app

        # config.py reads DATABASE_URL when first imported (seeding may have imported it already): pass it too.
        self.app = create_app(SQLALCHEMY_DATABASE_URI=url, MAIL_FILE_DIR=str(tmp / "mail"))
        self.url = url

    def cookie(self, role: str) -> str:
        email = seeder.patient_email(0) if role == "patient" else seeder.staff_email(role)
        return bench_cookie(self.app, email, "bench/load.py")

    def context(self) -> SeedContext:
        from portal.extensions import db

        with self.app.app_context():
            self._raw = db.engine.raw_connection()  # held (a dropped fairy returns to the pool while in use)
        self._raw.driver_connection.autocommit = True
        return SeedContext(conn=self._raw.driver_connection, size=0)

    def statements(self, path: str, cookie: str | None) -> int:
        """SQL statements one request runs (before_cursor_execute), for G7's constant-count check."""
        from sqlalchemy import event

        from portal.extensions import db

        count = [0]

        def on_execute(*_a, **_k):
            count[0] += 1

        with self.app.app_context():
            engine = db.engine
        client = self.app.test_client(use_cookies=False)  # else its own (empty) jar replaces our Cookie header
        headers = {"Cookie": cookie} if cookie else {}
        client.get(path, headers=headers)  # warm (first-request work is not per-request work)
        event.listen(engine, "before_cursor_execute", on_execute)
        try:
            status = client.get(path, headers=headers).status_code
        finally:
            event.remove(engine, "before_cursor_execute", on_execute)
        return count[0] if status in (200, 404) else -status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=seeder.SIZES, default="1k")
    ap.add_argument("--database-url", help="default postgresql+psycopg://postgres@127.0.0.1:5432/portal_ops_bench_<size>")
    ap.add_argument("--reseed", action="store_true", help="seed again even if the database holds this size")
    ap.add_argument("--workers", default="2,4", help="gunicorn worker counts to measure (default 2,4)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--c64", action="store_true", help="also -c64 after -c16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", help="a domain (core, scheduling, ...) or a comma list")
    ap.add_argument("--quick", action="store_true", help="1 x 3 s per pair, -w 2 and 4 (make bench)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--mix", action="store_true",
                    help="after the pages, one wrk run of a realistic mix of them (patients 4 : staff 2 : "
                         "anonymous 1) at each concurrency: total req/s, latency, errors (G9 at -c64)")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.duration, args.warmup = 1, 3, 1
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    url = args.database_url or seeder.default_url(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="portal-load-"))
    lua = tmp / "pctl.lua"
    lua.write_text(LUA)
    servers: list[Server] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    t0 = time.monotonic()
    try:
        if args.reseed or seeded_size(url) != args.size:
            seeder.seed(args.size, url)
        reg = load_registry()
        only = set(args.only.split(",")) if args.only else None
        scenarios = [s for s in reg.scenarios if not only or s.domain in only]
        portal = Portal(url, tmp)
        ctx = portal.context()
        paths = {s.name: (s.path(ctx) if callable(s.path) else s.path) for s in scenarios}
        pdf_dir = tmp / "pdf"  # baseline "weasyprint": the HTML each PDF page renders, static URLs on disk
        pdf_dir.mkdir()
        pdf_names = {}
        for i, s in enumerate(x for x in scenarios if x.baseline == "weasyprint"):
            html = s.baseline_html(portal.app, ctx, paths[s.name])
            static = (ROOT / "portal" / "static").as_uri() + "/"
            pdf_names[s.name] = f"p{i}"
            (pdf_dir / f"p{i}.html").write_text(html.replace("portal-static:/", static), encoding="utf-8")
        counts = [int(x) for x in args.workers.split(",")]
        levels = [16, 64] if args.c64 else [16]
        print(f"bench: {args.size} patients ({url.rsplit('/', 1)[-1]}); gunicorn sync -w {args.workers}; wrk "
              f"-t{args.threads} {'-c16 -c64' if args.c64 else '-c16'}; {args.reps} x {args.duration}s; "
              f"{os.cpu_count()} CPUs; load average {loadavg()}", flush=True)
        rows, rss_rows, sql_rows, mix_rows, logged = [], [], [], [], Counter()
        for w in counts:
            a = Args(w)
            penv = dict(os.environ, PORTAL_ENV="development", DATABASE_URL=url, MAIL_FILE_DIR=str(tmp / "mail"),
                        PYTHONUNBUFFERED="1")
            penv.pop("REDIS_URL", None)
            benv = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_DATABASE_URL=url, BENCH_PDF_DIR=str(pdf_dir))
            srv = {"portal": Server(f"portal-w{w}", "wsgi:app", a, penv, tmp),
                   "hello": Server(f"bare-hello-w{w}", "baselines:hello_app", a, benv, tmp, ["--pythonpath", str(BENCH)]),
                   "jinja": Server(f"bare-jinja-w{w}", "baselines:page_app", a, benv, tmp, ["--pythonpath", str(BENCH)]),
                   "orm": Server(f"bare-orm-w{w}", "baseline_orm:orm_app", a, benv, tmp, ["--pythonpath", str(BENCH)])}
            if pdf_names:
                srv["weasyprint"] = Server(f"bare-pdf-w{w}", "baselines:pdf_app", a, benv, tmp,
                                           ["--pythonpath", str(BENCH)])
                # as deployed (deploy/nginx: location ~ \.pdf$): the same app in a pool of its own for PDFs
                srv["portal_pdf"] = Server(f"portal-pdf-w{w}", "wsgi:app", a, penv, tmp)
            servers[:] = list(srv.values())
            for s in servers:
                s.start()
            srv["portal"].wait_up("/healthz")
            srv["hello"].wait_up("/hello")
            srv["jinja"].wait_up("/page/20000")
            srv["orm"].wait_up("/orm/20000")
            if pdf_names:
                srv["weasyprint"].wait_up(f"/pdf/{next(iter(pdf_names.values()))}")
                srv["portal_pdf"].wait_up("/healthz")
            rss0 = {k: [rss_mib(p) for p in s.workers()] for k, s in srv.items()}
            plan = []
            for s in scenarios:
                cookie = portal.cookie(s.role) if s.role else None
                hdrs = {"Cookie": cookie} if cookie else None
                pool = srv["portal_pdf" if s.baseline == "weasyprint" else "portal"]
                status, h, body = http_get(pool.port, paths[s.name], hdrs)
                if status != s.status:
                    print(f"  skip {s.name}: {paths[s.name]} answered {status} {h.get('location', '')}", flush=True)
                    continue
                bpath = {"hello": "/hello", "jinja": f"/page/{len(body)}", "orm": f"/orm/{len(body)}",
                         "weasyprint": f"/pdf/{pdf_names.get(s.name)}"}[s.baseline]
                plan.append((s, hdrs, bpath, len(body), pool))
                if w == counts[0]:
                    sql_rows.append([s.name, paths[s.name][:40], str(len(body)), str(portal.statements(paths[s.name], cookie))])
            if args.warmup:
                for s, hdrs, bpath, _, pool in plan:
                    c = w if s.baseline == "weasyprint" else 16
                    wrk(srv[s.baseline].port, bpath, c, args.warmup, args.threads, str(lua))
                    wrk(pool.port, paths[s.name], c, args.warmup, args.threads, str(lua), hdrs)
            for conns in levels:
                for s, hdrs, bpath, size, pool in plan:
                    pairs = []
                    # a PDF render takes a worker for 0.2-1 s: -c<workers> (one request per worker, no queue
                    # behind the wrk timeout), for the page and its bare WeasyPrint baseline alike
                    c = min(conns, w) if s.baseline == "weasyprint" else conns
                    for rep in range(args.reps):
                        b = wrk(srv[s.baseline].port, bpath, c, args.duration, args.threads, str(lua))
                        if s.role:  # a fresh session per run: never near the idle timeout
                            hdrs = {"Cookie": portal.cookie(s.role)}
                        mark = pool.log_size()
                        r = wrk(pool.port, paths[s.name], c, args.duration, args.threads, str(lua), hdrs)
                        if s.status >= 400:
                            r.non2xx = 0  # wrk counts the expected 404s as "non-2xx"; socket errors still count
                        logged.update(pool.log_errors(mark))
                        if s.role:  # (a slow page's backlog may still be draining on a busy machine)
                            try:
                                st, h, _ = http_get(pool.port, paths[s.name], hdrs, timeout=60)
                            except TimeoutError:
                                st, h, r.note = 0, {}, "session check timed out"
                            if 300 <= st < 400:
                                r.note = f"SESSION LOST ({h.get('location', '')})"
                        pairs.append((b, r))
                    ratios = [r.rps / b.rps for b, r in pairs if b.rps and r.rps]
                    ratio = med(ratios)
                    verdict = "" if s.min_ratio is None or ratio != ratio else (
                        " ok" if ratio >= s.min_ratio else " MISS")
                    errs = sum(r.errors for _, r in pairs)
                    notes = "; ".join(r.note for _, r in pairs if r.note)
                    row = [str(w), str(c), s.name, f"{s.baseline} {size} B" if s.baseline != "hello" else "hello",
                           f"{med(r.rps for _, r in pairs):.0f}", f"{med(b.rps for b, _ in pairs):.0f}",
                           f"{ratio:.2f}" + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""),
                           (f"{s.goal} >={s.min_ratio:.2f}" if s.min_ratio is not None else s.goal) + verdict,
                           f"{med(r.p50 for _, r in pairs):.1f}", f"{med(r.p95 for _, r in pairs):.1f}",
                           f"{med(r.p99 for _, r in pairs):.1f}", f"{med(b.p99 for b, _ in pairs):.1f}",
                           str(errs) + (f" {notes}" if notes else "")]
                    rows.append(row)
                    print("  " + " | ".join(row), flush=True)
            if args.mix:
                mixed = [(s, paths[s.name]) for s, _, _, _, pool in plan
                         if pool is srv["portal"] and s.status == 200 and not s.name.startswith("/")]
                for conns in levels:
                    cookies = {role: [portal.cookie(role) for _ in range(8)]
                               for role in {s.role for s, _ in mixed if s.role}}
                    mix_lua = tmp / f"mix-{w}-{conns}.lua"
                    mix_lua.write_text(mix_script(mixed, cookies))
                    mark = srv["portal"].log_size()
                    r = wrk(srv["portal"].port, "/", conns, max(args.duration, 10), args.threads, str(mix_lua))
                    logged.update(srv["portal"].log_errors(mark))
                    mix_rows.append([str(w), str(conns), str(len(mixed)), f"{r.rps:.0f}", f"{r.p50:.1f}",
                                     f"{r.p95:.1f}", f"{r.p99:.1f}", str(r.errors) + (f" {r.note}" if r.note else "")])
                    print("  mix | " + " | ".join(mix_rows[-1]), flush=True)
            rss1 = {k: [rss_mib(p) for p in s.workers()] for k, s in srv.items()}
            def top(k):
                return max((x for x in rss1[k] if x), default=float("nan"))

            for k in srv:  # G9: page workers against the bare ORM worker; G5: the PDF pool against bare WeasyPrint
                ref = "weasyprint" if k == "portal_pdf" else "orm"
                rss_rows.append([str(w), k, " ".join(f"{x:.0f}" for x in rss0[k] if x),
                                 " ".join(f"{x:.0f}" for x in rss1[k] if x), f"{top(k) / top(ref):.2f} x {ref}"])
            for s in servers:
                s.stop()
            servers.clear()
        print()
        print(f"Portal vs bare baselines, {args.size} patients, PostgreSQL, same run (ratio = median of paired "
              f"portal/baseline req/s; latency in ms, wrk; base p99 = the baseline's)")
        print_table(["w", "c", "page", "baseline", "portal req/s", "base req/s", "ratio", "goal", "p50", "p95", "p99",
                     "base p99", "errors"], rows)
        if logged:
            print("Portal log during the runs:")
            for line, n in logged.most_common(5):
                print(f"  {n} x {line}")
        if mix_rows:
            print()
            print("Mixed load: every page above (not the PDF pool, not the 404) in one wrk run, patients 4 : staff 2 : "
                  "anonymous 1, each connection cycling through them (G9: 0 errors at -c64)")
            print_table(["w", "c", "pages", "req/s", "p50", "p95", "p99", "errors"], mix_rows)
        print()
        print("SQL statements per request (in process, second request; G7: the same at every size)")
        print_table(["page", "path", "bytes", "statements"], sql_rows)
        print()
        print("Worker RSS (MiB) at start and after load; G9: portal (the page pool) <= 2 x the bare Flask + "
              "SQLAlchemy (orm) worker; G5: portal_pdf (the PDF pool) <= 1.5 x the bare WeasyPrint worker")
        print_table(["w", "server", "at start", "after load", "x bare"], rss_rows)
        print(f"({time.monotonic() - t0:.0f} s; load average now {loadavg()})")
        return 0
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        import traceback

        traceback.print_exc()
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        for s in servers:
            if s.proc and s.proc.poll() is not None:
                print(f"--- {s.name} log ---\n{s.log_tail()}", file=sys.stderr)
        return 1
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

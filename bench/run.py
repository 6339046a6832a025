"""Portal throughput against bare Flask baselines, measured side by side in one run (docs: bench/README.md).

    python bench/run.py                        # 3 x 10 s at -c16
    python bench/run.py --c64                  # also -c64 (G9: no errors under load)
    python bench/run.py --reps 1 --duration 3  # smoke check, < 1 minute
    python bench/run.py --all [--size 10k ...] # every registered page on seeded PostgreSQL (= bench/load.py)

Starts, on 127.0.0.1 and free ports, each under the same gunicorn flags (-w 2 --worker-class sync by default):
the portal (wsgi:app, PORTAL_ENV=development, a temporary SQLite database upgraded and seeded with the demo
clinic), bare hello (bench/baselines.py:hello_app) and a bare Flask + Jinja page (baselines.py:page_app) sized
byte for byte to each portal page. Then runs wrk interleaved (baseline, portal, baseline, portal, ...), takes
medians, and prints ratios. Always exits 0 once it has measured: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Timeout)\b:?")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
PATIENT_EMAIL = "gladys@patient.example"  # a seeded patient account (portal/demo/seed.py)


# --- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn master in its own process group, so stop() ends it and its workers and nothing else."""

    def __init__(self, name: str, app: str, args, env: dict, tmp: Path, extra: list[str] = ()):
        self.name, self.env, self.port, self.n_workers = name, env, free_port(), args.workers
        # Every server gets the project's gunicorn.conf.py (gunicorn would load it from the cwd anyway); the
        # command-line workers, worker class and bind override it. No worker recycling while measuring
        # (--max-requests 0): at thousands of req/s the production setting (5,000 ± 500) restarts a worker
        # every few seconds, and the portal's restart (~1 s of imports) lands in a 3-second run's p95.
        conf = ["-c", str(ROOT / "gunicorn.conf.py")] if (ROOT / "gunicorn.conf.py").exists() else []
        self.cmd = [sys.executable, "-m", "gunicorn", *conf, "-w", str(args.workers), "--worker-class",
                    args.worker_class, "-b", f"{HOST}:{self.port}", "--log-level", "warning", "--max-requests",
                    "0", *extra, app]
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_up(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                status, _, _ = http_get(self.port, path, timeout=2)
                if status < 500 and len(self.workers()) >= self.n_workers:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not up after {timeout:.0f}s:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc else []

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_errors(self, since: int) -> Counter:
        """Exception summaries (a traceback's last line) and gunicorn worker timeouts logged after `since`."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return Counter()
        found = Counter(line.strip()[:140] for line in text.splitlines() if _EXC_LINE.match(line))
        found.update("gunicorn: WORKER TIMEOUT (worker killed and restarted)"
                     for line in text.splitlines() if "WORKER TIMEOUT" in line)
        return found

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)  # the group this script created (start_new_session)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:  # master gone: make sure no orphaned worker of ours survives
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()
        self.proc = None


def children_of(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return sorted(kids)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def http_get(port: int, path: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One GET without following redirects (wrk counts 3xx as success, so pages are checked here)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- the portal: database, seed, bench-only sign-in ------------------------------------------------

def portal_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env.update(PORTAL_ENV="development", DATABASE_URL=f"sqlite:///{tmp / 'portal.sqlite3'}",
               MAIL_FILE_DIR=str(tmp / "mail"), FLASK_APP="wsgi.py", PYTHONUNBUFFERED="1")
    return env


def prepare_database(env: dict) -> None:
    for cmd in (["db", "upgrade"], ["demo", "seed"]):
        r = subprocess.run([sys.executable, "-m", "flask", *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"flask {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")


class SignIn:
    """Bench-only sign-in, done the way tests/conftest.py's sign_in_session() does: a live, MFA-verified
    UserSession row (keyed hash of a random token) and the app's own signed session cookie {"sid": token}.
    Written straight to the benchmark's temporary database; the portal gains no route."""

    def __init__(self, env: dict):
        import logging

        logging.basicConfig(level=logging.WARNING)  # before create_app, which would log INFO to stderr
        os.environ.update({k: env[k] for k in ("PORTAL_ENV", "DATABASE_URL", "MAIL_FILE_DIR")})
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from portal import create_app

        self.app = create_app()

    def cookie(self, email: str) -> str:
        return bench_cookie(self.app, email, "bench/run.py", dispose=True)


def bench_cookie(app, email: str, user_agent: str, dispose: bool = False) -> str:
    """A `Cookie` header value for a live, MFA-verified session of `email` (as tests/conftest.py:sign_in_session
    makes one: a UserSession row and the app's own signed cookie). The portal has no route for this."""
    from sqlalchemy import select

    from portal.accounts.models import User, UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    token = secrets.token_urlsafe(32)
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == email)).scalars().one()
        now = utcnow()
        db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                                   mfa_verified_at=now, reauth_at=now, ip=HOST, user_agent=user_agent))
        db.session.commit()
        db.session.remove()
        if dispose:
            db.engine.dispose()  # hold no SQLite connection while the workers write
    value = app.session_interface.get_signing_serializer(app).dumps({"sid": token})
    return f"{app.config['SESSION_COOKIE_NAME']}={value}"


# --- wrk ------------------------------------------------------------------------------------------

@dataclass
class Run:
    rps: float = 0.0
    p50: float = float("nan")  # ms
    p99: float = float("nan")
    non2xx: int = 0
    sock: dict = field(default_factory=dict)
    note: str = ""

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.sock.values())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> Run:
    r = Run()
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        r.rps = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        r.p50 = _ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        r.p99 = _ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        r.non2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r.sock = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    return r


def wrk(port: int, path: str, conns: int, seconds: int, threads: int, headers: dict | None = None) -> Run:
    cmd = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    run = parse_wrk(out.stdout)
    if out.returncode or not run.rps:
        run.note = f"wrk failed: {(out.stderr or out.stdout).strip()[:200]}"
    return run


# --- the comparison ---------------------------------------------------------------------------------

@dataclass
class Pair:
    page: str  # label
    path: str  # portal path
    base_label: str
    base: Server
    base_path: str
    goal: str  # e.g. "G4>=0.80" or "info"
    min_ratio: float | None
    cookie: bool = False
    runs: dict = field(default_factory=dict)  # conns -> list[(base Run, portal Run)]
    log_errors: dict = field(default_factory=dict)  # conns -> Counter of exception lines in the portal log


def fmt_ratio(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def spread(xs) -> str:
    return f" ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else ""


def med(xs) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--size" or a.startswith("--size=") or a == "--all" for a in argv):
        # Every registered scenario (core + each bench/<domain>.py) on seeded PostgreSQL: bench/load.py.
        import load

        return load.main([a for a in argv if a != "--all"])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per pair and concurrency (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers for every server (default 2)")
    ap.add_argument("--worker-class", default="sync", help="gunicorn worker class (default sync)")
    ap.add_argument("--c64", action="store_true", help="also measure at -c64 (after -c16)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per URL first (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database, pages)")
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    servers: list[Server] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (`cmd &`)
    t0 = time.monotonic()
    try:
        penv = portal_env(tmp)
        benv = dict(os.environ, PYTHONUNBUFFERED="1")
        print(f"bench: gunicorn -w {args.workers} --worker-class {args.worker_class}; wrk -t{args.threads} "
              f"{'-c16 -c64' if args.c64 else '-c16'}; {args.reps} x {args.duration}s; {os.cpu_count()} CPUs; "
              f"load average {loadavg()}; scratch {tmp}", flush=True)
        prepare_database(penv)
        portal = Server("portal", "wsgi:app", args, penv, tmp)
        hello = Server("bare-hello", "baselines:hello_app", args, benv, tmp, ["--pythonpath", str(BENCH)])
        page = Server("bare-page", "baselines:page_app", args, benv, tmp, ["--pythonpath", str(BENCH)])
        servers += [portal, hello, page]
        for s in servers:
            s.start()
        portal.wait_up("/healthz")
        hello.wait_up("/hello")
        page.wait_up("/page/20000")
        rss_start = {s.name: [rss_mib(p) for p in s.workers()] for s in servers}

        signin = SignIn(penv)
        # Capture each portal page once: it must be a 200 (not a redirect), and its size sizes the bare page.
        pages = tmp / "pages"
        pages.mkdir()
        sizes = {}
        for label, path, cookie in (("signin", "/signin", False), ("help", "/help", False),
                                    ("record", "/record", True)):
            hdrs = {"Cookie": signin.cookie(PATIENT_EMAIL)} if cookie else {}
            status, h, body = http_get(portal.port, path, hdrs)
            if status != 200:
                raise RuntimeError(f"portal {path} answered {status} {h.get('location', '')} instead of 200")
            (pages / f"{label}.html").write_bytes(body)
            sizes[path] = len(body)
            status, h, bare = http_get(page.port, f"/page/{len(body)}")
            if status != 200 or len(bare) != len(body):
                raise RuntimeError(f"bare page for {path}: {status}, {len(bare)} bytes, wanted {len(body)}")
        print("bench: portal pages " + ", ".join(f"{p} {n} B" for p, n in sizes.items())
              + " -> bare Jinja pages of the same sizes", flush=True)

        pairs = [
            Pair("/healthz", "/healthz", "hello (13 B)", hello, "/hello", "G4 >=0.80", 0.80),
            Pair("/signin", "/signin", f"jinja {sizes['/signin']} B", page, f"/page/{sizes['/signin']}",
                 "G3 >=0.70", 0.70),
            Pair("/help", "/help", f"jinja {sizes['/help']} B", page, f"/page/{sizes['/help']}", "G3 >=0.70", 0.70),
            Pair("/record (patient)", "/record", f"jinja {sizes['/record']} B", page, f"/page/{sizes['/record']}",
                 "info", None, cookie=True),
        ]
        levels = [16, 64] if args.c64 else [16]

        if args.warmup > 0:
            for p in pairs:
                hdrs = {"Cookie": signin.cookie(PATIENT_EMAIL)} if p.cookie else None
                wrk(p.base.port, p.base_path, levels[0], args.warmup, args.threads)
                wrk(portal.port, p.path, levels[0], args.warmup, args.threads, hdrs)

        for conns in levels:
            for rep in range(1, args.reps + 1):
                for p in pairs:
                    b = wrk(p.base.port, p.base_path, conns, args.duration, args.threads)
                    hdrs = None
                    if p.cookie:  # a fresh session per run: never near the idle timeout, whatever --duration
                        cookie = signin.cookie(PATIENT_EMAIL)
                        hdrs = {"Cookie": cookie}
                    mark = portal.log_size()
                    r = wrk(portal.port, p.path, conns, args.duration, args.threads, hdrs)
                    p.log_errors.setdefault(conns, Counter()).update(portal.log_errors(mark))
                    if p.cookie:  # wrk counts a 302 to /signin as success: prove the session still held
                        status, h, _ = http_get(portal.port, p.path, hdrs)
                        if 300 <= status < 400:
                            r.note = f"SESSION LOST: {p.path} then redirected to {h.get('location', '')}"
                    p.runs.setdefault(conns, []).append((b, r))
                    print(f"  c{conns} rep {rep}/{args.reps} {p.page:18} base {b.rps:8.0f} req/s   portal "
                          f"{r.rps:8.0f} req/s   ratio {r.rps / b.rps if b.rps else float('nan'):.2f}"
                          + (f"   [{b.note or r.note}]" if b.note or r.note else ""), flush=True)

        rss_end = {s.name: [rss_mib(p) for p in s.workers()] for s in servers}
        report(args, pairs, levels, rss_start, rss_end, time.monotonic() - t0)
        return 0
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping servers", file=sys.stderr)
        return 130
    except Exception as exc:  # a report that could not be made is still not a crash dump
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


def report(args, pairs, levels, rss_start, rss_end, elapsed) -> None:
    print()
    print(f"Portal vs bare baselines, same run: gunicorn -w {args.workers} {args.worker_class}, "
          f"wrk -t{args.threads}, median of {args.reps} x {args.duration}s (ratio = median of paired ratios)")
    head = ["page", "baseline", "c", "portal req/s", "base req/s", "ratio (min-max)", "goal", "p50 ms", "p99 ms",
            "p99 ratio", "errors"]
    rows = []
    for conns in levels:
        for p in pairs:
            runs = p.runs.get(conns, [])
            ratios = [r.rps / b.rps for b, r in runs if b.rps and r.rps]
            p99r = [r.p99 / b.p99 for b, r in runs if b.p99 and r.p99 == r.p99 and b.p99 == b.p99]
            ratio = med(ratios)
            verdict = ""
            if p.min_ratio is not None and ratio == ratio:
                verdict = " ok" if ratio >= p.min_ratio else " MISS"
            errs = errors_text([r for _, r in runs])
            berrs = errors_text([b for b, _ in runs])
            if berrs != "0":
                errs += f" (base: {berrs})"
            rows.append([p.page, p.base_label, str(conns), f"{med(r.rps for _, r in runs):.0f}",
                         f"{med(b.rps for b, _ in runs):.0f}", fmt_ratio(ratio) + spread(ratios), p.goal + verdict,
                         f"{med(r.p50 for _, r in runs):.1f}", f"{med(r.p99 for _, r in runs):.1f}",
                         fmt_ratio(med(p99r)), errs])
    print_table(head, rows)
    logged = [(conns, p.page, n, line) for conns in levels for p in pairs
              for line, n in distinct(p.log_errors.get(conns, Counter())).most_common(3)]
    if logged:
        print("Portal log during the measured runs (the cause of non-2xx):")
        for conns, page, n, line in logged:
            print(f"  {page} c{conns}: {n} x {line}")

    print()
    print("Worker RSS (MiB, /proc VmRSS), at start -> after load; G9: portal <= 2 x a bare worker after load")
    bare = max((x for x in rss_end.get("bare-page", []) if x), default=float("nan"))
    rows = []
    for name, after in rss_end.items():
        before = rss_start.get(name, [])
        top = max((x for x in after if x), default=float("nan"))
        rows.append([name, " ".join(f"{x:.1f}" for x in before if x), " ".join(f"{x:.1f}" for x in after if x),
                     f"{top:.1f}", fmt_ratio(top / bare) if bare == bare else "-"])
    print_table(["server", "workers at start", "workers after load", "max", "x bare-page worker"], rows)
    g9 = rss_end.get("portal") and max(x for x in rss_end["portal"] if x) / bare
    if g9:
        print(f"G9 RSS: {g9:.2f} x bare Flask+Jinja worker ({'ok' if g9 <= 2 else 'MISS'})")
    print(f"({elapsed:.0f} s in all; load average now {loadavg()}: other work on this machine skews absolute "
          f"req/s, much less the paired ratios)")


def distinct(errors: Counter) -> Counter:
    """Drop a chained exception's inner line ("sqlite3.OperationalError: database is locked") when the outer
    one ("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked") has the same count."""
    def inner(line, n):
        msg = line.split(":", 1)[-1].strip()
        return any(o != line and n == m and msg and msg in o for o, m in errors.items())

    return Counter({line: n for line, n in errors.items() if not inner(line, n)})


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def errors_text(runs) -> str:
    non2xx = sum(r.non2xx for r in runs)
    sock = {k: sum(r.sock.get(k, 0) for r in runs) for k in ("connect", "read", "write", "timeout")}
    parts = [f"non2xx {non2xx}"] if non2xx else []
    parts += [f"{k} {v}" for k, v in sock.items() if v]
    parts += [r.note for r in runs if r.note]
    return "; ".join(parts) or "0"


def print_table(head, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    sys.exit(main())

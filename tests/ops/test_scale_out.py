"""Scale-out and resilience against the real services (issue 12): two gunicorn nodes on one PostgreSQL and
one Redis share sessions and rate limits; Redis stopped, SMTP refusing and PostgreSQL connections killed
leave the portal answering.

The Redis here is a private `redis-server` this module starts on a free port (so it can be stopped and
started again without touching anyone else's); PostgreSQL is the machine's, in a database of this module's
own. Both are required in CI (PORTAL_TEST_REQUIRE_ALL=1 turns a missing one into a failure, not a skip).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import PASSWORD, create_pg_database, drop_pg_database, free_port, unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
IP_LIMIT = 5  # IP_FAILURES_PER_WINDOW on the nodes: small, so the shared limit shows quickly


# --- processes --------------------------------------------------------------------------------------

def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the group this module created (start_new_session)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class PrivateRedis:
    def __init__(self, tmp: Path):
        self.port, self.tmp, self.proc = free_port(), tmp, None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port, self.proc, 20)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class Node:
    """One gunicorn (1 sync worker) serving wsgi:app."""

    def __init__(self, name: str, env: dict, tmp: Path):
        self.name, self.env, self.port = name, env, free_port()
        self.log = tmp / f"{name}.log"
        self.proc = None

    def start(self) -> None:
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-w", "1", "-b",
             f"{HOST}:{self.port}", "--access-logfile", "-", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self) -> None:
        _wait_port(self.port, self.proc)
        self.request("GET", "/healthz")

    def stop(self) -> None:
        _stop(self.proc)
        self._fh.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, cookies: dict | None = None, data: dict | None = None,
                headers: dict | None = None):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
        hdrs = dict(headers or {})
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        body = None
        if data is not None:
            body = urlencode(data)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            hdrs.setdefault("Origin", f"http://{HOST}:{self.port}")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
            jar = {}
            for k, v in resp.getheaders():
                if k.lower() == "set-cookie":
                    name, _, rest = v.partition("=")
                    jar[name] = rest.split(";", 1)[0]
            return resp.status, dict(resp.getheaders()), text, jar
        finally:
            conn.close()


def _token(html: str) -> str:
    m = (re.search(r'name="csrf-token" content="([^"]+)"', html)
         or re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html))
    assert m, "no CSRF token on the page"
    return m.group(1)


class Cluster:
    def __init__(self, url: str, redis: PrivateRedis, nodes: list[Node], seed_app):
        self.url, self.redis, self.nodes, self.seed_app = url, redis, nodes, seed_app

    def make_patient_user(self):
        from portal.extensions import db
        from tests.factories import create_user

        with self.seed_app.app_context():
            user = create_user("patient", email=f"p{uuid.uuid4().hex[:8]}@test.example")
            db.session.commit()
            email = user.email
            db.session.remove()
        return email

    def session_cookie(self, email: str) -> dict:
        """A live, MFA-verified session (tests/conftest.py:sign_in_session, over HTTP)."""
        from sqlalchemy import select

        from portal.accounts.models import User, UserSession
        from portal.core.crypto import keyed_hash
        from portal.core.db import utcnow
        from portal.extensions import db

        token = secrets.token_urlsafe(32)
        with self.seed_app.app_context():
            user = db.session.execute(select(User).where(User.email == email)).scalars().one()
            now = utcnow()
            db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                                       mfa_verified_at=now, reauth_at=now, ip=HOST, user_agent="pytest"))
            db.session.commit()
            db.session.remove()
        value = self.seed_app.session_interface.get_signing_serializer(self.seed_app).dumps({"sid": token})
        return {self.seed_app.config["SESSION_COOKIE_NAME"]: value}

    def psql(self, sql: str) -> str:
        from sqlalchemy import create_engine, text

        eng = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with eng.connect() as c:
                return str(c.execute(text(sql)).scalar())
        finally:
            eng.dispose()


@pytest.fixture(scope="module")
def cluster(pg_admin_url, tmp_path_factory):
    if not shutil.which("redis-server"):
        unavailable("redis-server", "not installed (apt-get install redis-server)")
    from flask_migrate import upgrade

    from config import TestingConfig
    from portal import create_app

    tmp = tmp_path_factory.mktemp("cluster")
    name = f"portal_ops_nodes_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(name)
    redis = PrivateRedis(tmp)
    nodes: list[Node] = []
    seed_app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
    try:
        with seed_app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            from portal.extensions import db

            db.session.remove()
        redis.start()
        env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "SECRET_KEY",
                                                                "FIELD_ENCRYPTION_KEYS")}
        env.update(PORTAL_ENV="development", DATABASE_URL=url, REDIS_URL=redis.url, PYTHONPATH=str(ROOT),
                   PYTHONUNBUFFERED="1", MAIL_BACKEND="smtp", MAIL_SERVER=HOST, MAIL_PORT=str(free_port()),
                   IP_FAILURES_PER_WINDOW=str(IP_LIMIT), LOGIN_FAILURES_PER_WINDOW="1000", LOG_FORMAT="json",
                   PUBLIC_BASE_URL="http://127.0.0.1", WEB_CONCURRENCY="1", GUNICORN_ACCESS_LOG="-")
        nodes = [Node("node-a", env, tmp), Node("node-b", env, tmp)]
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_up()
        yield Cluster(url, redis, nodes, seed_app)
    finally:
        for n in nodes:
            n.stop()
        redis.stop()
        with seed_app.app_context():
            from portal.extensions import db

            db.engine.dispose()
        drop_pg_database(name)


# --- scale-out --------------------------------------------------------------------------------------

def test_two_nodes_sign_out_on_one_ends_the_session_on_the_other(cluster):
    a, b = cluster.nodes
    email = cluster.make_patient_user()
    cookies = cluster.session_cookie(email)
    assert b.request("GET", "/record", cookies)[0] == 200
    status, _, html, jar = a.request("GET", "/record", cookies)
    assert status == 200
    cookies = {**cookies, **jar}  # the page's CSRF secret joined the session
    status, headers, _, _ = a.request("POST", "/signout", cookies, {"csrf_token": _token(html)})
    assert status == 302
    status, headers, _, _ = b.request("GET", "/record", cookies)  # the same cookie, on the other node
    assert status == 302 and "/signin" in headers["Location"]


def test_two_nodes_share_rate_limits_through_redis(cluster):
    a, b = cluster.nodes
    statuses = []
    for i in range(IP_LIMIT + 1):  # failed sign-ins for unknown addresses, alternating between the nodes
        node = (a, b)[i % 2]
        _, _, html, jar = node.request("GET", "/signin")
        status, _, _, _ = node.request("POST", "/signin", jar, {"csrf_token": _token(html),
                                                                "email": f"nobody{i}@test.example",
                                                                "password": "not the password 123"})
        statuses.append(status)
    assert all(s in (200, 401) for s in statuses[:IP_LIMIT]), statuses  # refused, not yet throttled
    assert statuses[IP_LIMIT] == 429, f"node {'ab'[IP_LIMIT % 2]} did not see the other node's failures: {statuses}"
    import redis as redis_lib

    r = redis_lib.Redis.from_url(cluster.redis.url)
    assert any(b"ip-fail" in k for k in r.keys("*")), "the counters are not in the shared Redis"
    r.flushdb()  # the next tests sign in from the same IP


# --- resilience -----------------------------------------------------------------------------------------

def test_postgres_connections_terminated_next_request_recovers(cluster):
    a, _ = cluster.nodes
    cookies = cluster.session_cookie(cluster.make_patient_user())
    assert a.request("GET", "/record", cookies)[0] == 200  # the worker holds a pooled connection now
    killed = cluster.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert int(killed) >= 1
    status, _, html, _ = a.request("GET", "/record", cookies)  # pool_pre_ping replaces the dead connection
    assert status == 200, html[:500]
    assert a.request("GET", "/readyz")[0] == 200
    assert "Traceback" not in a.log_text()


def test_postgres_connection_killed_mid_transaction_rolls_back_cleanly(cluster):
    """A patient sends a message: the request inserts the thread and the message, then waits for the audit
    chain's advisory lock, which this test holds. Its connection is terminated right there, in the middle of
    its transaction. The patient gets the clean error page (no traceback), nothing of the message was kept,
    and the next request on the same worker is fine."""
    import threading

    from sqlalchemy import create_engine, text

    a, _ = cluster.nodes
    cookies = cluster.session_cookie(cluster.make_patient_user())
    status, _, html, jar = a.request("GET", "/messages/new", cookies)
    assert status == 200, html[:300]
    cookies = {**cookies, **jar}
    client_key = re.search(r'name="client_key" type="hidden" value="([^"]*)"', html).group(1)
    subject = f"Killed mid-transaction {uuid.uuid4().hex[:8]}"
    form = {"csrf_token": _token(html), "topic": "technical", "subject": subject,
            "body": "Half of this must never be kept.", "client_key": client_key}
    holder = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    result = {}
    with holder.connect() as lock, holder.connect() as watch:
        lock.execute(text("SELECT pg_advisory_lock(727274)"))  # the key core/audit.py's appends take
        try:
            worker = threading.Thread(target=lambda: result.update(r=a.request("POST", "/messages/new", cookies, form)))
            worker.start()
            blocked = None
            for _ in range(300):  # the request is inside its transaction, waiting for the lock
                blocked = watch.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                    "'Lock' AND wait_event = 'advisory' AND pid <> pg_backend_pid()")).scalar()
                if blocked or not worker.is_alive():
                    break
                time.sleep(0.05)
            assert blocked, "the request never reached the audit lock"
            assert watch.execute(text("SELECT pg_terminate_backend(:p)"), {"p": blocked}).scalar()
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(727274)"))
        worker.join(60)
        status, _, page, _ = result["r"]
        assert status == 500, page[:300]
        assert "Traceback" not in page and "psycopg" not in page and "<form" in page  # the site's error page
        kept = watch.execute(text("SELECT count(*) FROM msg_threads WHERE subject = :s"), {"s": subject}).scalar()
        assert kept == 0  # the thread and message inserted before the kill went with the transaction
    holder.dispose()
    status, _, html, _ = a.request("GET", "/messages", cookies)  # the same worker: a fresh connection
    assert status == 200 and subject not in html


def test_smtp_refusing_a_request_that_sends_mail_does_not_fail(cluster):
    a, _ = cluster.nodes
    email = cluster.make_patient_user()
    _, _, html, jar = a.request("GET", "/password/forgot")
    status, _, page, _ = a.request("POST", "/password/forgot", jar, {"csrf_token": _token(html), "email": email})
    assert status in (200, 302), page[:500]  # nothing listens on MAIL_PORT: the mail is retried, not the request
    assert a.request("GET", "/healthz")[0] == 200


def test_redis_stopped_sign_in_still_works_limits_fall_back_and_readyz_reports_it(cluster):
    a, b = cluster.nodes
    email = cluster.make_patient_user()
    cluster.redis.stop()
    try:
        status, _, body, _ = a.request("GET", "/readyz")
        assert status == 503 and '"redis": "unreachable"' in body and '"database": "ok"' in body
        _, _, html, jar = b.request("GET", "/signin")
        status, headers, _, _ = b.request("POST", "/signin", jar, {"csrf_token": _token(html), "email": email,
                                                                   "password": PASSWORD})
        assert status == 302 and headers["Location"].endswith("/signin/verify"), status
        _, _, html, jar = b.request("GET", "/signin")
        status, _, _, _ = b.request("POST", "/signin", jar, {"csrf_token": _token(html), "email": email,
                                                             "password": "wrong password 123"})
        assert status in (200, 401)  # a failure is still counted (in process) and answered, not a 500
        [line] = [x for x in b.log_text().splitlines() if "rate-limit storage unavailable" in x][:1]
        logged = json.loads(line)  # LOG_FORMAT=json: one object per line, with the request's id
        assert logged["level"] == "WARNING" and re.fullmatch(r"[0-9a-f]{32}", logged["request_id"])
    finally:
        cluster.redis.start()
    deadline = time.monotonic() + 10
    while a.request("GET", "/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert a.request("GET", "/readyz")[0] == 200

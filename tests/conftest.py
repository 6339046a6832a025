"""Shared fixtures: the app on SQLite (default) or PostgreSQL (TEST_DATABASE_URL), each test inside a
rolled-back transaction, a real SMTP server (aiosmtpd), and helpers to sign in as any role.

Services that may be missing on a developer machine (PostgreSQL, Redis, Chromium) skip with a printed
reason; with PORTAL_TEST_REQUIRE_ALL=1 (CI) a missing service fails the run instead.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from flask_sqlalchemy.session import Session as FlaskSQLAlchemySession

os.environ.setdefault("PORTAL_ENV", "testing")

from config import TestingConfig  # noqa: E402

REQUIRE_ALL = os.environ.get("PORTAL_TEST_REQUIRE_ALL") == "1"
PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "quiet harbour lantern 1987"


def unavailable(what: str, why: str):
    """Skip with a reason, or fail when CI demands every real component."""
    msg = f"{what} unavailable: {why}"
    if REQUIRE_ALL:
        pytest.fail(msg + " (PORTAL_TEST_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(msg)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# --- databases -----------------------------------------------------------------------------

def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def create_pg_database(name: str) -> str:
    eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


@pytest.fixture(scope="session")
def pg_admin_url():
    why = _pg_available()
    if why:
        unavailable("PostgreSQL", why)
    return PG_ADMIN_URL


def _database_url(tmp_root: Path) -> tuple[str, callable]:
    base = os.environ.get("TEST_DATABASE_URL")
    if base:
        url = make_url(base)
        name = f"{url.database}_{worker_id()}"
        created = create_pg_database(name)
        return created, lambda: drop_pg_database(name)
    return f"sqlite:///{tmp_root / 'test.sqlite3'}", lambda: None


# --- SMTP ----------------------------------------------------------------------------------

class Mailbox:
    """Messages received by the real SMTP server during a test."""

    def __init__(self):
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def clear(self):
        with self.lock:
            self.messages.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)

    def wait_for_to(self, address: str, timeout: float = 5.0):
        """The newest message to `address` (waits for it); None if none arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if m["To"] == address]
            if found:
                return found[-1]
            time.sleep(0.02)
        return None

    def settle(self, wait: float = 0.3) -> list:
        time.sleep(wait)
        with self.lock:
            return list(self.messages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    yield box
    controller.stop()


# --- app and per-test transaction ---------------------------------------------------------

@pytest.fixture(scope="session")
def app(smtp_server, tmp_path_factory):
    from flask_migrate import upgrade

    from portal import create_app

    root = tmp_path_factory.mktemp("portal")
    url, cleanup = _database_url(root)
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=url,
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.port,
        MAIL_FILE_DIR=str(root / "mail"),
    )
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))

    # Tests keep an app context open (for db.session), and Flask reuses it for test-client requests.
    # Make each request behave as in production, where it has its own app context and its own
    # transaction: the test's own set-up is committed first (so the request sees it), `g` starts
    # empty, rows are read afresh, and whatever the request did not commit is rolled back when it
    # ends. So "the view forgot to commit" and "the frame rolled back" are visible to the test.
    from flask import g, request_started, request_tearing_down

    from flask import request as _request

    def _begin_request(sender, **extra):
        from portal.extensions import db as _db

        _db.session.commit()
        g.__dict__.clear()
        _db.session.expire_all()
        _request.environ["portal.tests.dispatched"] = True

    def _end_request(sender, **extra):
        # Only requests the app dispatched (test-client calls), not a test's own test_request_context()
        # around a service call, where the test is the caller and decides.
        if _request.environ.get("portal.tests.dispatched"):
            from portal.extensions import db as _db

            _db.session.rollback()

    request_started.connect(_begin_request, app, weak=False)
    request_tearing_down.connect(_end_request, app, weak=False)
    yield app
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()
    cleanup()


class _ConnectionBoundSession(FlaskSQLAlchemySession):
    """Flask-SQLAlchemy's Session.get_bind() returns the engine even when a connection is given;
    tests need every statement on the one connection whose outer transaction is rolled back."""

    def get_bind(self, *args, **kwargs):
        return self.bind


@pytest.fixture()
def db(app):
    """Each test runs in a transaction that is rolled back; routes' commits become savepoints."""
    from portal.extensions import db as _db

    with app.app_context():
        connection = _db.engine.connect()
        transaction = connection.begin()
        original = _db.session
        _db.session = _db._make_scoped_session(
            {"bind": connection, "join_transaction_mode": "create_savepoint", "class_": _ConnectionBoundSession,
             "expire_on_commit": False}
        )
        app.extensions["portal_throttle"].reset_all()
        from portal.extensions import limiter

        limiter.reset()
        from portal.core.page_cache import store as page_cache

        page_cache.clear()  # a test may change the configuration these pages are rendered from
        try:
            yield _db
        finally:
            _db.session.remove()
            _db.session = original
            transaction.rollback()
            connection.close()


@pytest.fixture()
def mailbox(smtp_server):
    smtp_server.clear()
    yield smtp_server
    smtp_server.settle(0.05)
    smtp_server.clear()


@pytest.fixture()
def client(app, db):
    return app.test_client()


# --- factories -----------------------------------------------------------------------------

@pytest.fixture()
def make_patient(db):
    from tests.factories import PatientFactory

    def make(**kw):
        return PatientFactory.create(**kw)

    return make


@pytest.fixture()
def make_user(db, make_patient):
    """make_user(role="patient", mfa=True, password=PASSWORD, patient=None, **fields) -> User.
    The TOTP secret is on user._totp_secret for tests."""
    from tests.factories import create_user

    def make(role="patient", **kw):
        return create_user(role=role, make_patient=make_patient, **kw)

    return make


def sign_in_session(client, user, *, mfa_done: bool = True):
    """Put a live server-side session for `user` in the client's cookie (bypasses the sign-in form,
    which has its own tests)."""
    from portal.accounts.models import UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    token = secrets.token_urlsafe(32)
    now = utcnow()
    record = UserSession(user_id=user.id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                         mfa_verified_at=now if mfa_done else None, reauth_at=now if mfa_done else None,
                         ip="127.0.0.1", user_agent="pytest")
    db.session.add(record)
    db.session.commit()
    with client.session_transaction() as sess:
        sess.clear()
        sess["sid"] = token
    return record


@pytest.fixture()
def login_as(app, db, make_user):
    """login_as("support") -> (client, user): a fresh client signed in with that role."""

    def login(role_or_user="patient", **kw):
        user = make_user(role_or_user, **kw) if isinstance(role_or_user, str) else role_or_user
        c = app.test_client()
        sign_in_session(c, user)
        return c, user

    return login


@pytest.fixture()
def csrf_token(app):
    """Read the CSRF token a page rendered for this client."""
    import re

    def find(html):
        return (re.search(r'name="csrf-token" content="([^"]+)"', html)  # signed-in pages' meta tag
                or re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html))  # a form's field

    def get(client, path="/signin"):
        m = find(client.get(path).get_data(as_text=True))
        if not m and path != "/signin":  # anonymous pages without a form carry no token (no session): G3
            m = find(client.get("/signin").get_data(as_text=True))
        assert m, f"no csrf token on {path}"
        return m.group(1)

    return get


@pytest.fixture()
def committing_app(tmp_path, request):
    """An app of its own whose commits are real (for races and multi-connection checks): a fresh
    PostgreSQL database when TEST_DATABASE_URL is set, else a temporary SQLite file; migrated to head.
    See tests/concurrency.py for `race()` and `live_http()`."""
    import uuid

    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db as _db

    name = None
    if os.environ.get("TEST_DATABASE_URL"):
        request.getfixturevalue("pg_admin_url")
        name = f"portal_race_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    else:
        url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url,
                     SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 30, "max_overflow": 10, "pool_pre_ping": True}
                     if name else {"connect_args": {"timeout": 30}})
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    yield app
    with app.app_context():
        _db.engine.dispose()
    if name:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def redis_url():
    try:
        import redis

        r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        r.ping()
        r.flushdb()
    except Exception as exc:
        unavailable("Redis", f"{type(exc).__name__}: {exc}")
    return REDIS_URL


def pytest_report_header(config):
    db = os.environ.get("TEST_DATABASE_URL") or "SQLite (temporary file)"
    return [f"portal test database: {db}", f"PORTAL_TEST_REQUIRE_ALL={int(REQUIRE_ALL)}"]


__all__ = ["PASSWORD", "sign_in_session", "unavailable", "timedelta", "tempfile"]

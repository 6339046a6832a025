"""Failed sign-in and code attempts: a window per email address and a temporary lock, in the database.

Keyed by a hash of the normalised email, so an unknown address is counted and locked exactly like a
real account (a lock reveals nothing), and kept in PostgreSQL/SQLite so it holds whatever happens to
Redis. The per-IP limit lives in the rate-limit storage (core.throttle)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import current_app
from sqlalchemy import case, delete, select, update

from portal.accounts.models import LoginFailure, User
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import Throttled
from portal.extensions import db, throttle


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()[:254]


def account_key(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def limits():
    cfg = current_app.config
    return cfg["LOGIN_FAILURES_PER_WINDOW"], cfg["LOGIN_FAILURE_WINDOW_SECONDS"], cfg["IP_FAILURES_PER_WINDOW"]


def check_ip(scope: str, ip: str | None) -> None:
    """Raise Throttled when this IP has used up its window for `scope`."""
    _, window, per_ip = limits()
    wait = throttle.retry_after(scope, ip or "-", per_ip, window)
    if wait:
        raise Throttled(wait)


def count_ip(scope: str, ip: str | None) -> None:
    _, window, per_ip = limits()
    throttle.record_failure(scope, ip or "-", per_ip, window)


def check(key: str, ip: str | None) -> None:
    """Raise Throttled when this address is locked or this IP has failed too often (the longer wait)."""
    _, window, per_ip = limits()
    wait = throttle.retry_after("ip-fail", ip or "-", per_ip, window)
    row = db.session.execute(select(LoginFailure).where(LoginFailure.account_key == key)
                             .execution_options(populate_existing=True)).scalars().first()
    now = utcnow()
    if row is not None and row.locked_until is not None and row.locked_until > now:
        wait = max(wait, int((row.locked_until - now).total_seconds()) + 1)
    if wait:
        raise Throttled(wait)


def _insert_for(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _count(key: str) -> int:
    """Atomically add one failure to the address's window (a fresh window once the old one has passed);
    returns the count in the current window, and locks the address when it reaches the limit."""
    per_acct, window, _ = limits()
    now = utcnow()
    expired = LoginFailure.window_started_at < now - timedelta(seconds=window)
    insert = _insert_for(db.session.get_bind().dialect.name)
    stmt = insert(LoginFailure).values(account_key=key, failures=1, window_started_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginFailure.account_key],
        set_={
            "failures": case((expired, 1), else_=LoginFailure.failures + 1),
            "window_started_at": case((expired, now), else_=LoginFailure.window_started_at),
        },
    ).returning(LoginFailure.failures)
    failures = db.session.execute(stmt).scalar_one()
    if failures >= per_acct:
        db.session.execute(update(LoginFailure).where(LoginFailure.account_key == key)
                           .values(locked_until=now + timedelta(seconds=current_app.config["ACCOUNT_LOCK_SECONDS"])))
    return failures


def record_failure(key: str, ip: str | None, user: User | None, tag: EventTag, reason: str) -> None:
    count_ip("ip-fail", ip)
    failures = _count(key)
    per_acct = limits()[0]
    if user is not None and failures == per_acct:
        record_event(EventTag.SIGNIN_LOCKED, actor=user, outcome="failure", detail={"failures": failures})
    record_event(tag, actor=user, outcome="failure", detail={"reason": reason})
    db.session.flush()


def clear(key: str) -> None:
    db.session.execute(delete(LoginFailure).where(LoginFailure.account_key == key))


def lock_status(users) -> dict[int, object]:
    """{user id: locked_until} for the given users that are locked now (one query)."""
    by_key = {account_key(u.email): u.id for u in users}
    if not by_key:
        return {}
    rows = db.session.execute(select(LoginFailure).where(LoginFailure.account_key.in_(list(by_key)),
                                                         LoginFailure.locked_until > utcnow())).scalars()
    return {by_key[r.account_key]: r.locked_until for r in rows}


def failure_count(user: User) -> int:
    row = db.session.get(LoginFailure, account_key(user.email), populate_existing=True)
    return row.failures if row else 0

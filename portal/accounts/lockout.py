"""Failed sign-in and code attempts: a window per email address and a temporary lock, in the database.

Keyed by a hash of the normalised email, so an unknown address is counted and locked exactly like a
real account (a lock reveals nothing), and kept in PostgreSQL/SQLite so it holds whatever happens to
Redis. The per-IP limit lives in the rate-limit storage (core.throttle)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import case, delete, or_, select, update

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


class CapReached(Throttled):
    """The address (or remembered device) reached the cap of consecutive failures: it stays locked
    until an emailed password reset or a support unlock (NIST SP 800-63B 5.2.2)."""

    def __init__(self):
        super().__init__(retry_after=0)


def cap() -> int:
    return min(int(current_app.config.get("LOGIN_FAILURE_CAP", 100)), 100)


def device_key(email: str, device_id: str) -> str:
    """The counter of a remembered device: its own failures, apart from strangers' (OWASP device cookies)."""
    return hashlib.sha256(f"{normalise_email(email)}|device|{device_id}".encode()).hexdigest()


def lock_seconds(locks: int) -> int:
    """How long the n-th lock in a row lasts: doubling from ACCOUNT_LOCK_SECONDS, at most a day."""
    base = current_app.config["ACCOUNT_LOCK_SECONDS"]
    return min(base * 2 ** max(0, locks - 1), max(base, 24 * 3600))


def _row(key: str) -> LoginFailure | None:
    return db.session.execute(select(LoginFailure).where(LoginFailure.account_key == key)
                              .execution_options(populate_existing=True)).scalars().first()


def check(key: str, ip: str | None) -> None:
    """Raise Throttled when this address is locked or this IP has failed too often (the longer wait),
    CapReached when the address has reached the cap of consecutive failures."""
    _, window, per_ip = limits()
    wait = throttle.retry_after("ip-fail", ip or "-", per_ip, window)
    row = _row(key)
    now = utcnow()
    if row is not None and row.capped_at is not None:
        raise CapReached()
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


@dataclass(frozen=True)
class Failure:
    """What one more failure did: the count in this window, the consecutive count, and what comes next."""

    failures: int
    consecutive: int
    locked: bool
    capped: bool
    tries_left: int  # before the next lock (0 when this failure locked)
    next_lock_seconds: int  # how long that next lock lasts


def _count(key: str, email_key: str | None) -> Failure:
    """Atomically add one failure to the address's window (a fresh window once the old one has passed)
    and to its consecutive count; lock it when the window is full (each lock longer than the last),
    and hold it at the cap."""
    per_acct, window, _ = limits()
    now = utcnow()
    expired = LoginFailure.window_started_at < now - timedelta(seconds=window)
    insert = _insert_for(db.session.get_bind().dialect.name)
    stmt = insert(LoginFailure).values(account_key=key, email_key=email_key, failures=1, window_started_at=now,
                                        consecutive=1, locks=0)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginFailure.account_key],
        set_={
            "failures": case((expired, 1), else_=LoginFailure.failures + 1),
            "window_started_at": case((expired, now), else_=LoginFailure.window_started_at),
            "consecutive": LoginFailure.consecutive + 1,
        },
    ).returning(LoginFailure.failures, LoginFailure.consecutive, LoginFailure.locks)
    failures, consecutive, locks = db.session.execute(stmt).one()
    capped = consecutive >= cap()
    locked = capped or failures >= per_acct
    if capped:
        db.session.execute(update(LoginFailure).where(LoginFailure.account_key == key, LoginFailure.capped_at.is_(None))
                           .values(capped_at=now, locked_until=None))
    elif locked:
        locks += 1
        db.session.execute(update(LoginFailure).where(LoginFailure.account_key == key)
                           .values(locks=locks, locked_until=now + timedelta(seconds=lock_seconds(locks))))
    left = 0 if locked else min(per_acct - failures, cap() - consecutive)
    return Failure(failures, consecutive, locked, capped, left, lock_seconds(locks + (0 if locked else 1)))


def record_failure(key: str, ip: str | None, user: User | None, tag: EventTag, reason: str,
                   email_key: str | None = None) -> Failure:
    """Count a failure under `key` (the address's, or a remembered device's with its address's
    `email_key`, so an unlock or a reset clears both)."""
    count_ip("ip-fail", ip)
    result = _count(key, email_key)
    if user is not None and result.locked:
        record_event(EventTag.SIGNIN_LOCKED, actor=user, outcome="failure",
                     detail={"failures": result.consecutive, "capped": result.capped})
    record_event(tag, actor=user, outcome="failure", detail={"reason": reason})
    db.session.flush()
    return result


def clear(key: str) -> None:
    db.session.execute(delete(LoginFailure).where(LoginFailure.account_key == key))


def clear_all(email: str) -> None:
    """A support unlock or an emailed reset: the address's counter and every remembered device's."""
    key = account_key(email)
    db.session.execute(delete(LoginFailure).where(or_(LoginFailure.account_key == key,
                                                      LoginFailure.email_key == key)))


def lock_status(users) -> dict[int, object]:
    """{user id: locked_until (or, at the cap, when it was reached)} for the given users locked now
    (one query). `needs_reset` says which of them wait for a reset or a support unlock."""
    by_key = {account_key(u.email): u.id for u in users}
    if not by_key:
        return {}
    rows = db.session.execute(select(LoginFailure).where(
        LoginFailure.account_key.in_(list(by_key)),
        or_(LoginFailure.locked_until > utcnow(), LoginFailure.capped_at.is_not(None)))).scalars()
    return {by_key[r.account_key]: r.locked_until or r.capped_at for r in rows}


def needs_reset(users) -> set[int]:
    """Ids of the given users whose address reached the cap of consecutive failures."""
    by_key = {account_key(u.email): u.id for u in users}
    if not by_key:
        return set()
    rows = db.session.execute(select(LoginFailure.account_key).where(
        LoginFailure.account_key.in_(list(by_key)), LoginFailure.capped_at.is_not(None))).scalars()
    return {by_key[k] for k in rows}


def failure_count(user: User) -> int:
    row = db.session.get(LoginFailure, account_key(user.email), populate_existing=True)
    return row.failures if row else 0

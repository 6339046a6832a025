"""Throttles: per-IP and per-account failures, Redis storage, and the in-process fallback."""

import logging

from portal.core.throttle import Throttle


class _App:
    def __init__(self, uri):
        self.config = {"RATELIMIT_STORAGE_URI": uri}
        self.extensions = {}


def test_memory_throttle_counts_failures_and_reports_wait():
    t = Throttle(_App("memory://"))
    for _ in range(3):
        assert t.retry_after("s", "k", 3, 60) == 0
        t.record_failure("s", "k", 3, 60)
    wait = t.retry_after("s", "k", 3, 60)
    assert 1 <= wait <= 60
    t.clear("s", "k", 3, 60)
    assert t.retry_after("s", "k", 3, 60) == 0


def test_redis_throttle_is_shared_between_instances(redis_url):
    a, b = Throttle(_App(redis_url)), Throttle(_App(redis_url))
    a.reset_all()
    for _ in range(2):
        a.record_failure("s", "shared", 2, 60)
    assert b.retry_after("s", "shared", 2, 60) > 0
    a.reset_all()


def test_redis_down_falls_back_to_process_limits_and_logs(caplog):
    t = Throttle(_App("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="portal.throttle"):
        for _ in range(2):
            t.record_failure("s", "k", 2, 60)
        assert t.retry_after("s", "k", 2, 60) > 0
    assert any("in-process" in r.getMessage() for r in caplog.records)


def test_sign_in_still_works_and_locks_with_redis_down(app, db, make_user, monkeypatch):
    """SECURITY.md §40: the per-account counter and lock live in the database."""
    from portal.extensions import throttle
    from tests.factories import DEFAULT_PASSWORD
    from tests.helpers import post_form, sign_in

    broken = Throttle(_App("redis://127.0.0.1:1/0"))
    monkeypatch.setattr(throttle, "_primary", broken._primary)
    monkeypatch.setattr(throttle, "_is_memory", False)
    monkeypatch.setattr(throttle, "_primary_dead_until", 0.0)
    user = make_user("patient")
    client = app.test_client()
    r = sign_in(client, user.email, DEFAULT_PASSWORD, user._totp_secret)
    assert r.status_code == 302 and r.location.endswith("/home")
    other = app.test_client()
    statuses = [post_form(other, "/signin", {"email": user.email, "password": "wrong password again"}).status_code
                for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    from portal.accounts.lockout import lock_status

    assert user.id in lock_status([user])

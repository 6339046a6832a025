"""Failure throttles on Flask-Limiter's storage (Redis when REDIS_URL is set, memory otherwise).

Only failures are counted (a person who types correctly is never slowed down). If the shared
storage is unreachable we fall back to in-process limits and log it; the per-account counter and
lock live in the database (accounts.services) so they hold whatever happens to Redis.
"""

from __future__ import annotations

import logging
import math
import time

from flask import current_app
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("portal.throttle")
_RETRY_PRIMARY_AFTER = 30.0


class Throttle:
    def __init__(self, app=None):
        self._primary = None
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._primary_dead_until = 0.0
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        uri = app.config.get("RATELIMIT_STORAGE_URI", "memory://")
        self._primary = MovingWindowRateLimiter(storage_from_string(uri))
        self._is_memory = uri.startswith("memory")
        app.extensions["portal_throttle"] = self

    def _call(self, method: str, *args):
        if not self._is_memory and time.monotonic() >= self._primary_dead_until:
            try:
                return getattr(self._primary, method)(*args)
            except Exception as exc:  # redis.ConnectionError and friends
                self._primary_dead_until = time.monotonic() + _RETRY_PRIMARY_AFTER
                log.warning("rate-limit storage unavailable (%s); using in-process limits", type(exc).__name__)
        elif self._is_memory:
            return getattr(self._primary, method)(*args)
        return getattr(self._fallback, method)(*args)

    @staticmethod
    def _item(limit: int, window_seconds: int):
        return RateLimitItemPerSecond(limit, window_seconds)

    def retry_after(self, scope: str, key: str, limit: int, window_seconds: int) -> int:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        item = self._item(limit, window_seconds)
        if self._call("test", item, scope, key):
            return 0
        reset_at, _remaining = self._call("get_window_stats", item, scope, key)
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, scope: str, key: str, limit: int, window_seconds: int) -> None:
        self._call("hit", self._item(limit, window_seconds), scope, key)

    def reset_all(self) -> None:
        """Forget every counter (tests and `flask` maintenance only)."""
        for limiter in (self._primary, self._fallback):
            try:
                limiter.storage.reset()
            except Exception:
                log.warning("could not reset rate-limit storage")

    def clear(self, scope: str, key: str, limit: int, window_seconds: int) -> None:
        self._call("clear", self._item(limit, window_seconds), scope, key)


def throttle() -> Throttle:
    return current_app.extensions["portal_throttle"]

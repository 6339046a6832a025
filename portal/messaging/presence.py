""""Someone else is viewing this conversation": a short-lived mark per (thread, staff member), kept in
Redis when REDIS_URL is set (shared by every app node) and in this process otherwise. Advisory only:
the claim and the reply check are what prevent double answers."""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app

log = logging.getLogger("portal.messaging")
WINDOW = 90  # seconds a view counts as "now"
_local: dict[int, dict[int, tuple[str, float]]] = {}
_lock = threading.Lock()


def _redis():
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    client = current_app.extensions.get("messaging_redis")
    if client is None:
        import redis

        client = current_app.extensions["messaging_redis"] = redis.Redis.from_url(
            url, socket_connect_timeout=0.3, socket_timeout=0.3)
    return client


def touch(thread_id: int, user_id: int, name: str) -> list[str]:
    """Record that `user_id` is looking at the thread now; return the names of the others who are."""
    now = time.time()
    try:
        r = _redis()
        if r is not None:
            key = f"portal:msg:presence:{thread_id}"
            pipe = r.pipeline()
            pipe.hset(key, str(user_id), f"{now:.0f}|{name[:80]}")
            pipe.expire(key, WINDOW * 2)
            pipe.hgetall(key)
            seen = pipe.execute()[-1]
            return sorted({v.decode().split("|", 1)[1] for k, v in seen.items()
                           if int(k) != user_id and now - float(v.decode().split("|", 1)[0]) < WINDOW})
    except Exception:  # noqa: BLE001 - presence is a hint; Redis being down must not break the page
        log.warning("presence: Redis unavailable, using this process only")
    with _lock:
        marks = _local.setdefault(thread_id, {})
        marks[user_id] = (name, now)
        return sorted({n for uid, (n, at) in marks.items() if uid != user_id and now - at < WINDOW})

"""Signed one-click links in reminders: confirm or cancel an appointment without signing in.

A link names an appointment (by its opaque id), an action (confirm, cancel, or "any" for the
reminder's own page) and a random id; it is signed with the app's secret (itsdangerous), expires
after SCHEDULING_LINK_MAX_DAYS and in any case when the visit starts, works only while the
appointment is booked, and is used once: the random id goes into a table with a unique column, so
even two clicks at the same moment act once. Pages reached by a link show no health information."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from portal.core.db import utcnow
from portal.scheduling.settings import setting

SALT = "appointment-link-v1"
ACTIONS = ("confirm", "cancel", "any")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def make(appointment, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(action)
    expires = min(appointment.starts_at, utcnow() + timedelta(days=setting("SCHEDULING_LINK_MAX_DAYS")))
    return _serializer().dumps({"a": appointment.public_id, "x": action, "j": secrets.token_hex(16),
                                "e": int(expires.timestamp())})


def read(token: str | None) -> dict | None:
    """The link's payload if the signature holds and it has not expired; else None."""
    if not token or len(token) > 400:
        return None
    try:
        data = _serializer().loads(token, max_age=setting("SCHEDULING_LINK_MAX_DAYS") * 86400)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or data.get("x") not in ACTIONS or not isinstance(data.get("a"), str) \
            or not isinstance(data.get("j"), str) or not isinstance(data.get("e"), int):
        return None
    if utcnow().timestamp() >= data["e"]:
        return None
    return data

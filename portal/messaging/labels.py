"""Plain-language labels for templates (statuses, topics, ages)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.messaging import sanitize
from portal.messaging.forms import TOPIC_LABELS

STATUS = {"open": _l("Open"), "waiting": _l("Waiting on the patient"), "closed": _l("Closed")}
PATIENT_STATUS = {"open": _l("Open"), "waiting": _l("Waiting for your reply"), "closed": _l("Closed")}
STATUS_KIND = {"open": "info", "waiting": "warning", "closed": "neutral"}
SHORT_TOPIC = {"medical": _l("Medical"), "refill": _l("Refill"), "billing": _l("Billing"),
               "appointment": _l("Scheduling"), "technical": _l("Portal help"), "records": _l("Records"),
               "other": _l("Other")}


def age(since: datetime | None, now: datetime | None = None) -> str:
    """'35 min', '5 h', '3 d' — how long something has waited."""
    if since is None:
        return ""
    from portal.core.db import utcnow

    minutes = max(0, int(((now or utcnow()) - since).total_seconds() // 60))
    if minutes < 60:
        return _("%(n)s min", n=minutes)
    if minutes < 48 * 60:
        return _("%(n)s h", n=minutes // 60)
    return _("%(n)s d", n=minutes // (60 * 24))


def hours(value: float | None) -> str:
    if value is None:
        return "–"
    return _("%(n)s h", n=value)


def template_globals() -> dict:
    return {"msg_status": lambda s: STATUS.get(s, s), "msg_patient_status": lambda s: PATIENT_STATUS.get(s, s),
            "msg_status_kind": lambda s: STATUS_KIND.get(s, "neutral"),
            "msg_topic": lambda t: TOPIC_LABELS.get(t, t), "msg_topic_short": lambda t: SHORT_TOPIC.get(t, t),
            "msg_age": age, "msg_hours": hours, "msg_count": _shown_count}


def _shown_count(n) -> str:
    from portal.messaging.services import shown_count

    return shown_count(n)


def install(app) -> None:
    app.jinja_env.globals.update(template_globals())
    app.jinja_env.filters["msg_body"] = sanitize.render

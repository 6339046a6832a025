"""The domain's settings: read from the app config, else the environment, else these defaults, so a
deployment sets them like every other setting (e.g. SCHEDULING_REMINDER_OFFSETS=48h,2h)."""

from __future__ import annotations

import os
from pathlib import Path

from flask import current_app

DEFAULTS = {
    "SCHEDULING_REMINDER_OFFSETS": "72h,24h",  # before the visit; the beat task sends from DB state
    "SCHEDULING_HOLD_MINUTES": 10,  # a chosen time is held while the patient reviews it
    "SCHEDULING_LINK_MAX_DAYS": 14,  # one-click links never live longer (and die at the visit)
    "WAITLIST_OFFER_MINUTES": 120,  # how long an offer of a freed time stays open
    "WAITLIST_OFFER_BATCH": 3,  # how many waitlisted patients are offered one freed time at once
    "VIDEO_VISIT_URL_TEMPLATE": "https://video.clinic.example/join/{room}",
    "VIDEO_JOIN_MINUTES_BEFORE": 15,
    "SCHEDULING_UPLOAD_DIR": "",  # default: <instance>/uploads/insurance (outside the web root)
    "SCHEDULING_UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
}


def setting(name: str):
    if name in current_app.config:
        return current_app.config[name]
    raw = os.environ.get(name)
    default = DEFAULTS[name]
    if raw is None:
        return default
    return int(raw) if isinstance(default, int) else raw


def upload_dir() -> Path:
    configured = setting("SCHEDULING_UPLOAD_DIR")
    if configured:
        return Path(configured)
    from config import INSTANCE_DIR

    return INSTANCE_DIR / "uploads" / "insurance"

"""Plain-language labels for the domain's codes (statuses, kinds), for templates."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

STATUS = {"booked": _l("Booked"), "arrived": _l("Arrived"), "completed": _l("Completed"),
          "no_show": _l("Missed"), "cancelled": _l("Cancelled"), "rescheduled": _l("Moved")}
STATUS_KIND = {"booked": "info", "arrived": "success", "completed": "neutral", "no_show": "warning",
               "cancelled": "neutral", "rescheduled": "neutral"}
MODALITY = {"in_person": _l("In person"), "video": _l("Video visit")}
BOOKING = {"any": _l("Any patient"), "established": _l("Established patients"), "request": _l("Request only")}
REQUEST_TIMES = {"mornings": _l("Mornings"), "afternoons": _l("Afternoons"), "evenings": _l("Early evenings"),
                 "weekdays": _l("Weekdays"), "any": _l("Any time")}
EXCEPTION = {"holiday": _l("Holiday"), "leave": _l("Leave"), "training": _l("Training"), "other": _l("Other")}
WEEKDAYS = (_l("Monday"), _l("Tuesday"), _l("Wednesday"), _l("Thursday"), _l("Friday"), _l("Saturday"),
            _l("Sunday"))


def template_globals() -> dict:
    return {"sched_status": lambda s: STATUS.get(s, s), "sched_status_kind": lambda s: STATUS_KIND.get(s, "neutral"),
            "sched_modality": lambda m: MODALITY.get(m, m), "sched_booking": lambda b: BOOKING.get(b, b),
            "sched_times": lambda codes: ", ".join(str(REQUEST_TIMES.get(c, c)) for c in (codes or "").split(",") if c),
            "sched_exception": lambda k: EXCEPTION.get(k, k), "sched_weekday": lambda d: WEEKDAYS[d]}

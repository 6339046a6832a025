"""Template filters that show an instant in a location's time zone (default the clinic's), in the
reader's language, with the zone's abbreviation when it is not the clinic's own."""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_datetime, format_time
from flask_babel import get_locale

from portal.core.i18n import clinic_tz


def _tz(where):
    if where is None:
        return clinic_tz()
    return getattr(where, "tz", where)


def _locale() -> str:
    return str(get_locale() or "en")


def sched_time(value: datetime | None, where=None) -> str:
    if value is None:
        return ""
    tz = _tz(where)
    out = format_time(value.astimezone(tz), "short", locale=_locale())
    if tz.key != clinic_tz().key:
        out += " " + format_datetime(value.astimezone(tz), "zzz", tzinfo=tz, locale=_locale())
    return out


def sched_day(value: datetime | date | None, where=None, fmt: str = "full") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(_tz(where)).date()
    return format_date(value, fmt, locale=_locale())


def sched_dt(value: datetime | None, where=None) -> str:
    if value is None:
        return ""
    return f"{sched_day(value, where)}, {sched_time(value, where)}"


def sched_answer(question, value) -> str:
    from portal.scheduling.questionnaires import answer_label

    return answer_label(question, value)


def install_filters(bp) -> None:
    bp.add_app_template_filter(sched_answer, "sched_answer")
    bp.add_app_template_filter(sched_time, "sched_time")
    bp.add_app_template_filter(sched_day, "sched_day")
    bp.add_app_template_filter(sched_dt, "sched_dt")

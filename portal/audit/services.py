"""Audit report queries (admin) and the patient's view of staff access to their record."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.accounts.models import User
from portal.core.access import patient_for, require_function
from portal.core.audit import AuditEvent, EventTag, category_label, known_tags, record_event, tag_label
from portal.core.db import capped_count
from portal.core.roles import STAFF_ROLE_VALUES
from portal.core.i18n import clinic_tz
from portal.extensions import db
from portal.patients.models import Patient

PAGE_SIZE = 50
# The report counts at most this many matching events (then "more than 10,000"): every page view writes an
# event, so an unfiltered count would read the whole table on every visit (PERFORMANCE.md G8). Dates and
# the other filters narrow it; the CSV export has every row.
COUNT_CAP = 10_000
EXPORT_LIMIT = 100_000
MAX_PAGE = 1_000_000

OUTCOME_LABELS = {
    "success": _l("Succeeded"),
    "failure": _l("Failed"),
    "denied": _l("Refused"),
    "unknown_account": _l("No such account"),
}


def outcome_label(outcome: str | None) -> str:
    label = OUTCOME_LABELS.get(outcome or "")
    return str(label) if label is not None else (outcome or "")


def parse_page(raw) -> int:
    """?page=: a small positive whole number, else 1 (never an overflow: `1e20`, `-5`, 10**30)."""
    raw = str(raw or "1").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 7 else 1


@dataclass
class AuditFilter:
    start: date | None = None
    end: date | None = None
    actor_email: str | None = None
    patient_mrn: str | None = None
    action: str | None = None
    outcome: str | None = None


def _bounds(f: AuditFilter):
    tz = clinic_tz()
    lo = datetime.combine(f.start, time.min, tz) if f.start else None
    hi = datetime.combine(min(f.end, date(9998, 12, 31)) + timedelta(days=1), time.min, tz) if f.end else None
    return lo, hi


def _query(f: AuditFilter) -> Select:
    actor = aliased(User)
    stmt = (select(AuditEvent, actor.email, Patient.mrn, actor.display_name, Patient.given_name,
                   Patient.family_name)
            .outerjoin(actor, actor.id == AuditEvent.actor_id)
            .outerjoin(Patient, Patient.id == AuditEvent.patient_id))
    lo, hi = _bounds(f)
    if lo:
        stmt = stmt.where(AuditEvent.occurred_at >= lo)
    if hi:
        stmt = stmt.where(AuditEvent.occurred_at < hi)
    if f.actor_email:
        stmt = stmt.where(actor.email == f.actor_email.strip().lower())
    if f.patient_mrn:
        stmt = stmt.where(Patient.mrn == f.patient_mrn.strip())
    if f.action:
        stmt = stmt.where(AuditEvent.action == f.action)
    if f.outcome:
        stmt = stmt.where(AuditEvent.outcome == f.outcome)
    return stmt


def report(actor, f: AuditFilter, page: int = 1):
    require_function(actor, "audit_report")
    stmt = _query(f)
    total = db.session.execute(select(capped_count(
        stmt.with_only_columns(AuditEvent.id).order_by(AuditEvent.id.desc()), COUNT_CAP))).scalar_one()
    pages = max(1, -(-min(total, COUNT_CAP) // PAGE_SIZE))
    page = min(max(1, int(page)), pages)  # clamped: a page past the end shows the last one
    rows = db.session.execute(stmt.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE)
                              .offset((page - 1) * PAGE_SIZE)).all()
    record_event(EventTag.AUDIT_REPORT_VIEW, actor=actor, detail={"page": page, "rows": len(rows)})
    return rows, total, pages, page


CSV_COLUMNS = ["occurred_at", "actor_name", "actor_email", "actor_role", "action", "event", "category",
               "patient_name", "patient_mrn", "object_type", "object_id", "outcome", "ip", "user_agent",
               "request_id"]

_FORMULA_STARTS = {"=", "+", "-", "@", "|", "%", "\u2212"}  # \u2212: the minus sign


def _csv_safe(value) -> str:
    """A cell a spreadsheet will not run: anything starting with a formula character, a look-alike of
    one (full-width ＝ ＋ － ＠, small ﹦ ﹢ ﹣ ﹫: NFKC folds them), whitespace of any kind (space, NBSP, tab,
    LF, CR, VT, FF: spreadsheets trim it and then see the formula) or a control/format character is
    prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    if not text:
        return text
    first = text[0]
    folded = unicodedata.normalize("NFKC", first)[:1]
    if (folded in _FORMULA_STARTS or first in _FORMULA_STARTS or first.isspace() or folded.isspace()
            or unicodedata.category(first) in ("Cc", "Cf", "Zs", "Zl", "Zp")):
        return "'" + text
    return text


def _name(given, family) -> str:
    return " ".join(p for p in (given, family) if p)


def export_csv(actor, f: AuditFilter) -> str:
    require_function(actor, "audit_report")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    count = 0
    tz = clinic_tz()
    for ev, email, mrn, actor_name, given, family in db.session.execute(
            _query(f).order_by(AuditEvent.id).limit(EXPORT_LIMIT)):
        count += 1
        when = ev.occurred_at.astimezone(tz).isoformat(timespec="seconds")  # clinic time, with its offset
        writer.writerow([_csv_safe(v) for v in (when, actor_name, email, ev.actor_role, ev.action,
                                                tag_label(ev.action), ev.category, _name(given, family), mrn,
                                                ev.object_type, ev.object_id, ev.outcome, ev.ip, ev.user_agent,
                                                ev.request_id)])
    record_event(EventTag.AUDIT_EXPORT, actor=actor, detail={"rows": count})
    return buf.getvalue()


def action_choices() -> list[str]:
    return known_tags()


def outcome_choices() -> list[tuple[str, str]]:
    return [(k, outcome_label(k)) for k in OUTCOME_LABELS]


def access_label(action: str | None, category: str | None) -> str:
    """Plain words for a staff action on a patient's record, for the patient's "who viewed" list."""
    if action == EventTag.PATIENT_VIEW.value:
        return _("Viewed: %(what)s", what=category_label(category))
    return {
        EventTag.ACTIVATION_ISSUED.value: _("Issued an activation code"),
        EventTag.ACCOUNT_UNLOCKED.value: _("Unlocked your portal account"),
        EventTag.MFA_RESET.value: _("Reset your two-step verification"),
    }.get(action or "", _("Used your record"))


REPEAT_WINDOW = timedelta(minutes=5)


def staff_views_of_own_record(user, limit: int = 50):
    """Staff access to the signed-in patient's record: when, who (name and role), what. The same staff
    member doing the same thing again within REPEAT_WINDOW counts once (the newest time is shown)."""
    patient = patient_for(user)
    staff = aliased(User)
    rows = db.session.execute(
        select(AuditEvent.occurred_at, staff.display_name, AuditEvent.actor_role, AuditEvent.action,
               AuditEvent.category, AuditEvent.actor_id)
        .join(staff, staff.id == AuditEvent.actor_id)
        .where(AuditEvent.patient_id == patient.id, AuditEvent.actor_role.in_(STAFF_ROLE_VALUES),
               AuditEvent.outcome == "success")
        .order_by(AuditEvent.occurred_at.desc()).limit(limit * 10)
    ).all()
    kept, last_kept = [], {}
    for row in rows:
        key = (row.actor_id, row.action, row.category)
        newer = last_kept.get(key)
        if newer is not None and newer - row.occurred_at <= REPEAT_WINDOW:
            continue  # a repeat within minutes of the entry shown
        last_kept[key] = row.occurred_at
        kept.append((row.occurred_at, row.display_name, row.actor_role, row.action, row.category))
        if len(kept) >= limit:
            break
    record_event(EventTag.PATIENT_VIEW, actor=user, patient=patient, category="access_history")
    return kept

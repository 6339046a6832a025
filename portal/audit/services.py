"""Audit report queries (admin) and the patient's view of staff access to their record."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased

from portal.accounts.models import STAFF_ROLES, User
from portal.audit.models import AuditEvent
from portal.core.access import patient_for, require_function
from portal.core.audit import EventTag, record_event
from portal.core.i18n import clinic_tz
from portal.extensions import db
from portal.patients.models import Patient

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000


@dataclass
class AuditFilter:
    start: date | None = None
    end: date | None = None
    actor_email: str | None = None
    patient_mrn: str | None = None
    action: str | None = None


def _bounds(f: AuditFilter):
    tz = clinic_tz()
    lo = datetime.combine(f.start, time.min, tz) if f.start else None
    hi = datetime.combine(f.end + timedelta(days=1), time.min, tz) if f.end else None
    return lo, hi


def _query(f: AuditFilter) -> Select:
    actor = aliased(User)
    stmt = (select(AuditEvent, actor.email, Patient.mrn)
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
    return stmt


def report(actor, f: AuditFilter, page: int = 1):
    require_function(actor, "audit_report")
    stmt = _query(f)
    total = db.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    page = max(1, page)
    rows = db.session.execute(stmt.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE)
                              .offset((page - 1) * PAGE_SIZE)).all()
    record_event(EventTag.AUDIT_REPORT_VIEW, actor=actor, detail={"page": page, "rows": len(rows)})
    return rows, total, max(1, -(-total // PAGE_SIZE))


CSV_COLUMNS = ["occurred_at_utc", "actor_email", "actor_role", "action", "category", "patient_mrn",
               "object_type", "object_id", "outcome", "ip", "user_agent", "request_id"]


def _csv_safe(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text  # no formula injection


def export_csv(actor, f: AuditFilter) -> str:
    require_function(actor, "audit_report")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for ev, email, mrn in db.session.execute(_query(f).order_by(AuditEvent.id).limit(EXPORT_LIMIT)):
        count += 1
        writer.writerow([_csv_safe(v) for v in (ev.occurred_at.isoformat(), email, ev.actor_role, ev.action,
                                                ev.category, mrn, ev.object_type, ev.object_id, ev.outcome,
                                                ev.ip, ev.user_agent, ev.request_id)])
    record_event(EventTag.AUDIT_EXPORT, actor=actor, detail={"rows": count})
    return buf.getvalue()


def action_choices() -> list[str]:
    return [t.value for t in EventTag]


def staff_views_of_own_record(user, limit: int = 50):
    """Staff access to the signed-in patient's record: when, who (name and role), what."""
    patient = patient_for(user)
    staff = aliased(User)
    rows = db.session.execute(
        select(AuditEvent.occurred_at, staff.display_name, AuditEvent.actor_role, AuditEvent.action,
               AuditEvent.category)
        .join(staff, staff.id == AuditEvent.actor_id)
        .where(AuditEvent.patient_id == patient.id, AuditEvent.actor_role.in_(STAFF_ROLES),
               AuditEvent.outcome == "success")
        .order_by(AuditEvent.occurred_at.desc()).limit(limit)
    ).all()
    record_event(EventTag.PATIENT_VIEW, actor=user, patient=patient, category="access_history")
    return rows

"""Visit feedback: one rating (1-5) and an optional comment per visit, after it, and the staff report
with averages and distributions per provider and per location (the clinic's feedback loop). Staff
see no patient names on the report: what was said, when, with whom, where."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.core.access import owned_or_404, require_function
from portal.core.audit import record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.extensions import db
from portal.scheduling import rules
from portal.scheduling.events import SchedTag
from portal.scheduling.models import Appointment, Location, Provider, VisitFeedback


def feedback_target(actor, public_id: str) -> Appointment:
    appointment = owned_or_404(Appointment, public_id, actor)
    if appointment.status not in (rules.BOOKED, rules.ARRIVED, rules.COMPLETED) \
            or not rules.feedback_open(appointment.ends_at, utcnow()):
        raise DomainError(_("Feedback opens after the visit, for 30 days."))
    return appointment


def give(actor, public_id: str, rating: int, comment: str | None) -> VisitFeedback:
    appointment = feedback_target(actor, public_id)
    if rating not in range(1, 6):
        raise DomainError(_("Choose from 1 to 5 stars."), field="rating")
    row = VisitFeedback(patient_id=appointment.patient_id, appointment_id=appointment.id,
                        provider_id=appointment.provider_id, location_id=appointment.location_id, rating=rating,
                        comment=(comment or "").strip()[:1000] or None)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        raise DomainError(_("You have already given feedback on this visit. Thank you!"), field="rating") from None
    record_event(SchedTag.FEEDBACK_GIVEN, actor=actor, patient_id=appointment.patient_id, category="feedback",
                 object_type="appointment", object_id=appointment.public_id, detail={"rating": rating})
    return row


def _summary(rows) -> list[dict]:
    out = []
    for label, ratings in rows:
        n = len(ratings)
        dist = [sum(1 for r in ratings if r == s) for s in range(1, 6)]
        out.append({"label": label, "count": n, "average": round(sum(ratings) / n, 2) if n else None,
                    "distribution": dist, "max": max(dist) if dist else 0})
    return sorted(out, key=lambda s: (-(s["average"] or 0), s["label"]))


def report(actor, *, days: int = 90, provider_id: str | None = None, location_id: str | None = None) -> dict:
    require_function(actor, "feedback_view")
    days = days if days in (30, 90, 365) else 90
    since = utcnow() - timedelta(days=days)
    stmt = select(VisitFeedback).where(VisitFeedback.created_at >= since)
    provider = db.session.execute(select(Provider).where(Provider.public_id == (provider_id or "")[:32])).scalars().first()
    location = db.session.execute(select(Location).where(Location.public_id == (location_id or "")[:32])).scalars().first()
    if provider is not None:
        stmt = stmt.where(VisitFeedback.provider_id == provider.id)
    if location is not None:
        stmt = stmt.where(VisitFeedback.location_id == location.id)
    rows = db.session.execute(stmt.order_by(VisitFeedback.created_at.desc()).limit(5000)).scalars().all()
    by_provider, by_location = defaultdict(list), defaultdict(list)
    for r in rows:
        by_provider[r.provider.label].append(r.rating)
        by_location[r.location.name].append(r.rating)
    overall = _summary([(_("All visits"), [r.rating for r in rows])])[0]
    record_event(SchedTag.FEEDBACK_VIEW, actor=actor, category="feedback", detail={"rows": len(rows), "days": days})
    providers = db.session.execute(select(Provider).order_by(Provider.display_name)).scalars().all()
    locations = db.session.execute(select(Location).order_by(Location.name)).scalars().all()
    return {"overall": overall, "by_provider": _summary(by_provider.items()),
            "by_location": _summary(by_location.items()), "comments": [r for r in rows if r.comment][:50],
            "days": days, "provider": provider, "location": location, "providers": providers,
            "locations": locations, "total": db.session.execute(select(func.count()).select_from(VisitFeedback))
            .scalar_one()}

"""Admin set-up (staff function "scheduling_setup"): locations with their time zones, providers and
the visit types they offer, visit types with their booking rules, weekly availability and exceptions.
Every change is audited. Existing appointments are never moved by a set-up change; an exception that
covers booked visits says how many, so staff can call those patients."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal.core.access import load_or_404, require_function
from portal.core.audit import record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.i18n import clinic_tz
from portal.extensions import db
from portal.scheduling import rules
from portal.scheduling.events import SchedTag
from portal.scheduling.models import (BOOKING_MODES, EXCEPTION_KINDS, MODALITIES, Appointment,
                                      AvailabilityTemplate, Location, Provider, ScheduleException, VisitType)
from portal.scheduling.questionnaires import QUESTIONNAIRES

FN = "scheduling_setup"


def _audit(actor, object_type: str, public_id: str, action: str) -> None:
    record_event(SchedTag.SETUP_CHANGED, actor=actor, object_type=object_type, object_id=public_id,
                 detail={"action": action})


def overview(actor) -> dict:
    require_function(actor, FN)
    locations = db.session.execute(select(Location).order_by(Location.name)).scalars().all()
    providers = db.session.execute(select(Provider).options(selectinload(Provider.visit_types))
                                   .order_by(Provider.display_name)).scalars().all()
    types = db.session.execute(select(VisitType).order_by(VisitType.name)).scalars().all()
    counts = dict(db.session.execute(select(AvailabilityTemplate.provider_id, func.count())
                                     .group_by(AvailabilityTemplate.provider_id)).all())
    exceptions = db.session.execute(select(ScheduleException).where(ScheduleException.ends_at > utcnow())
                                    .order_by(ScheduleException.starts_at).limit(100)).scalars().all()
    affected = {e.id: _affected(e) for e in exceptions}
    return {"locations": locations, "providers": providers, "visit_types": types, "template_counts": counts,
            "exceptions": exceptions, "affected": affected}


def _affected(exc: ScheduleException) -> int:
    stmt = select(func.count()).select_from(Appointment).where(
        Appointment.status == rules.BOOKED, Appointment.starts_at < exc.ends_at, Appointment.ends_at > exc.starts_at)
    if exc.provider_id:
        stmt = stmt.where(Appointment.provider_id == exc.provider_id)
    if exc.location_id:
        stmt = stmt.where(Appointment.location_id == exc.location_id)
    return db.session.execute(stmt).scalar_one()


def all_visit_types(actor) -> list[VisitType]:
    require_function(actor, FN)
    return list(db.session.execute(select(VisitType).order_by(VisitType.name)).scalars())


# --- locations --------------------------------------------------------------------------------------

def get_location(actor, public_id: str) -> Location:
    require_function(actor, FN)
    return load_or_404(select(Location).where(Location.public_id == str(public_id)[:32]), "location", public_id, actor)


def save_location(actor, public_id: str | None, *, name: str, address: str | None, phone: str | None,
                  timezone: str, active: bool = True) -> Location:
    require_function(actor, FN)
    if not rules.valid_timezone(timezone):
        raise DomainError(_("Choose a time zone from the list (for example America/Chicago)."), field="timezone")
    loc = get_location(actor, public_id) if public_id else Location()
    loc.name, loc.address, loc.phone = name.strip(), (address or "").strip() or None, (phone or "").strip() or None
    loc.timezone, loc.active = timezone, bool(active)
    db.session.add(loc)
    db.session.flush()
    _audit(actor, "location", loc.public_id, "updated" if public_id else "created")
    return loc


# --- providers --------------------------------------------------------------------------------------

def get_provider(actor, public_id: str) -> Provider:
    require_function(actor, FN)
    return load_or_404(select(Provider).where(Provider.public_id == str(public_id)[:32])
                       .options(selectinload(Provider.visit_types)), "provider", public_id, actor)


def save_provider(actor, public_id: str | None, *, display_name: str, credentials: str | None,
                  speciality: str | None, visit_type_ids: list[str], active: bool = True) -> Provider:
    require_function(actor, FN)
    provider = get_provider(actor, public_id) if public_id else Provider()
    provider.display_name = display_name.strip()
    provider.credentials = (credentials or "").strip() or None
    provider.speciality = (speciality or "").strip() or None
    provider.active = bool(active)
    wanted = set(visit_type_ids or [])
    provider.visit_types = list(db.session.execute(select(VisitType).where(VisitType.public_id.in_(wanted or {""})))
                                .scalars()) if wanted else []
    db.session.add(provider)
    db.session.flush()
    _audit(actor, "provider", provider.public_id, "updated" if public_id else "created")
    return provider


# --- visit types ------------------------------------------------------------------------------------

def get_visit_type(actor, public_id: str) -> VisitType:
    require_function(actor, FN)
    return load_or_404(select(VisitType).where(VisitType.public_id == str(public_id)[:32]), "visit_type",
                       public_id, actor)


def save_visit_type(actor, public_id: str | None, **fields) -> VisitType:
    require_function(actor, FN)
    if fields["duration_minutes"] % rules.GRID_MINUTES or not 15 <= fields["duration_minutes"] <= 240:
        raise DomainError(_("Use 15, 30, 45… minutes (a multiple of 15, at most 240)."), field="duration_minutes")
    if fields["modality"] not in MODALITIES:
        raise DomainError(_("Choose in person or video."), field="modality")
    if fields["booking"] not in BOOKING_MODES:
        raise DomainError(_("Choose who may book it."), field="booking")
    if fields["questionnaire"] not in QUESTIONNAIRES:
        raise DomainError(_("Choose a questionnaire."), field="questionnaire")
    vt = get_visit_type(actor, public_id) if public_id else VisitType()
    for key, value in fields.items():
        if isinstance(value, str):
            value = value.strip() or None if key not in ("name", "modality", "booking", "questionnaire") \
                else value.strip()
        setattr(vt, key, value)
    db.session.add(vt)
    db.session.flush()
    _audit(actor, "visit_type", vt.public_id, "updated" if public_id else "created")
    return vt


# --- weekly availability -------------------------------------------------------------------------------

def provider_templates(actor, public_id: str) -> dict:
    provider = get_provider(actor, public_id)
    templates = db.session.execute(select(AvailabilityTemplate).where(AvailabilityTemplate.provider_id == provider.id)
                                   .options(selectinload(AvailabilityTemplate.location))
                                   .order_by(AvailabilityTemplate.weekday, AvailabilityTemplate.start_time))\
        .scalars().all()
    locations = db.session.execute(select(Location).where(Location.active.is_(True)).order_by(Location.name))\
        .scalars().all()
    return {"provider": provider, "templates": templates, "locations": locations}


def _validity_overlaps(a_from, a_until, b_from, b_until) -> bool:
    lo = max(a_from or date.min, b_from or date.min)
    hi = min(a_until or date.max, b_until or date.max)
    return lo <= hi


def add_templates(actor, provider_public_id: str, *, location_id: str, weekdays: list[int], start: time, end: time,
                  valid_from: date | None, valid_until: date | None) -> list[AvailabilityTemplate]:
    provider = get_provider(actor, provider_public_id)
    location = load_or_404(select(Location).where(Location.public_id == str(location_id)[:32]), "location",
                           location_id, actor)
    if not (rules.on_grid(start) and rules.on_grid(end)):
        raise DomainError(_("Use times on the quarter hour (:00, :15, :30, :45)."), field="start")
    if end <= start:
        raise DomainError(_("The end must be after the start."), field="end")
    if valid_from and valid_until and valid_until < valid_from:
        raise DomainError(_("The last day must be on or after the first day."), field="valid_until")
    if not weekdays:
        raise DomainError(_("Choose at least one day."), field="weekdays")
    existing = db.session.execute(select(AvailabilityTemplate).where(
        AvailabilityTemplate.provider_id == provider.id)).scalars().all()
    made = []
    for day in sorted(set(weekdays)):
        for t in existing:
            if t.weekday == day and t.start_time < end and start < t.end_time \
                    and _validity_overlaps(t.valid_from, t.valid_until, valid_from, valid_until):
                raise DomainError(_("These hours overlap hours the provider already has on that day."),
                                  field="start")
        row = AvailabilityTemplate(provider_id=provider.id, location_id=location.id, weekday=day, start_time=start,
                                   end_time=end, valid_from=valid_from, valid_until=valid_until)
        db.session.add(row)
        made.append(row)
    db.session.flush()
    for row in made:
        _audit(actor, "availability", row.public_id, "created")
    return made


def delete_template(actor, public_id: str) -> AvailabilityTemplate:
    require_function(actor, FN)
    row = load_or_404(select(AvailabilityTemplate).where(AvailabilityTemplate.public_id == str(public_id)[:32]),
                      "availability", public_id, actor)
    db.session.delete(row)
    db.session.flush()
    _audit(actor, "availability", row.public_id, "deleted")
    return row


# --- exceptions ----------------------------------------------------------------------------------------

def add_exception(actor, *, provider_id: str | None, location_id: str | None, kind: str, label: str,
                  first_day: date, last_day: date | None, start: time | None, end: time | None) -> ScheduleException:
    require_function(actor, FN)
    provider = get_provider(actor, provider_id) if provider_id else None
    location = get_location(actor, location_id) if location_id else None
    if kind not in EXCEPTION_KINDS:
        raise DomainError(_("Choose a kind."), field="kind")
    tz = location.tz if location else clinic_tz()
    last_day = last_day or first_day
    if last_day < first_day:
        raise DomainError(_("The last day must be on or after the first day."), field="last_day")
    if (start is None) != (end is None):
        raise DomainError(_("Give both a start and an end time, or neither for whole days."), field="end")
    if start is not None:
        if last_day != first_day:
            raise DomainError(_("Part-day exceptions are for one day; leave the times empty for whole days."),
                              field="last_day")
        if end <= start:
            raise DomainError(_("The end must be after the start."), field="end")
        interval = rules.Interval(rules.wall_to_utc(first_day, start, tz), rules.wall_to_utc(first_day, end, tz))
    else:
        interval = rules.whole_days(first_day, last_day, tz)
    row = ScheduleException(provider_id=provider.id if provider else None,
                            location_id=location.id if location else None, starts_at=interval.start,
                            ends_at=interval.end, kind=kind, label=label.strip(), created_by_id=actor.id)
    db.session.add(row)
    db.session.flush()
    _audit(actor, "exception", row.public_id, "created")
    return row


def delete_exception(actor, public_id: str) -> ScheduleException:
    require_function(actor, FN)
    row = load_or_404(select(ScheduleException).where(ScheduleException.public_id == str(public_id)[:32]),
                      "exception", public_id, actor)
    db.session.delete(row)
    db.session.flush()
    _audit(actor, "exception", row.public_id, "deleted")
    return row


def timezone_choices() -> list[str]:
    return sorted(z for z in rules._zone_names() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/",
                                                                                     "right/")))


def local_now(tz) -> datetime:
    return utcnow().astimezone(tz)


__all__ = ["timedelta"]

"""Open-slot search over the database: availability templates minus exceptions, booked cells and
live holds, through the pure rules in rules.py. A search is five queries whatever the range or the
number of providers (providers, templates, exceptions, claims, nothing per row)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from portal.core.db import utcnow
from portal.extensions import db
from portal.scheduling import rules
from portal.scheduling.models import (AvailabilityTemplate, Location, Provider, ScheduleException, SlotClaim,
                                      VisitType, provider_visit_types)


@dataclass(frozen=True)
class SlotOption:
    """A bookable time as pages show it."""

    start: datetime
    end: datetime
    provider: Provider
    location: Location

    @property
    def token(self) -> str:
        """The form value naming this slot: provider, location and start (UTC, ISO)."""
        return f"{self.provider.public_id}|{self.location.public_id}|{self.start.strftime('%Y-%m-%dT%H:%MZ')}"


def parse_token(token: str | None) -> tuple[str, str, datetime] | None:
    parts = (token or "").split("|")
    if len(parts) != 3 or not all(parts) or len(token) > 120:
        return None
    try:
        start = datetime.strptime(parts[2], "%Y-%m-%dT%H:%MZ").replace(tzinfo=rules.UTC)
    except ValueError:
        return None
    return parts[0], parts[1], start


def providers_for(visit_type: VisitType, provider_ids: list[int] | None = None) -> list[Provider]:
    stmt = (select(Provider).join(provider_visit_types, provider_visit_types.c.provider_id == Provider.id)
            .where(provider_visit_types.c.visit_type_id == visit_type.id, Provider.active.is_(True))
            .order_by(Provider.display_name))
    if provider_ids is not None:
        stmt = stmt.where(Provider.id.in_(provider_ids))
    return list(db.session.execute(stmt).scalars())


def templates_for(provider_ids: list[int], location_id: int | None = None) -> list[AvailabilityTemplate]:
    if not provider_ids:
        return []
    stmt = (select(AvailabilityTemplate).join(Location, Location.id == AvailabilityTemplate.location_id)
            .where(AvailabilityTemplate.provider_id.in_(provider_ids), Location.active.is_(True))
            .options(selectinload(AvailabilityTemplate.location)))
    if location_id is not None:
        stmt = stmt.where(AvailabilityTemplate.location_id == location_id)
    return list(db.session.execute(stmt).scalars())


def blocks_for(provider_ids: list[int], frm: datetime, to: datetime) -> dict[int | None, list[rules.Block]]:
    """Exceptions overlapping [frm, to): {provider_id or None (everyone): [Block]}."""
    rows = db.session.execute(select(ScheduleException).where(
        ScheduleException.starts_at < to, ScheduleException.ends_at > frm,
        or_(ScheduleException.provider_id.is_(None), ScheduleException.provider_id.in_(provider_ids or [-1]))
    )).scalars().all()
    out: dict[int | None, list[rules.Block]] = defaultdict(list)
    for row in rows:
        out[row.provider_id].append(row.block())
    return out


def busy_cells(provider_ids: list[int], frm: datetime, to: datetime, now: datetime,
               own_hold: str | None = None) -> dict[int, set[datetime]]:
    """Claimed cells per provider in [frm, to): appointments and unexpired holds (except the
    searcher's own hold, which they are about to turn into a booking)."""
    if not provider_ids:
        return {}
    live = or_(SlotClaim.appointment_id.is_not(None), SlotClaim.hold_expires_at > now)
    if own_hold:
        live = and_(live, or_(SlotClaim.hold_key.is_(None), SlotClaim.hold_key != own_hold))
    rows = db.session.execute(select(SlotClaim.provider_id, SlotClaim.starts_at).where(
        SlotClaim.provider_id.in_(provider_ids), SlotClaim.starts_at >= frm, SlotClaim.starts_at < to, live)).all()
    out: dict[int, set[datetime]] = defaultdict(set)
    for provider_id, start in rows:
        out[provider_id].add(start)
    return out


def search(visit_type: VisitType, *, frm: datetime, to: datetime, provider_ids: list[int] | None = None,
           location_id: int | None = None, staff: bool = False, now: datetime | None = None,
           own_hold: str | None = None, limit: int | None = None) -> list[SlotOption]:
    """Open slots of `visit_type` starting in [frm, to), for the providers who offer it (or the given
    ones), at one location (video visits: any), earliest first. Patients are bound by the type's lead
    time and how far ahead they may book; staff by neither (never by a claimed cell)."""
    now = now or utcnow()
    providers = providers_for(visit_type, provider_ids)
    ids = [p.id for p in providers]
    templates = templates_for(ids, None if visit_type.is_video else location_id)
    duration = timedelta(minutes=visit_type.duration_minutes)
    if staff:
        earliest, latest = now, now + timedelta(days=366)
    else:
        earliest, latest = rules.booking_bounds(now, visit_type.min_lead_minutes, visit_type.max_ahead_days)
    frm, to = max(frm, earliest), min(to, latest + timedelta(seconds=1))
    if frm >= to or not templates:
        return []
    blocks = blocks_for(ids, frm, to + duration)
    busy = busy_cells(ids, frm, to + duration, now, own_hold)
    by_provider: dict[int, list[rules.Window]] = defaultdict(list)
    locations: dict[int, Location] = {}
    for t in templates:
        by_provider[t.provider_id].append(t.window(t.location.tz))
        locations[t.location_id] = t.location
    found: list[rules.Slot] = []
    for pid, windows in by_provider.items():
        found += rules.open_slots(windows, frm=frm, to=to, duration=duration, busy=busy.get(pid, set()),
                                  blocked=blocks.get(None, []) + blocks.get(pid, []), earliest=earliest,
                                  latest=latest)
    found.sort()
    if limit is not None:
        found = found[:limit]
    by_id = {p.id: p for p in providers}
    return [SlotOption(s.start, s.end, by_id[s.provider_id], locations[s.location_id]) for s in found]


def first_available(visit_type: VisitType, *, frm: datetime, provider_ids: list[int] | None = None,
                    location_id: int | None = None, staff: bool = False, now: datetime | None = None,
                    count: int = 1, horizon_days: int | None = None) -> list[SlotOption]:
    """The next `count` open slots from `frm`, searching forward in growing steps (1, 2, 4, 7, then
    14 days: the first free time is usually close, and a search costs what its range holds)."""
    now = now or utcnow()
    horizon = frm + timedelta(days=horizon_days or (366 if staff else visit_type.max_ahead_days + 1))
    out: list[SlotOption] = []
    start = frm
    steps = iter((1, 2, 4, 7))
    while start < horizon and len(out) < count:
        end = min(start + timedelta(days=next(steps, 14)), horizon)
        out += search(visit_type, frm=start, to=end, provider_ids=provider_ids, location_id=location_id,
                      staff=staff, now=now, limit=count - len(out))
        start = end
    return out[:count]


def is_open(visit_type: VisitType, provider: Provider, location: Location, start: datetime, *,
            staff: bool = False, now: datetime | None = None, own_hold: str | None = None) -> bool:
    """Is this exact slot offered now (availability, exceptions, policy, free)? Used to refuse a
    forged or stale time early; the booking itself never relies on this answer: the claim's unique
    constraint decides between two requests."""
    if not rules.aligned(start):
        return False
    options = search(visit_type, frm=start, to=start + timedelta(minutes=1), provider_ids=[provider.id],
                     location_id=location.id, staff=staff, now=now, own_hold=own_hold)
    return any(o.start == start and o.location.id == location.id for o in options)

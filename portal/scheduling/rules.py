"""Pure scheduling rules: slots, time zones and DST, cut-offs, windows, reminders, status changes.

No Flask and no database here: plain values in, plain values out, so every rule is tested as a
function (tests/scheduling/test_rules.py, with hypothesis properties).

Time model
- Every instant is an aware UTC datetime. Weekly availability is written in a location's wall-clock
  time (e.g. Monday 08:00-12:00 in America/Chicago) and turned into UTC instants day by day, so a
  template keeps its wall-clock hours across DST changes.
- The day is cut into GRID cells (15 minutes, aligned in UTC; every real UTC offset is a multiple of
  15 minutes, so a wall-clock quarter hour is a UTC quarter hour). An appointment claims every cell it
  covers; the database refuses a second claim of a cell (unique provider + cell start), which is what
  makes double booking impossible whatever the durations.
- A wall-clock time that does not exist (the spring-forward gap) maps to the first instant after the
  gap; an ambiguous one (the fall-back hour) to its first occurrence. A window is measured in elapsed
  time, so on the fall-back day a 01:00-03:00 window really holds three hours of slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = timezone.utc
GRID = timedelta(minutes=15)
GRID_MINUTES = 15
CHECKIN_OPENS = timedelta(days=7)
JOIN_OPENS = timedelta(minutes=15)
JOIN_CLOSES_AFTER_END = timedelta(minutes=30)
DEFAULT_REMINDER_OFFSETS = (72 * 60, 24 * 60)  # minutes before the start

# Appointment statuses and the changes allowed between them.
BOOKED, ARRIVED, COMPLETED, NO_SHOW, CANCELLED, RESCHEDULED = (
    "booked", "arrived", "completed", "no_show", "cancelled", "rescheduled")
TRANSITIONS: dict[str, frozenset[str]] = {
    BOOKED: frozenset({ARRIVED, COMPLETED, NO_SHOW, CANCELLED, RESCHEDULED}),
    ARRIVED: frozenset({COMPLETED, BOOKED}),  # BOOKED: undo an arrival marked by mistake
    NO_SHOW: frozenset({BOOKED}),  # undo a no-show marked by mistake (only while the day lasts)
    COMPLETED: frozenset(),
    CANCELLED: frozenset(),
    RESCHEDULED: frozenset(),
}
ACTIVE = frozenset({BOOKED, ARRIVED})  # statuses that hold the provider's time


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


# --- time zones ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())  # scans the tz database: once per process


def valid_timezone(name: str) -> bool:
    if not name or name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def aligned(instant: datetime) -> bool:
    return instant.tzinfo is not None and int(instant.timestamp()) % (GRID_MINUTES * 60) == 0 \
        and instant.microsecond == 0


def on_grid(t: time) -> bool:
    return t.minute % GRID_MINUTES == 0 and t.second == 0 and t.microsecond == 0


def wall_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant at which the wall clock in `tz` shows `wall` on `day` or later.

    Normal times map one to one; in the spring-forward gap (02:30 that never happens) the answer is
    the end of the gap; in the fall-back hour the first occurrence."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # Nonexistent: walk from the earlier reading of the offset to the first instant at or after it.
    candidate = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    candidate = min(candidate, first)
    while candidate.astimezone(tz).replace(tzinfo=None) < naive:
        candidate += GRID
    return candidate


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day as UTC instants (23 or 25 hours on DST days)."""
    return wall_to_utc(day, time(0), tz), wall_to_utc(day + timedelta(days=1), time(0), tz)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


# --- availability -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A weekly availability template: on `weekday` (0 = Monday) from `start` to `end`, wall-clock
    time in `tz`, between `valid_from` and `valid_until` (inclusive, either open)."""

    provider_id: int
    location_id: int
    weekday: int
    start: time
    end: time
    tz: ZoneInfo
    valid_from: date | None = None
    valid_until: date | None = None

    def applies_on(self, day: date) -> bool:
        return (day.weekday() == self.weekday and (self.valid_from is None or day >= self.valid_from)
                and (self.valid_until is None or day <= self.valid_until))

    def instants(self, day: date) -> tuple[datetime, datetime]:
        return wall_to_utc(day, self.start, self.tz), wall_to_utc(day, self.end, self.tz)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime
    end: datetime
    provider_id: int
    location_id: int


def cells(start: datetime, duration: timedelta) -> list[datetime]:
    """The grid cells an appointment of `duration` starting at `start` claims."""
    n = int(duration / GRID)
    if n < 1 or duration % GRID:
        raise ValueError("durations are whole multiples of the 15-minute grid")
    return [start + k * GRID for k in range(n)]


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def open_slots(windows: list[Window], *, frm: datetime, to: datetime, duration: timedelta,
               step: timedelta | None = None, busy: set[datetime] | frozenset = frozenset(),
               blocked: list[Interval] = (), earliest: datetime | None = None,
               latest: datetime | None = None) -> list[Slot]:
    """Bookable slots of `duration` starting in [frm, to), earliest first.

    windows: the provider's weekly templates (they may name several locations); busy: claimed grid
    cells of the provider; blocked: exceptions (holidays, leave) that apply to the provider, as UTC
    intervals, each optionally limited to a location (see `blocked_for`); earliest/latest: lead time
    and how far ahead. A slot never overlaps a claimed cell or an exception and lies inside one window.
    """
    step = step or duration
    if step % GRID or duration % GRID or duration <= timedelta(0):
        raise ValueError("duration and step are whole multiples of the grid")
    found: set[Slot] = set()
    offsets = [k * GRID for k in range(int(duration / GRID))]
    lo = max(frm, earliest) if earliest is not None else frm
    for window in windows:
        tz = window.tz
        here = [b for b in blocked if getattr(b, "location_id", None) in (None, window.location_id)]
        first_day = frm.astimezone(tz).date() - timedelta(days=1)
        last_day = to.astimezone(tz).date() + timedelta(days=1)
        day = first_day
        while day <= last_day:
            if window.applies_on(day):
                w_start, w_end = window.instants(day)
                t = w_start
                while t + duration <= w_end:
                    end = t + duration
                    if (lo <= t < to and (latest is None or t <= latest)
                            and not (busy and any(t + o in busy for o in offsets))
                            and not any(b.start < end and t < b.end for b in here)):
                        found.add(Slot(t, end, window.provider_id, window.location_id))
                    t += step
            day += timedelta(days=1)
    return sorted(found)


@dataclass(frozen=True)
class Block(Interval):
    """An exception interval; location_id None means every location."""

    location_id: int | None = None


def in_windows(windows: list[Window], start: datetime, duration: timedelta) -> Window | None:
    """The window that holds [start, start + duration) entirely, if any (aligned on the grid)."""
    if not aligned(start):
        return None
    for window in windows:
        day = start.astimezone(window.tz).date()
        for d in (day - timedelta(days=1), day):
            if window.applies_on(d):
                w_start, w_end = window.instants(d)
                if w_start <= start and start + duration <= w_end:
                    return window
    return None


def whole_days(first: date, last: date, tz: ZoneInfo) -> Interval:
    """An exception covering whole local days (a holiday, leave) as one UTC interval."""
    return Interval(local_day_bounds(first, tz)[0], local_day_bounds(last, tz)[1])


# --- booking policy ------------------------------------------------------------------------------

def booking_bounds(now: datetime, min_lead_minutes: int, max_ahead_days: int) -> tuple[datetime, datetime]:
    """[earliest, latest] start a patient may book (staff are not bound by the lead time)."""
    return now + timedelta(minutes=min_lead_minutes), now + timedelta(days=max_ahead_days)


def change_deadline(starts_at: datetime, cutoff_hours: int) -> datetime:
    return starts_at - timedelta(hours=cutoff_hours)


def can_change(starts_at: datetime, now: datetime, cutoff_hours: int) -> bool:
    """May the patient still cancel or reschedule online? (After the cut-off they call the clinic.)"""
    return now < change_deadline(starts_at, cutoff_hours)


def checkin_opens(starts_at: datetime) -> datetime:
    return starts_at - CHECKIN_OPENS


def checkin_open(starts_at: datetime, now: datetime) -> bool:
    return checkin_opens(starts_at) <= now < starts_at


def join_open(starts_at: datetime, ends_at: datetime, now: datetime, lead: timedelta = JOIN_OPENS) -> bool:
    return starts_at - lead <= now <= ends_at + JOIN_CLOSES_AFTER_END


def feedback_open(ends_at: datetime, now: datetime, days: int = 30) -> bool:
    return ends_at <= now <= ends_at + timedelta(days=days)


# --- reminders ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReminderPlan:
    send: int | None  # the offset (minutes) to send now, or None
    skip: tuple[int, ...]  # offsets that will never be sent (passed while down, or before booking)


def reminder_plan(starts_at: datetime, booked_at: datetime, offsets: tuple[int, ...], done: set[int],
                  now: datetime) -> ReminderPlan:
    """Which reminder to send now, from state alone (so a sweep after downtime catches up).

    An offset is due once `now` reaches starts_at - offset. Offsets whose moment came before the
    booking are never sent (the confirmation just went out). If several are due (the worker was
    down), only the one nearest the visit is sent and the older ones are skipped: one reminder,
    never a burst. Nothing is sent once the visit has started."""
    pending = [o for o in sorted(set(offsets), reverse=True) if o not in done]
    if now >= starts_at or not pending:
        return ReminderPlan(None, ())
    never = tuple(o for o in pending if starts_at - timedelta(minutes=o) < booked_at)
    due = [o for o in pending if o not in never and now >= starts_at - timedelta(minutes=o)]
    if not due:
        return ReminderPlan(None, never)
    send = min(due)
    return ReminderPlan(send, never + tuple(o for o in due if o != send))


def parse_offsets(text: str | None) -> tuple[int, ...]:
    """"72h,24h" / "4320,1440" (minutes) → (4320, 1440). Invalid parts are ignored."""
    out = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip().lower()
        try:
            if part.endswith("h"):
                out.append(int(float(part[:-1]) * 60))
            elif part.endswith("m"):
                out.append(int(part[:-1]))
            elif part:
                out.append(int(part))
        except ValueError:
            continue
    return tuple(sorted({o for o in out if 0 < o <= 60 * 24 * 30}, reverse=True)) or DEFAULT_REMINDER_OFFSETS


# --- waitlist -------------------------------------------------------------------------------------

def offer_wanted(slot_start: datetime, current_start: datetime | None, not_after: date | None,
                 tz: ZoneInfo) -> bool:
    """Is a freed slot worth offering to a waitlist entry? Earlier than the appointment they hold
    (if any) and on or before the last day they named (if any)."""
    if current_start is not None and slot_start >= current_start:
        return False
    if not_after is not None and local_date(slot_start, tz) > not_after:
        return False
    return True

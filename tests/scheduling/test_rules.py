"""The pure scheduling rules: time zones and DST days, exceptions, lead time, cut-offs, reminders,
and (hypothesis) generated slots never overlap a booked cell, an exception, or each other per provider."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.scheduling import rules

CHI = ZoneInfo("America/Chicago")
UTC = timezone.utc


def window(weekday, start=time(8), end=time(12), tz=CHI, **kw):
    return rules.Window(1, 1, weekday, start, end, tz, **kw)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def day_slots(day, windows, **kw):
    frm, to = rules.local_day_bounds(day, windows[0].tz)
    kw.setdefault("duration", timedelta(minutes=30))
    return rules.open_slots(windows, frm=frm, to=to, **kw)


# --- time zones and DST ----------------------------------------------------------------------

def test_wall_clock_hours_hold_across_the_spring_change():
    """8:00 Chicago is 14:00 UTC in winter and 13:00 UTC after the change (8 March 2026)."""
    before, after = date(2026, 3, 6), date(2026, 3, 9)  # Friday, Monday
    s_before = day_slots(before, [window(before.weekday())])
    s_after = day_slots(after, [window(after.weekday())])
    assert s_before[0].start == utc(2026, 3, 6, 14, 0) and s_after[0].start == utc(2026, 3, 9, 13, 0)
    assert len(s_before) == len(s_after) == 8
    assert [s.start.astimezone(CHI).strftime("%H:%M") for s in s_after][:3] == ["08:00", "08:30", "09:00"]


def test_spring_forward_day_has_no_slot_in_the_missing_hour():
    day = date(2026, 3, 8)  # 02:00 -> 03:00
    slots = day_slots(day, [window(day.weekday(), time(1, 0), time(4, 0))])
    local = [s.start.astimezone(CHI).strftime("%H:%M") for s in slots]
    assert local == ["01:00", "01:30", "03:00", "03:30"]  # two real hours: 01:00-02:00 and 03:00-04:00
    assert all(not rules.overlaps(a.start, a.end, b.start, b.end) for a, b in zip(slots, slots[1:]))


def test_fall_back_day_window_is_measured_in_real_time():
    day = date(2026, 11, 1)  # 02:00 -> 01:00: the 01:00 hour happens twice
    slots = day_slots(day, [window(day.weekday(), time(0, 0), time(3, 0))])
    assert len(slots) == 8  # four real hours of 30-minute slots
    assert [s.start.astimezone(CHI).strftime("%H:%M") for s in slots].count("01:00") == 2
    assert slots[-1].end == rules.wall_to_utc(day, time(3, 0), CHI)


def test_local_day_is_23_or_25_hours_on_change_days():
    s, e = rules.local_day_bounds(date(2026, 3, 8), CHI)
    assert e - s == timedelta(hours=23)
    s, e = rules.local_day_bounds(date(2026, 11, 1), CHI)
    assert e - s == timedelta(hours=25)


def test_a_location_in_another_zone_uses_its_own_wall_clock():
    day = date(2026, 7, 1)
    berlin = window(day.weekday(), tz=ZoneInfo("Europe/Berlin"))
    assert day_slots(day, [berlin])[0].start == utc(2026, 7, 1, 6, 0)
    assert rules.valid_timezone("Europe/Berlin") and not rules.valid_timezone("Mars/Olympus")


def test_wall_to_utc_maps_the_gap_to_its_end():
    assert rules.wall_to_utc(date(2026, 3, 8), time(2, 30), CHI) == utc(2026, 3, 8, 8, 0)


# --- exceptions, busy cells, lead time ---------------------------------------------------------------

def test_busy_cells_remove_every_overlapping_slot():
    day = date(2026, 6, 3)
    busy = {utc(2026, 6, 3, 14, 15)}  # 09:15 local claimed by a 15-minute visit
    slots = day_slots(day, [window(day.weekday())], duration=timedelta(minutes=30), step=timedelta(minutes=15),
                      busy=busy)
    starts = {s.start.astimezone(CHI).strftime("%H:%M") for s in slots}
    assert "09:00" not in starts and "09:15" not in starts and "08:45" in starts and "09:30" in starts


def test_exceptions_block_whole_days_and_parts_of_days():
    day = date(2026, 12, 25)
    holiday = rules.whole_days(day, day, CHI)
    assert day_slots(day, [window(day.weekday())], blocked=[holiday]) == []
    part = rules.Block(utc(2026, 12, 25, 15, 0), utc(2026, 12, 25, 16, 0), None)  # 09:00-10:00 local
    starts = [s.start.astimezone(CHI).strftime("%H:%M") for s in day_slots(day, [window(day.weekday())],
                                                                             blocked=[part])]
    assert "09:00" not in starts and "09:30" not in starts and "08:30" in starts and "10:00" in starts


def test_an_exception_for_another_location_does_not_block():
    day = date(2026, 12, 24)
    other = rules.Block(*rules.whole_days(day, day, CHI).__dict__.values(), location_id=99)
    assert len(day_slots(day, [window(day.weekday())], blocked=[other])) == 8


def test_lead_time_and_how_far_ahead():
    day = date(2026, 6, 3)
    earliest = utc(2026, 6, 3, 15, 10)  # 10:10 local
    latest = utc(2026, 6, 3, 16, 0)
    slots = day_slots(day, [window(day.weekday())], earliest=earliest, latest=latest)
    assert [s.start.astimezone(CHI).strftime("%H:%M") for s in slots] == ["10:30", "11:00"]
    now = utc(2026, 6, 1, 12, 0)
    assert rules.booking_bounds(now, 120, 30) == (utc(2026, 6, 1, 14, 0), utc(2026, 7, 1, 12, 0))


def test_validity_dates_limit_a_template():
    w = window(2, valid_from=date(2026, 6, 10), valid_until=date(2026, 6, 17))
    assert not w.applies_on(date(2026, 6, 3)) and w.applies_on(date(2026, 6, 10)) and w.applies_on(date(2026, 6, 17))
    assert not w.applies_on(date(2026, 6, 24))


def test_in_windows_and_grid():
    w = window(2)
    assert rules.in_windows([w], utc(2026, 6, 3, 13, 0), timedelta(minutes=30)) == w
    assert rules.in_windows([w], utc(2026, 6, 3, 16, 45), timedelta(minutes=30)) is None  # past the end
    assert rules.in_windows([w], utc(2026, 6, 3, 13, 5), timedelta(minutes=30)) is None  # off the grid
    assert rules.cells(utc(2026, 6, 3, 13, 0), timedelta(minutes=45)) == [
        utc(2026, 6, 3, 13, 0), utc(2026, 6, 3, 13, 15), utc(2026, 6, 3, 13, 30)]


# --- cut-offs and windows --------------------------------------------------------------------------------

def test_cancel_cutoff_checkin_and_join_windows():
    start = utc(2026, 6, 10, 15, 0)
    assert rules.can_change(start, start - timedelta(hours=24, minutes=1), 24)
    assert not rules.can_change(start, start - timedelta(hours=23, minutes=59), 24)
    assert not rules.checkin_open(start, start - timedelta(days=7, minutes=1))
    assert rules.checkin_open(start, start - timedelta(days=7)) and not rules.checkin_open(start, start)
    end = start + timedelta(minutes=30)
    assert not rules.join_open(start, end, start - timedelta(minutes=16))
    assert rules.join_open(start, end, start - timedelta(minutes=15))
    assert rules.join_open(start, end, end + timedelta(minutes=30))
    assert not rules.join_open(start, end, end + timedelta(minutes=31))


def test_status_transitions():
    assert rules.can_transition("booked", "arrived") and rules.can_transition("arrived", "completed")
    assert not rules.can_transition("cancelled", "booked") and not rules.can_transition("completed", "no_show")


# --- reminders ---------------------------------------------------------------------------------------------

OFFSETS = (72 * 60, 24 * 60)


def test_reminder_due_at_each_offset_once():
    start, booked = utc(2026, 6, 10, 15), utc(2026, 6, 1)
    assert rules.reminder_plan(start, booked, OFFSETS, set(), start - timedelta(hours=73)).send is None
    assert rules.reminder_plan(start, booked, OFFSETS, set(), start - timedelta(hours=71)).send == 72 * 60
    assert rules.reminder_plan(start, booked, OFFSETS, {72 * 60}, start - timedelta(hours=30)).send is None
    assert rules.reminder_plan(start, booked, OFFSETS, {72 * 60}, start - timedelta(hours=23)).send == 24 * 60
    assert rules.reminder_plan(start, booked, OFFSETS, {72 * 60, 24 * 60}, start - timedelta(hours=1)).send is None


def test_after_downtime_only_the_nearest_reminder_goes_out():
    start, booked = utc(2026, 6, 10, 15), utc(2026, 6, 1)
    plan = rules.reminder_plan(start, booked, OFFSETS, set(), start - timedelta(hours=20))
    assert plan.send == 24 * 60 and plan.skip == (72 * 60,)
    assert rules.reminder_plan(start, booked, OFFSETS, set(), start + timedelta(minutes=1)).send is None


def test_reminders_whose_moment_came_before_the_booking_are_never_sent():
    start = utc(2026, 6, 10, 15)
    plan = rules.reminder_plan(start, start - timedelta(hours=30), OFFSETS, set(), start - timedelta(hours=29))
    assert plan.send is None and plan.skip == (72 * 60,)


def test_offsets_parse():
    assert rules.parse_offsets("72h, 24h") == (4320, 1440)
    assert rules.parse_offsets("90m,2h") == (120, 90)
    assert rules.parse_offsets("nonsense") == rules.DEFAULT_REMINDER_OFFSETS


def test_waitlist_offer_wanted():
    start = utc(2026, 6, 10, 15)
    assert rules.offer_wanted(start, start + timedelta(days=3), None, CHI)
    assert not rules.offer_wanted(start, start - timedelta(days=1), None, CHI)
    assert not rules.offer_wanted(start, None, date(2026, 6, 9), CHI)


# --- properties ----------------------------------------------------------------------------------------------

DAYS = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31))
ZONES = st.sampled_from(["America/Chicago", "America/New_York", "Europe/London", "Australia/Sydney",
                         "Asia/Kolkata", "America/Los_Angeles"])
QUARTERS = st.integers(min_value=0, max_value=95)


@settings(max_examples=80, deadline=None)
@given(day=DAYS, zone=ZONES, start_q=QUARTERS, length_q=st.integers(1, 40), duration_q=st.integers(1, 8),
       step_q=st.integers(1, 4), busy_q=st.lists(st.integers(0, 200), max_size=12),
       block=st.tuples(st.integers(0, 200), st.integers(1, 24)))
def test_generated_slots_never_overlap_a_booked_cell_or_an_exception(day, zone, start_q, length_q, duration_q,
                                                                     step_q, busy_q, block):
    tz = ZoneInfo(zone)
    start = time(start_q // 4, (start_q % 4) * 15)
    end_minutes = min(start_q * 15 + length_q * 15, 24 * 60 - 15)
    if end_minutes <= start_q * 15:
        return
    end = time(end_minutes // 60, end_minutes % 60)
    w = rules.Window(1, 1, day.weekday(), start, end, tz)
    frm, to = rules.local_day_bounds(day, tz)
    base = frm
    busy = {base + q * rules.GRID for q in busy_q}
    blocked = [rules.Block(base + block[0] * rules.GRID, base + (block[0] + block[1]) * rules.GRID, None)]
    duration = duration_q * rules.GRID
    out = rules.open_slots([w], frm=frm, to=to, duration=duration, step=step_q * rules.GRID, busy=busy,
                           blocked=blocked)
    w_start, w_end = w.instants(day)
    for s in out:
        assert s.end - s.start == duration
        assert w_start <= s.start and s.end <= w_end  # inside the window
        assert rules.aligned(s.start)
        for cell in busy:  # never over a booked cell
            assert not rules.overlaps(s.start, s.end, cell, cell + rules.GRID)
        assert not blocked[0].overlaps(s.start, s.end)


@settings(max_examples=25, deadline=None)
@given(day=DAYS, zone=ZONES, bookings=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 4)), max_size=8))
def test_booking_a_generated_slot_removes_it_and_its_neighbours_overlap_never(day, zone, bookings):
    """Book generated slots one after another (claiming their cells); every later search offers
    nothing that overlaps anything booked so far."""
    tz = ZoneInfo(zone)
    w = rules.Window(1, 1, day.weekday(), time(6), time(20), tz)
    frm, to = rules.local_day_bounds(day, tz)
    busy: set = set()
    booked: list = []
    for pick, duration_q in bookings:
        duration = duration_q * rules.GRID
        offered = rules.open_slots([w], frm=frm, to=to, duration=duration, step=rules.GRID, busy=busy)
        for s in offered:
            assert all(not rules.overlaps(s.start, s.end, b.start, b.end) for b in booked)
        if offered:
            chosen = offered[pick % len(offered)]
            booked.append(chosen)
            busy.update(rules.cells(chosen.start, duration))

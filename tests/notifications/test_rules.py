"""The pure rules (no Flask): channel choice, quiet hours, back-off, SMS length, keywords."""

from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from portal.notifications import rules

CHICAGO = ZoneInfo("America/Chicago")
QUIET = (time(21, 0), time(8, 0))


@pytest.mark.parametrize("choice,can_text,expected", [
    ("email", True, ["email"]), ("sms", True, ["sms"]), ("both", True, ["email", "sms"]), ("off", True, []),
    ("sms", False, ["email"]), ("both", False, ["email"]), (None, True, ["email"]), ("nonsense", True, ["email"]),
])
def test_channels_for_each_choice(choice, can_text, expected):
    assert rules.channels_for(choice, can_text=can_text) == expected


def test_security_is_email_whatever_was_chosen():
    for choice in rules.CHOICES:
        assert rules.channels_for(choice, can_text=True, always_email=True) == ["email"]


def _utc(y, mo, d, h, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=CHICAGO).astimezone(timezone.utc)


@pytest.mark.parametrize("local,expected_end", [
    ((2026, 12, 2, 20, 59), None),  # just before
    ((2026, 12, 2, 21, 0), (2026, 12, 3, 8, 0)),  # starts at 21:00 sharp
    ((2026, 12, 2, 23, 30), (2026, 12, 3, 8, 0)),  # before midnight: ends next morning
    ((2026, 12, 3, 2, 0), (2026, 12, 3, 8, 0)),  # after midnight: ends the same morning
    ((2026, 12, 3, 8, 0), None),  # ends at 08:00 sharp
    ((2026, 3, 7, 22, 0), (2026, 3, 8, 8, 0)),  # the night the clocks go forward (CST -> CDT)
    ((2026, 10, 31, 22, 0), (2026, 11, 1, 8, 0)),  # the night they go back
])
def test_quiet_hours_in_the_clinic_zone(local, expected_end):
    end = rules.quiet_until(_utc(*local), CHICAGO, QUIET)
    if expected_end is None:
        assert end is None
    else:
        assert end == _utc(*expected_end)
        assert end.astimezone(CHICAGO).hour == 8


def test_quiet_hours_that_do_not_wrap_and_none():
    lunch = (time(12, 0), time(13, 0))
    assert rules.quiet_until(_utc(2026, 12, 2, 12, 30), CHICAGO, lunch) == _utc(2026, 12, 2, 13, 0)
    assert rules.quiet_until(_utc(2026, 12, 2, 13, 30), CHICAGO, lunch) is None
    assert rules.quiet_until(_utc(2026, 12, 2, 23, 0), CHICAGO, None) is None
    assert rules.parse_quiet_hours("21:00-08:00") == QUIET
    assert rules.parse_quiet_hours("") is None
    with pytest.raises(ValueError):
        rules.parse_quiet_hours("9pm to 8am")


def test_backoff_doubles_up_to_an_hour():
    assert [rules.backoff_seconds(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert rules.backoff_seconds(1, base=1) == 1


def test_sms_length_and_segments():
    assert rules.is_gsm7("Riverside: ñ é ü ¿? €") and not rules.is_gsm7("cita está ó")
    assert rules.sms_length("a€") == 3  # the euro sign is an escape (two septets)
    assert rules.sms_segments("x" * 160) == 1 and rules.sms_segments("x" * 161) == 2
    assert rules.sms_segments("ó" * 70) == 1 and rules.sms_segments("ó" * 71) == 2


@pytest.mark.parametrize("text,builtin,lang", [
    ("STOP", "stop", "en"), (" stop. ", "stop", "en"), ("Baja", "stop", "es"), ("arrêt", "stop", "en"),
    ("ARRET", "stop", "en"), ("unsubscribe", "stop", "en"), ("start", "start", "en"), ("ALTA", "start", "es"),
    ("help", "help", "en"), ("Ayuda!", "help", "es"), ("stop texting me at night", None, "en"), ("C", None, "en"),
])
def test_builtin_keywords(text, builtin, lang):
    keyword = rules.keyword_of(text)
    assert keyword == text.strip().upper()
    assert rules.builtin_keyword(keyword) == builtin
    assert rules.keyword_language(keyword) == lang


def test_inbound_text_is_cleaned_and_bounded():
    assert rules.clean_inbound("hi\x00 there\x07\nline") == "hi there\nline"
    assert len(rules.clean_inbound("x" * 5000)) == 1600
    assert rules.clean_inbound(None) == ""

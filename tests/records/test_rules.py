"""Pure rules: flags from interpretation or range, critical limits, our reference table, release
rules (immediate by default, the patient's wait categories, clinician holds), plausible readings,
and the chart geometry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from portal.records import rules
from portal.records.rules import Range

NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def test_flag_from_the_labs_interpretation_wins_over_the_range():
    rng = Range(70, 99, "lab")
    assert rules.flag(80, rng, "H") == rules.HIGH  # the lab said so
    assert rules.flag(150, rng, "N") == rules.NORMAL
    assert rules.flag(150, rng, "HH") == rules.CRITICAL_HIGH
    assert rules.flag(None, Range(None, None, ""), "POS") == rules.ABNORMAL


@pytest.mark.parametrize("value,expected", [(69.9, rules.LOW), (70, rules.NORMAL), (99, rules.NORMAL),
                                            (99.1, rules.HIGH), (400, rules.CRITICAL_HIGH), (40, rules.CRITICAL_LOW)])
def test_flag_computed_from_range_and_critical_limits(value, expected):
    rng = rules.range_for("2339-0", None, None, "mg/dL")
    assert rng.source == "reference" and (rng.low, rng.high) == (70, 99)
    assert rules.flag(value, rng) == expected


def test_one_sided_ranges_and_unknown_tests():
    hdl = rules.range_for("2085-9", None, None, "mg/dL")
    assert rules.flag(35, hdl) == rules.LOW and rules.flag(80, hdl) == rules.NORMAL
    assert rules.flag(5, rules.range_for("99999-9", None, None, "mg/dL")) is None


def test_the_labs_own_range_wins_and_units_must_agree_for_ours():
    assert rules.range_for("2339-0", 3.9, 5.5, "mmol/L").source == "lab"
    assert not rules.range_for("2339-0", None, None, "mmol/L").known  # our table is in mg/dL


def test_reference_table_has_forty_tests_in_both_languages_with_sources():
    table = rules.reference_table()
    assert len(table) >= 40
    for code, ref in table.items():
        assert ref["name"]["en"] and ref["name"]["es"] and ref["source"], code
        assert ref["explanation"]["en"] and ref["explanation"]["es"], code
    assert rules.plain_name("2339-0", "x", "es") == "Glucosa"


def test_release_is_immediate_by_default():
    plan = rules.initial_release(NOW, None, set(), 7)
    assert plan.available_at == NOW and not plan.wait_for_clinician
    assert rules.initial_release(NOW, rules.HIV_STI, {rules.PREGNANCY}, 7).available_at == NOW


def test_a_category_the_patient_waits_for_is_released_by_the_clinician_or_after_n_days():
    plan = rules.initial_release(NOW, rules.HIV_STI, {rules.HIV_STI}, 7)
    assert plan.wait_for_clinician and plan.available_at == NOW + timedelta(days=7)
    assert not rules.is_due(None, plan.available_at, None, NOW + timedelta(days=6))
    assert rules.is_due(None, plan.available_at, None, NOW + timedelta(days=7))


def test_sensitive_categories_from_code_and_report_section():
    assert rules.sensitive_category("7917-8") == rules.HIV_STI
    assert rules.sensitive_category("2106-3") == rules.PREGNANCY
    assert rules.sensitive_category("2339-0", "PAT") == rules.PATHOLOGY
    assert rules.sensitive_category("2339-0", "LAB") is None


def test_a_clinician_hold_blocks_release_until_it_ends():
    until = NOW + timedelta(days=2)
    assert not rules.is_due(None, NOW, until, NOW)
    assert rules.is_due(None, NOW, until, until)
    assert not rules.is_due(NOW, NOW, None, NOW)  # already released: nothing to do (idempotent)


def test_a_hold_needs_a_reason_and_a_near_future_end():
    assert rules.check_hold("", NOW + timedelta(days=1), NOW) == "reason"
    assert rules.check_hold("call first", NOW - timedelta(minutes=1), NOW) == "future"
    assert rules.check_hold("call first", NOW + timedelta(days=31), NOW) == "too_long"
    assert rules.check_hold("call first", NOW + timedelta(days=3), NOW) is None


@pytest.mark.parametrize("kind,v,v2,problem", [
    (rules.BLOOD_PRESSURE, 120, 80, None), (rules.BLOOD_PRESSURE, 80, 120, "order"),
    (rules.BLOOD_PRESSURE, 1200, 80, "implausible"), (rules.BLOOD_PRESSURE, 120, None, "missing"),
    (rules.GLUCOSE, 95, None, None), (rules.GLUCOSE, 5, None, "implausible"),
    (rules.WEIGHT, 70, None, None), (rules.WEIGHT, 900, None, "implausible"), ("height", 1, None, "missing"),
])
def test_plausible_readings(kind, v, v2, problem):
    assert rules.check_reading(kind, v, v2) == problem


def test_blood_pressure_flags():
    assert rules.bp_flag(118, 76) == rules.NORMAL
    assert rules.bp_flag(134, 78) == rules.HIGH
    assert rules.bp_flag(185, 100) == rules.CRITICAL_HIGH


def test_range_bar_and_trend_geometry():
    bar = rules.range_bar(131, Range(70, 99, "reference"))
    assert 0 <= bar.band_start < bar.band_end < bar.marker <= 99
    series = [(NOW - timedelta(days=d), v, None) for d, v in ((300, 96), (200, 104), (100, 112), (1, 131))]
    t = rules.trend(series, Range(70, 99, "reference"))
    xs = [p.x for p in t.points]
    assert xs == sorted(xs) and t.points[-1].y < t.points[0].y  # higher value drawn higher
    assert t.band[0] < t.band[1] and rules.trend(series[:1], Range(None, None, "")) is None

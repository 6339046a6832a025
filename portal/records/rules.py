"""Pure rules of the records domain (no Flask, no database): result flags, reference ranges, release
rules (21st Century Cures Act), plausible patient readings, and the geometry of the range bar and the
trend chart. Tested in tests/records/test_rules.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"

# --- reference data -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def reference_table() -> dict[str, dict]:
    """LOINC → {name{en,es}, unit, low, high, critical_low, critical_high, source, explanation{en,es}}."""
    return json.loads((DATA / "lab_reference.json").read_text(encoding="utf-8"))


def reference_for(code: str | None) -> dict | None:
    return reference_table().get(code or "")


def plain_name(code: str | None, fallback: str, lang: str = "en") -> str:
    ref = reference_for(code)
    return ref["name"].get(lang) or ref["name"]["en"] if ref else fallback


def explanation(code: str | None, lang: str = "en") -> str | None:
    ref = reference_for(code)
    return (ref["explanation"].get(lang) or ref["explanation"]["en"]) if ref else None


@dataclass(frozen=True)
class Range:
    low: float | None
    high: float | None
    source: str  # "lab" (from the result itself) or "reference" (our table) or ""
    critical_low: float | None = None
    critical_high: float | None = None

    @property
    def known(self) -> bool:
        return self.low is not None or self.high is not None


def range_for(code: str | None, low: float | None, high: float | None, unit: str | None) -> Range:
    """The lab's own range wins; otherwise our table's, only when the units agree."""
    ref = reference_for(code)
    crit_low = crit_high = None
    if ref and _same_unit(ref.get("unit"), unit):
        crit_low, crit_high = ref.get("critical_low"), ref.get("critical_high")
    if low is not None or high is not None:
        return Range(low, high, "lab", crit_low, crit_high)
    if ref and _same_unit(ref.get("unit"), unit) and (ref.get("low") is not None or ref.get("high") is not None):
        return Range(ref.get("low"), ref.get("high"), "reference", crit_low, crit_high)
    return Range(None, None, "")


def _same_unit(a: str | None, b: str | None) -> bool:
    norm = lambda u: (u or "").replace(" ", "").lower()  # noqa: E731
    return norm(a) == norm(b)


# --- flags --------------------------------------------------------------------------------------

NORMAL, HIGH, LOW, CRITICAL_HIGH, CRITICAL_LOW, ABNORMAL, CRITICAL = (
    "normal", "high", "low", "critical_high", "critical_low", "abnormal", "critical")

# FHIR v3 ObservationInterpretation codes we understand
_INTERPRETATION = {
    "N": NORMAL, "NEG": NORMAL, "ND": NORMAL,
    "H": HIGH, "HU": HIGH, "L": LOW, "LU": LOW,
    "HH": CRITICAL_HIGH, "LL": CRITICAL_LOW, "AA": CRITICAL,
    "A": ABNORMAL, "POS": ABNORMAL, "DET": ABNORMAL, "R": ABNORMAL, "I": ABNORMAL,
}


def flag(value: float | None, rng: Range, interpretation: str | None = None) -> str | None:
    """The flag of one result: from its `interpretation` when the lab gave one, else computed from the
    range (critical limits first). None when nothing can be said."""
    if interpretation:
        known = _INTERPRETATION.get(interpretation.upper())
        if known:
            return known
    if value is None:
        return None
    if rng.critical_high is not None and value >= rng.critical_high:
        return CRITICAL_HIGH
    if rng.critical_low is not None and value <= rng.critical_low:
        return CRITICAL_LOW
    if not rng.known:
        return None
    if rng.high is not None and value > rng.high:
        return HIGH
    if rng.low is not None and value < rng.low:
        return LOW
    return NORMAL


def is_out_of_range(flag_value: str | None) -> bool:
    return flag_value not in (None, NORMAL)


# --- release rules (Cures Act information blocking) ---------------------------------------------

PATHOLOGY, GENETICS, PREGNANCY, HIV_STI = "pathology", "genetics", "pregnancy", "hiv_sti"
SENSITIVE_CATEGORIES = (PATHOLOGY, GENETICS, PREGNANCY, HIV_STI)

_REPORT_CATEGORY = {  # HL7 v2 diagnostic service section (DiagnosticReport.category)
    "PAT": PATHOLOGY, "SP": PATHOLOGY, "CP": PATHOLOGY, "CY": PATHOLOGY, "OSL": PATHOLOGY,
    "GE": GENETICS,
}
_CODE_CATEGORY = {
    # pregnancy (hCG)
    "2106-3": PREGNANCY, "2118-8": PREGNANCY, "19080-1": PREGNANCY, "21198-7": PREGNANCY, "2112-7": PREGNANCY,
    # HIV and sexually transmitted infections
    "7917-8": HIV_STI, "5221-7": HIV_STI, "75622-1": HIV_STI, "56888-1": HIV_STI, "48345-3": HIV_STI,
    "25836-8": HIV_STI, "20447-9": HIV_STI, "21613-5": HIV_STI, "43304-5": HIV_STI, "24111-7": HIV_STI,
    "20507-0": HIV_STI, "22461-8": HIV_STI, "5292-8": HIV_STI, "14499-8": HIV_STI, "11580-8": HIV_STI,
    # genetics and tumour markers
    "81247-9": GENETICS, "21636-6": GENETICS, "21637-4": GENETICS,
    "10334-1": PATHOLOGY, "2039-6": PATHOLOGY, "22049-1": PATHOLOGY, "60568-3": PATHOLOGY, "11529-5": PATHOLOGY,
}


def sensitive_category(code: str | None, report_category: str | None = None) -> str | None:
    return _REPORT_CATEGORY.get((report_category or "").upper()) or _CODE_CATEGORY.get(code or "")


@dataclass(frozen=True)
class ReleasePlan:
    available_at: datetime  # when it may go to the patient (if no clinician holds it)
    wait_for_clinician: bool  # the patient asked to wait: released by a clinician, or at available_at


def initial_release(now: datetime, category: str | None, patient_waits_for: set[str] | frozenset[str],
                    auto_release_days: int) -> ReleasePlan:
    """Released at once by default; a sensitive category the patient chose to wait for is released by
    the clinician, or automatically after `auto_release_days`."""
    if category and category in patient_waits_for:
        return ReleasePlan(now + timedelta(days=max(0, auto_release_days)), True)
    return ReleasePlan(now, False)


def is_held(hold_until: datetime | None, now: datetime) -> bool:
    return hold_until is not None and hold_until > now


def is_due(released_at: datetime | None, available_at: datetime | None, hold_until: datetime | None,
           now: datetime) -> bool:
    """Should the periodic release make this result visible now?"""
    return released_at is None and available_at is not None and available_at <= now and not is_held(hold_until, now)


MAX_HOLD_DAYS = 30


def check_hold(reason: str | None, until: datetime | None, now: datetime) -> str | None:
    """An error key for a clinician hold, or None when it is acceptable: a reason is required and the
    expiry must be in the future, at most MAX_HOLD_DAYS away (information blocking: holds are brief)."""
    if not (reason or "").strip():
        return "reason"
    if until is None or until <= now:
        return "future"
    if until > now + timedelta(days=MAX_HOLD_DAYS):
        return "too_long"
    return None


# --- patient-entered readings -------------------------------------------------------------------

BLOOD_PRESSURE, GLUCOSE, WEIGHT = "blood_pressure", "glucose", "weight"
READING_KINDS = {
    # kind: (LOINC, display, unit)
    BLOOD_PRESSURE: ("85354-9", "Blood pressure", "mm[Hg]"),
    GLUCOSE: ("2339-0", "Glucose", "mg/dL"),
    WEIGHT: ("29463-7", "Body weight", "kg"),
}
PLAUSIBLE = {
    "systolic": (60.0, 260.0),
    "diastolic": (30.0, 160.0),
    GLUCOSE: (20.0, 600.0),
    WEIGHT: (2.0, 350.0),  # kg
}
LB_PER_KG = 2.2046226218


def check_reading(kind: str, value: float | None, value2: float | None = None) -> str | None:
    """An error key when a reading is implausible (a typo, most likely), else None."""
    if kind not in READING_KINDS or value is None:
        return "missing"
    if kind == BLOOD_PRESSURE:
        if value2 is None:
            return "missing"
        lo, hi = PLAUSIBLE["systolic"]
        lo2, hi2 = PLAUSIBLE["diastolic"]
        if not (lo <= value <= hi) or not (lo2 <= value2 <= hi2):
            return "implausible"
        if value2 >= value:
            return "order"
        return None
    lo, hi = PLAUSIBLE[kind]
    return None if lo <= value <= hi else "implausible"


def bp_flag(systolic: float | None, diastolic: float | None) -> str | None:
    """ACC/AHA 2017: normal < 120/80; 130+/80+ high; 180+/120+ critical."""
    if systolic is None or diastolic is None:
        return None
    if systolic >= 180 or diastolic >= 120:
        return CRITICAL_HIGH
    if systolic >= 130 or diastolic >= 80:
        return HIGH
    if systolic < 90 or diastolic < 60:
        return LOW
    return NORMAL


# --- drawing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RangeBar:
    """Positions (0–100) on a bar: the normal band and the value's marker."""

    band_start: float
    band_end: float
    marker: float


def range_bar(value: float | None, rng: Range) -> RangeBar | None:
    if value is None or not rng.known:
        return None
    low = rng.low if rng.low is not None else min(value, rng.high) * 0.5
    high = rng.high if rng.high is not None else max(value, rng.low) * 1.5 or 1.0
    span = (high - low) or abs(high) or 1.0
    lo_edge, hi_edge = min(low - span * 0.5, value), max(high + span * 0.5, value)
    total = (hi_edge - lo_edge) or 1.0
    pos = lambda v: round(100.0 * (v - lo_edge) / total, 2)  # noqa: E731
    return RangeBar(pos(low), pos(high), max(1.0, min(99.0, pos(value))))


@dataclass(frozen=True)
class TrendPoint:
    x: float
    y: float
    y2: float | None
    value: float
    value2: float | None
    when: datetime


@dataclass(frozen=True)
class Trend:
    width: int
    height: int
    points: list[TrendPoint]
    band: tuple[float, float] | None  # y of the normal range (top, bottom)
    y_min: float
    y_max: float

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def path2(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y2:.1f}" for p in self.points if p.y2 is not None)


def trend(series: list[tuple[datetime, float, float | None]], rng: Range, width: int = 600,
          height: int = 200, pad: int = 30) -> Trend | None:
    """Coordinates for an SVG line chart of (when, value[, value2]) oldest first; None for < 2 points."""
    series = [s for s in series if s[1] is not None]
    if len(series) < 2:
        return None
    values = [s[1] for s in series] + [s[2] for s in series if s[2] is not None]
    values += [v for v in (rng.low, rng.high) if v is not None]
    y_min, y_max = min(values), max(values)
    if y_max == y_min:
        y_max, y_min = y_max + 1, y_min - 1
    margin = (y_max - y_min) * 0.1
    y_min, y_max = y_min - margin, y_max + margin
    t0, t1 = series[0][0].timestamp(), series[-1][0].timestamp()
    tspan = (t1 - t0) or 1.0

    def y_of(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - (v - y_min) / (y_max - y_min))

    points = [TrendPoint(pad + (width - 2 * pad) * ((when.timestamp() - t0) / tspan), y_of(v),
                         y_of(v2) if v2 is not None else None, v, v2, when) for when, v, v2 in series]
    band = None
    if rng.known:
        top = y_of(rng.high) if rng.high is not None else pad
        bottom = y_of(rng.low) if rng.low is not None else height - pad
        band = (round(top, 1), round(bottom, 1))
    return Trend(width, height, points, band, round(y_min, 2), round(y_max, 2))


# SNOMED CT fully specified names end in a semantic tag ("Anemia (disorder)", "Stress (finding)"): meant for
# coders, not patients. Shown without it; the stored display and the export keep the source's words.
_SEMANTIC_TAG = re.compile(
    r"\s*\((?:disorder|finding|situation|procedure|regime/therapy|observable entity|qualifier value|event|"
    r"morphologic abnormality|body structure|substance|product|medicinal product|clinical drug|"
    r"record artifact|environment|person|physical object|social concept|navigational concept)\)\s*$")


_NOTED_TAGS = ("(finding)", "(situation)")


def is_noted_circumstance(display: str | None) -> bool:
    """A condition coded as a SNOMED finding or situation ("Stress (finding)", "Full-time employment
    (finding)"): what a visit noted about the patient's life and circumstances rather than a disorder. The
    summary lists these apart from health problems, so work, housing or stress do not read as diagnoses."""
    return bool(display) and str(display).rstrip().endswith(_NOTED_TAGS)


def plain_term(text: str | None) -> str:
    """"Obstructive sleep apnea syndrome (disorder)" → "Obstructive sleep apnea syndrome"."""
    if not text:
        return text or ""
    return _SEMANTIC_TAG.sub("", str(text)) or str(text)


# UCUM codes as people write them ("mm[Hg]" is mmHg on every blood-pressure cuff).
_UNIT_LABELS = {
    "mm[Hg]": "mmHg", "10*3/uL": "×10³/µL", "10*6/uL": "×10⁶/µL", "10*9/L": "×10⁹/L", "10*12/L": "×10¹²/L",
    "[lb_av]": "lb", "[in_i]": "in", "[ft_i]": "ft", "Cel": "°C", "[degF]": "°F", "kg/m2": "kg/m²",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²", "{beats}/min": "beats/min", "/min": "/min", "{breaths}/min": "breaths/min",
    "[iU]/L": "IU/L", "m[iU]/L": "mIU/L", "u[iU]/mL": "µIU/mL", "m[IU]/L": "mIU/L", "u[IU]/mL": "µIU/mL",
    "ug/dL": "µg/dL", "ug/L": "µg/L", "ug/mL": "µg/mL", "umol/L": "µmol/L", "uL": "µL", "fL": "fL",
    "{score}": "", "1": "",
}


def unit_label(unit: str | None) -> str:
    """"mm[Hg]" → "mmHg", "10*3/uL" → "×10³/µL"; a code we do not know loses only its {annotation} braces."""
    if not unit:
        return ""
    if unit in _UNIT_LABELS:
        return _UNIT_LABELS[unit]
    return unit.replace("{", "").replace("}", "")

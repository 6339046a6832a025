"""Patient lookups and the audited view of demographics. Everything goes through core.access's scope."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, or_

from portal.core.access import patient_for, require_function, scoped_patients
from portal.core.audit import EventTag, record_event
from portal.extensions import db
from portal.patients.models import Patient

SEARCH_LIMIT = 50


def own_patient(user) -> Patient:
    """The signed-in patient's own record (404 if the account has no active self grant)."""
    return patient_for(user)


def view_demographics(actor, patient_public_id: str | None = None) -> Patient:
    """The patient's own record (or a staff view of one); every view is audit-logged."""
    patient = patient_for(actor, patient_public_id)
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="demographics",
                 object_type="patient", object_id=patient.public_id)
    return patient


def _month_names() -> dict[str, int]:
    from babel.dates import get_month_names

    names: dict[str, int] = {"sept": 9, "set": 9}
    for locale in ("en", "es"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                names[name.lower().strip(".")] = number
    return names


_MONTHS: dict[str, int] | None = None


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d) if 1850 <= y <= 2200 else None
    except ValueError:
        return None


def parse_birth_date(text: str, day_first: bool = False) -> date | None:
    """A birth date as staff type it: 1981-11-03, 11/03/1981 (month first in English, day first in
    Spanish; the other order when only it makes a date), 11.03.1981, "Nov 3 1981", "November 3, 1981",
    "3 Nov 1981", "3 de noviembre de 1981". None when it is not a date."""
    global _MONTHS
    q = text.strip().lower()
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", q)
    if m:
        return _safe_date(int(m[1]), int(m[2]), int(m[3]))
    m = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})", q)
    if m:
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        first = _safe_date(y, b, a) if day_first else _safe_date(y, a, b)
        return first or (_safe_date(y, a, b) if day_first else _safe_date(y, b, a))
    if _MONTHS is None:
        _MONTHS = _month_names()
    tokens = [t for t in re.split(r"[\s,.]+", q) if t and t != "de"]
    if len(tokens) != 3:
        return None
    month = day = year = None
    for t in tokens:
        t2 = re.sub(r"(st|nd|rd|th|º|°)$", "", t)
        if t in _MONTHS and month is None:
            month = _MONTHS[t]
        elif t2.isdigit() and len(t2) == 4 and year is None:
            year = int(t2)
        elif t2.isdigit() and len(t2) <= 2 and day is None:
            day = int(t2)
        else:
            return None
    return _safe_date(year, month, day) if month and day and year else None


def _digits(column):
    """The column's digits only (SQL), for phone numbers stored as (555) 010-2000, 555.010.2000, +1…"""
    for ch in ("(", ")", "-", " ", ".", "+", "/"):
        column = func.replace(column, ch, "")
    return column


def search(actor, query: str, *, day_first: bool = False) -> list[Patient]:
    """Staff search by MRN, name, birth date (several spellings) or phone number. The query text is not
    logged (it can be PHI); the public ids of the patients listed are."""
    require_function(actor, "patient_search")
    q = (query or "").strip()[:100]
    if len(q) < 2:
        return []
    stmt = scoped_patients(actor)
    born = parse_birth_date(q, day_first=day_first)
    digits = re.sub(r"\D", "", q)
    if born is not None:
        stmt = stmt.where(Patient.birth_date == born)
    elif re.fullmatch(r"[\d\s().+\-/]+", q) and len(digits) >= 7:
        stmt = stmt.where(or_(_digits(Patient.phone).like(f"%{digits[-10:]}"), Patient.mrn == q))
    else:
        terms = [t.replace("%", "").replace("_", "") for t in re.split(r"[\s,]+", q.lower())]
        terms = [t for t in terms if len(t) >= 2][:4]
        if not terms:
            return []
        for term in terms:
            like = f"%{term}%"
            stmt = stmt.where(or_(func.lower(Patient.given_name).like(like),
                                  func.lower(Patient.family_name).like(like),
                                  func.lower(Patient.mrn) == term))
    rows = db.session.execute(stmt.order_by(Patient.family_name, Patient.given_name)
                              .limit(SEARCH_LIMIT)).scalars().all()
    record_event(EventTag.PATIENT_SEARCH, actor=actor,
                 detail={"results": len(rows), "patients": [p.public_id for p in rows]})
    return list(rows)

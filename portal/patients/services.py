"""Patient lookups. Everything goes through core.access's scope."""

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
    """The signed-in patient's own record (404 if the account has no active grant)."""
    return patient_for(user)


def search(actor, query: str) -> list[Patient]:
    """Staff search by MRN, name or birth date. The query text is not logged (it can be PHI)."""
    require_function(actor, "patient_search")
    q = (query or "").strip()[:100]
    if len(q) < 2:
        return []
    stmt = scoped_patients(actor)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", q):
        try:
            stmt = stmt.where(Patient.birth_date == date.fromisoformat(q))
        except ValueError:
            return []
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
    record_event(EventTag.PATIENT_SEARCH, actor=actor, detail={"results": len(rows)})
    return list(rows)

"""Test helpers: a patient's demo labs imported through the real importer."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from portal.core.db import utcnow
from portal.extensions import db
from portal.records.demo import lab_bundle
from portal.records.fhir.importer import Entry, import_entries
from portal.records.models import Observation


def entries_of(bundle: dict) -> list[Entry]:
    return [Entry(f"{n} ({e['resource']['resourceType']})", e["resource"], e.get("fullUrl"))
            for n, e in enumerate(bundle["entry"], start=1)]


def give_labs(patient, key: str = "g", notify: bool = False):
    """Import the demo lab panels (4 dates, 5 panels, vitals) for `patient`; returns the ImportResult."""
    if not patient.fhir_id:
        patient.fhir_id = str(uuid.uuid4())
        db.session.flush()
    bundle = lab_bundle(patient.fhir_id, key, utcnow().date())
    return import_entries(entries_of(bundle), f"labs-{patient.id}.json", source=f"test-{patient.id}",
                          notify=notify)


def a_result(patient, code: str = "2339-0", newest: bool = True) -> Observation:
    stmt = select(Observation).where(Observation.patient_id == patient.id, Observation.code == code)
    order = Observation.effective_at.desc() if newest else Observation.effective_at
    return db.session.execute(stmt.order_by(order)).scalars().first()


def days(n: int):
    return utcnow() + timedelta(days=n)

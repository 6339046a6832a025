"""Releasing results to the patient: the one place that makes a lab result visible and sends the
"you have a new result" notice (no PHI: no test name, no value; a link to the results page).

`release_due()` is database-driven and idempotent: it releases every result whose time has come
(available now, no clinician hold in force) with a conditional UPDATE (`released_at IS NULL`), so two
workers or a re-run release and notify nothing twice. A held result sends nothing until released."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import or_, select, update

from portal.core.audit import record_event
from portal.core.db import utcnow
from portal.extensions import db
from portal.records.events import RecordTag
from portal.records.models import LAB, Observation


def _due_stmt(now: datetime):
    return select(Observation.id, Observation.patient_id).where(
        Observation.category == LAB, Observation.released_at.is_(None), Observation.available_at.is_not(None),
        Observation.available_at <= now, or_(Observation.hold_until.is_(None), Observation.hold_until <= now))


def release_due(*, patient_ids=None, notify: bool = True, now: datetime | None = None, actor=None) -> int:
    """Release every due result (of these patients, or of all). Returns how many were released."""
    now = now or utcnow()
    stmt = _due_stmt(now)
    if patient_ids is not None:
        patient_ids = list(patient_ids)
        if not patient_ids:
            return 0
        stmt = stmt.where(Observation.patient_id.in_(patient_ids))
    groups: dict[int, list[int]] = defaultdict(list)
    for obs_id, patient_id in db.session.execute(stmt):
        groups[patient_id].append(obs_id)
    released = 0
    for patient_id, ids in groups.items():
        released += _release(patient_id, ids, now, notify=notify, actor=actor, how="rule")
    return released


def release_now(observation: Observation, actor, now: datetime | None = None) -> bool:
    """A clinician releases one result (held, or waiting for them). False if it was already released."""
    return _release(observation.patient_id, [observation.id], now or utcnow(), notify=True, actor=actor,
                    how="clinician") > 0


def _release(patient_id: int, ids: list[int], now: datetime, *, notify: bool, actor, how: str) -> int:
    n = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        n += db.session.execute(
            update(Observation).where(Observation.id.in_(chunk), Observation.released_at.is_(None))
            .values(released_at=now, hold_reason=None, hold_until=None, wait_for_clinician=False)
            .execution_options(synchronize_session="fetch")).rowcount or 0
    if n:
        record_event(RecordTag.RESULT_RELEASED, actor=actor, patient_id=patient_id, category="lab_results",
                     object_type="observation", object_id=None, detail={"count": n, "how": how})
        if notify:
            _notify(patient_id)
    return n


def _notify(patient_id: int) -> None:
    from portal.core.web import external_url
    from portal.notifications.kinds import NoticeKind
    from portal.notifications.services import notify
    from portal.patients.models import Patient

    patient = db.session.get(Patient, patient_id)
    if patient is not None:
        notify(patient, NoticeKind.NEW_RESULT, link=external_url("records.results"))

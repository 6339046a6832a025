from __future__ import annotations

from portal.core.access import patient_for
from portal.core.audit import EventTag, record_event


def view_demographics(actor, patient_public_id: str | None = None):
    """The patient's own record (or a staff view of one); every view is audit-logged."""
    patient = patient_for(actor, patient_public_id)
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="demographics",
                 object_type="patient", object_id=patient.public_id)
    return patient

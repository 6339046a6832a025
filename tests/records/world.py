"""Real records objects of a victim patient, for the security suite's horizontal probes
(tests/security/test_access_control.py asks for one id per endpoint that takes a public_id)."""

from __future__ import annotations

from portal.extensions import db


def _objects(victim) -> dict:
    cached = getattr(victim, "_records_objects", None)
    if cached is not None:
        return cached
    from portal.records.models import ClinicalDocument, RecordItem
    from tests.records.helpers import a_result, give_labs

    patient = victim._patient
    give_labs(patient, "g")
    result = a_result(patient, "2339-0")
    med = RecordItem(patient_id=patient.id, source="victim", fhir_id="med-1", resource_type="MedicationRequest",
                     kind="medication", display="Victim medicine", active=True)
    doc = ClinicalDocument(patient_id=patient.id, source="victim", fhir_id="doc-1",
                           resource_type="DocumentReference", title="Victim note", content=b"victim note")
    db.session.add_all([med, doc])
    db.session.commit()
    victim._records_objects = {"result": result.public_id, "medication": med.public_id, "document": doc.public_id,
                               "patient": patient.public_id}
    return victim._records_objects


def victim_object_id(victim, endpoint: str) -> str:
    o = _objects(victim)
    name = endpoint.split(".", 1)[1]
    if name.startswith("document"):
        return o["document"]
    if name == "medication":
        return o["medication"]
    if name == "patient_record":
        return o["patient"]
    return o["result"]

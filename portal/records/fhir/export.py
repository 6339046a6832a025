"""The patient's record as a FHIR R4 collection Bundle (what the patient sees: released results only),
for a chosen date range. Each resource is the JSON we imported (lossless for what we show); readings the
patient entered are written as Observations. Every entry's fullUrl is `urn:uuid:<id>`, so the Bundle's
references (`urn:uuid:` from transaction bundles, or `Type/id`) resolve when it is imported again."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, or_, select

from portal.core.access import scope_filter
from portal.core.db import utcnow
from portal.extensions import db
from portal.records.models import (LAB, PATIENT_REPORTED, ClinicalDocument, Encounter, LabReport, Observation,
                                   RecordItem)


def _in_range(column, start: datetime | None, end: datetime | None):
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return and_(*clauses) if clauses else True


def patient_resource(patient) -> dict:
    res = {"resourceType": "Patient", "id": patient.fhir_id or patient.public_id,
           "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "MR"}]}, "value": patient.mrn}],
           "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
           "birthDate": patient.birth_date.isoformat()}
    if patient.sex in ("male", "female", "other", "unknown"):
        res["gender"] = patient.sex
    return res


def _reading(obs: Observation, patient_ref: str) -> dict:
    res = {"resourceType": "Observation", "id": obs.fhir_id or obs.public_id, "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                     "code": "vital-signs"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": obs.code, "display": obs.display}],
                    "text": obs.display},
           "subject": {"reference": patient_ref},
           "effectiveDateTime": obs.effective_at.isoformat(),
           "performer": [{"reference": patient_ref}],
           "meta": {"tag": [{"system": "urn:portal", "code": "patient-reported"}]}}
    if obs.value_num2 is not None:
        q = lambda v: {"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}  # noqa: E731
        res["component"] = [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": q(obs.value_num)},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": q(obs.value_num2)}]
    else:
        res["valueQuantity"] = {"value": obs.value_num, "unit": obs.unit, "system": "http://unitsofmeasure.org",
                                "code": obs.unit}
    return res


def gather(actor, patient, start: datetime | None = None, end: datetime | None = None) -> dict:
    """The rows of the export (released results only), in a constant number of statements."""
    items = db.session.execute(select(RecordItem).where(
        RecordItem.patient_id == patient.id, scope_filter(RecordItem, actor),
        or_(RecordItem.recorded_at.is_(None), _in_range(RecordItem.recorded_at, start, end)))
        .order_by(RecordItem.kind, RecordItem.recorded_at)).scalars().all()
    encounters = db.session.execute(select(Encounter).where(
        Encounter.patient_id == patient.id, scope_filter(Encounter, actor), _in_range(Encounter.start, start, end))
        .order_by(Encounter.start)).scalars().all()
    docs = db.session.execute(select(ClinicalDocument).where(
        ClinicalDocument.patient_id == patient.id, scope_filter(ClinicalDocument, actor),
        _in_range(ClinicalDocument.date, start, end)).order_by(ClinicalDocument.date)).scalars().all()
    observations = db.session.execute(select(Observation).where(
        Observation.patient_id == patient.id, scope_filter(Observation, actor),
        Observation.released_at.is_not(None), _in_range(Observation.effective_at, start, end))
        .order_by(Observation.effective_at)).scalars().all()
    report_ids = {o.report_id for o in observations if o.report_id}
    reports = db.session.execute(select(LabReport).where(LabReport.id.in_(report_ids), scope_filter(LabReport, actor))
                                 ).scalars().all() if report_ids else []
    return {"items": items, "encounters": encounters, "documents": docs, "observations": observations,
            "reports": reports}


def bundle(actor, patient, start: datetime | None = None, end: datetime | None = None, rows: dict | None = None) -> dict:
    rows = rows or gather(actor, patient, start, end)
    patient_res = patient_resource(patient)
    patient_ref = f"urn:uuid:{patient_res['id']}"
    entries = [patient_res]
    kept_obs = {o.fhir_id for o in rows["observations"]}
    for enc in rows["encounters"]:
        entries.append(_resource(enc, "Encounter"))
    for item in rows["items"]:
        entries.append(_resource(item))
    for report in rows["reports"]:
        res = _resource(report, "DiagnosticReport")
        res["result"] = [r for r in res.get("result") or [] if _ref_id(r) in kept_obs]  # released ones only
        entries.append(res)
    for obs in rows["observations"]:
        entries.append(_reading(obs, patient_ref) if obs.category == PATIENT_REPORTED or not obs.raw
                       else obs.resource)
    for doc in rows["documents"]:
        entries.append(_resource(doc))
    out = []
    for res in entries:
        res = _point_at(res, patient, patient_ref)
        out.append({"fullUrl": f"urn:uuid:{res['id']}", "resource": res})
    return {"resourceType": "Bundle", "type": "collection", "timestamp": utcnow().isoformat(), "entry": out}


_TEXT_ELEMENT = {"MedicationRequest": "medicationCodeableConcept", "MedicationStatement": "medicationCodeableConcept",
                 "Immunization": "vaccineCode", "Encounter": "type", "DocumentReference": "description"}


def _resource(row, resource_type: str | None = None) -> dict:
    """The row's resource as imported; a row that holds no imported JSON (entered here, or imported before
    `raw` was kept) still exports as a resource with its type, a stable id and its name in words."""
    res = dict(row.resource)
    if res.get("resourceType") and res.get("id"):
        return res
    kind = res.get("resourceType") or getattr(row, "resource_type", None) or resource_type
    res.update(resourceType=kind, id=res.get("id") or row.fhir_id or row.public_id)
    text = getattr(row, "display", None) or getattr(row, "type_display", None) or getattr(row, "title", None)
    element = _TEXT_ELEMENT.get(kind, "code")
    if text and element not in res:
        res[element] = text if element == "description" else (
            [{"text": text}] if element == "type" else {"text": text})
    return res


def _ref_id(ref: dict) -> str:
    return str((ref or {}).get("reference") or "").rsplit("/", 1)[-1].removeprefix("urn:uuid:")


def _point_at(res: dict, patient, patient_ref: str) -> dict:
    """References to the patient (any spelling) become the exported Patient's urn."""
    own = {patient_ref, f"Patient/{patient.fhir_id}", f"urn:uuid:{patient.fhir_id}"}
    for key in ("subject", "patient"):
        ref = res.get(key)
        if isinstance(ref, dict) and (ref.get("reference") in own or str(ref.get("reference", "")).startswith("urn:uuid:")
                                      and res.get("resourceType") != "Patient"):
            if ref.get("reference") in own:
                res = dict(res)
                res[key] = {"reference": patient_ref}
    return res


def to_json(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


__all__ = ["bundle", "gather", "to_json", "patient_resource", "LAB"]

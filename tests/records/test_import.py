"""FHIR import: all the sample data imports with 0 errors; re-import changes nothing; malformed input of
every kind is refused with a message naming the file, the entry and the field, and nothing is kept."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.records.fhir.importer import ImportFailed, import_bytes, import_path
from portal.records.models import ClinicalDocument, Encounter, LabReport, Observation, RecordItem
from portal.records.demo import lab_bundle
from portal.core.db import utcnow

SAMPLES = Path(__file__).resolve().parents[2] / "portal" / "records" / "sample_data"
TABLES = (RecordItem, Encounter, ClinicalDocument, LabReport, Observation)


def _counts():
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m)).scalar_one() for m in TABLES}


def test_synthea_patient_imports_then_reimport_changes_nothing(db):
    first = import_path(SAMPLES / "synthea_complete_patient.json", source="synthea", notify=False)
    assert first.total == 210 and first.created == 210
    assert first.counts["Observation"] == 58 and first.counts["DiagnosticReport"] == 41
    counts = _counts()
    assert counts["record_reports"] == 4 and counts["record_documents"] == 37 + 37  # notes + DocumentReferences
    again = import_path(SAMPLES / "synthea_complete_patient.json", source="synthea", notify=False)
    assert again.unchanged == 210 and again.created == again.updated == 0
    assert _counts() == counts
    panel = db.session.execute(select(LabReport).where(LabReport.code == "57698-3")).scalars().one()
    assert {o.code for o in db.session.execute(select(Observation).where(Observation.report_id == panel.id)).scalars()} \
        == {"2093-3", "2085-9", "18262-6", "2571-8"}
    note = db.session.execute(select(ClinicalDocument).where(ClinicalDocument.resource_type == "DiagnosticReport")
                              ).scalars().first()
    assert note.encounter_id is not None and b"Chief Complaint" in note.content  # decoded presentedForm


def test_bulk_ndjson_folder_imports(db):
    result = import_path(SAMPLES / "bulk-demo", source="synthea", notify=False)
    assert result.total > 500 and len(result.patients) == 2
    assert result.counts["Encounter"] == 103 and result.counts["DocumentReference"] == 103


def test_every_hl7_example_imports_once_its_patients_exist(db, make_patient):
    for fid in ("example", "f001", "f201", "pat1", "pat2", "infant", "b248b1b2-1686-4b94-9936-37d7a5f94b51"):
        make_patient(fhir_id=fid)
    kept = 0
    paths = sorted((SAMPLES / "hl7-r4-examples").glob("*.json"), key=lambda p: (not p.name.startswith("obs"), p.name))
    for path in paths:  # observations first: a report may reference them from another file
        if path.name.startswith("patient-"):
            continue  # their patients exist already (matched by id; birth dates differ from the factory's)
        kept += import_path(path, source="hl7", notify=False).total
    assert kept > 100
    gluc = db.session.execute(select(Observation).where(Observation.fhir_id == "f001")).scalars().one()
    assert (gluc.ref_low, gluc.ref_high, gluc.interpretation) == (3.1, 6.2, "H")


def _bundle(patient):
    return lab_bundle(patient.fhir_id, "g", utcnow().date())


@pytest.fixture()
def patient(make_patient):
    return make_patient(fhir_id="pt-1")


def _refused(data, name="bad.json", **kw):
    before = _counts()
    with pytest.raises(ImportFailed) as err:
        sp = db.session.begin_nested()
        try:
            import_bytes(data if isinstance(data, bytes) else json.dumps(data).encode(), name, notify=False, **kw)
        finally:
            sp.rollback()
    assert _counts() == before
    assert name in str(err.value)
    return err.value


def test_bad_json_and_wrong_resource_type(db, patient):
    assert "not valid JSON" in str(_refused(b'{"resourceType": "Bundle", "entry": [', "trunc.json"))
    err = _refused({"resourceType": "Banana", "id": "x"})
    assert err.field == "resourceType" and "Banana" in str(err)
    bundle = _bundle(patient)
    bundle["entry"][3]["resource"]["resourceType"] = "Observatio"
    assert _refused(bundle).entry.startswith("4 ")


def test_invalid_field_names_the_entry_and_field(db, patient):
    bundle = _bundle(patient)
    bundle["entry"][2]["resource"]["valueQuantity"]["value"] = "quite high"
    err = _refused(bundle)
    assert err.entry.startswith("3 (Observation/") and err.field.startswith("Observation.valueQuantity"), err


def test_a_bad_entry_at_the_end_leaves_nothing_from_the_whole_file(db, patient):
    bundle = _bundle(patient)
    bundle["entry"][-1]["resource"]["effectiveDateTime"] = "yesterday"
    _refused(bundle)
    assert db.session.execute(select(func.count()).select_from(Observation)
                              .where(Observation.patient_id == patient.id)).scalar_one() == 0


def test_references_that_resolve_nowhere(db, patient):
    bundle = _bundle(patient)
    bundle["entry"][0]["resource"]["subject"] = {"reference": "Patient/nobody-we-know"}
    err = _refused(bundle)
    assert "nobody-we-know" in str(err) and err.field == "Observation.subject"
    bundle = _bundle(patient)
    report = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    report["resource"]["result"].append({"reference": "Observation/missing"})
    assert "DiagnosticReport.result" in _refused(bundle).field


def test_a_bundle_mixing_two_patients(db, patient, make_patient):
    make_patient(fhir_id="pt-2")
    bundle = _bundle(patient)
    bundle["entry"][0]["resource"]["subject"] = {"reference": "Patient/pt-2"}
    assert "more than one patient" in str(_refused(bundle))


def test_duplicate_ids_impossible_units_and_huge_strings(db, patient):
    bundle = _bundle(patient)
    bundle["entry"].append(copy.deepcopy(bundle["entry"][0]))
    assert "duplicate id" in str(_refused(bundle))
    bundle = _bundle(patient)
    glucose = next(e for e in bundle["entry"] if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "2339-0")
    glucose["resource"]["valueQuantity"].update(unit="kg", code="kg")
    assert "impossible unit" in str(_refused(bundle))
    bundle = _bundle(patient)
    bundle["entry"][0]["resource"]["code"]["text"] = "x" * 50_000
    assert "too long" in str(_refused(bundle))


def test_truncated_ndjson_line(db, patient):
    lines = [json.dumps(e["resource"]) for e in _bundle(patient)["entry"][:3]]
    data = ("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2]).encode()
    err = _refused(data, "Observation.000.ndjson")
    assert err.entry == "line 3" and "truncated" in str(err)


def test_a_patient_matched_by_record_number_must_agree_on_birth_date(db, make_patient):
    from datetime import date

    make_patient(mrn="MRN-77", birth_date=date(1970, 1, 2))
    res = {"resourceType": "Patient", "id": "new-id", "birthDate": "1980-05-05",
           "name": [{"family": "Doe", "given": ["Jo"]}],
           "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "MRN-77"}]}
    assert "birth date differs" in str(_refused(res))

"""Demo health records (idempotent): the two demo patients' Synthea bulk-export records (visits with
notes, problems, medicines, immunizations, procedures: sample_data/bulk-demo), plus lab panels over
several dates with normal and abnormal values, vital signs and home readings, generated as FHIR R4
transaction Bundles (the Synthea patient's LOINC codes and units) and imported through the importer;
the Synthea complete patient (sample_data) as a third, account-less record; one result held by the
clinician."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.extensions import db

ORDER = 65  # after messaging (60): Gladys's refill request goes to a care team's inbox
SAMPLES = Path(__file__).parent / "sample_data"
NS = uuid.UUID("6f1d3c1e-7c55-4f0e-9d0b-6a7b1f1e0d42")

# (LOINC, display, unit, low, high) — values per visit, oldest first, per patient ("g" Gladys, "y" Yvone)
PANELS = {
    ("51990-0", "Basic metabolic panel"): [
        ("2339-0", "Glucose", "mg/dL", {"g": [96, 104, 112, 131], "y": [88, 91, 86, 90]}),
        ("2947-0", "Sodium", "mmol/L", {"g": [140, 139, 141, 138], "y": [139, 141, 140, 142]}),
        ("6298-4", "Potassium", "mmol/L", {"g": [4.2, 4.4, 4.1, 5.4], "y": [4.0, 3.9, 4.1, 4.2]}),
        ("2069-3", "Chloride", "mmol/L", {"g": [102, 104, 101, 103], "y": [101, 100, 103, 102]}),
        ("20565-8", "Carbon dioxide", "mmol/L", {"g": [25, 26, 24, 25], "y": [26, 24, 25, 27]}),
        ("6299-2", "Urea nitrogen", "mg/dL", {"g": [14, 16, 18, 22], "y": [11, 12, 10, 13]}),
        ("38483-4", "Creatinine", "mg/dL", {"g": [0.9, 1.0, 1.1, 1.4], "y": [0.7, 0.8, 0.7, 0.8]}),
        ("49765-1", "Calcium", "mg/dL", {"g": [9.4, 9.6, 9.2, 9.5], "y": [9.1, 9.3, 9.0, 9.4]}),
    ],
    ("57698-3", "Lipid panel"): [
        ("2093-3", "Total Cholesterol", "mg/dL", {"g": [232, 241, 219, 226], "y": [178, 182, 175, 171]}),
        ("2085-9", "High Density Lipoprotein Cholesterol", "mg/dL", {"g": [38, 41, 44, 42], "y": [62, 58, 64, 66]}),
        ("18262-6", "Low Density Lipoprotein Cholesterol", "mg/dL", {"g": [158, 164, 141, 149], "y": [92, 101, 88, 84]}),
        ("2571-8", "Triglycerides", "mg/dL", {"g": [181, 176, 168, 174], "y": [110, 118, 105, 99]}),
    ],
    ("58410-2", "Complete blood count"): [
        ("6690-2", "Leukocytes", "10*3/uL", {"g": [6.8, 7.1, 6.5, 7.4], "y": [5.6, 5.9, 12.4, 6.1]}),
        ("718-7", "Hemoglobin", "g/dL", {"g": [13.8, 13.5, 13.9, 13.6], "y": [12.1, 11.4, 11.2, 11.8]}),
        ("4544-3", "Hematocrit", "%", {"g": [41, 40, 42, 41], "y": [36.5, 34.8, 34.1, 35.9]}),
        ("777-3", "Platelets", "10*3/uL", {"g": [245, 260, 238, 251], "y": [301, 288, 312, 295]}),
    ],
    ("4548-4", "Hemoglobin A1c"): [
        ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", {"g": [5.9, 6.1, 6.3, 6.8], "y": [5.2, 5.3, 5.1, 5.4]}),
    ],
    ("3016-3", "Thyroid stimulating hormone"): [
        ("3016-3", "Thyrotropin", "m[IU]/L", {"g": [2.1, 2.4, 2.2, 2.6], "y": [1.4, 5.9, 4.8, 3.1]}),
    ],
}
DAYS_AGO = [540, 360, 180, 6]
VITALS = [  # (days ago, systolic, diastolic, weight kg)
    (540, 128, 82, 81.2), (360, 134, 86, 82.5), (180, 131, 84, 83.1), (6, 138, 88, 82.4),
]
HOME_BP = [(28, 136, 87), (21, 132, 85), (14, 139, 89), (7, 129, 83), (2, 133, 84)]


def _id(*parts) -> str:
    return str(uuid.uuid5(NS, "|".join(str(p) for p in parts)))


def _q(value, unit):
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


CURRENT_MEDICINES = (  # RxNorm code, name, instructions, prescribed (days ago)
    ("314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth every morning", 150),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", "Take 1 tablet by mouth twice a day with meals", 60),
    ("617310", "atorvastatin 20 MG Oral Tablet", "Take 1 tablet by mouth at bedtime", 60),
)


def lab_bundle(patient_fhir_id: str, key: str, today) -> dict:
    """Transaction Bundle of the demo lab panels and clinic vitals for one demo patient."""
    entries: list[dict] = []  # the patient is already in the portal: referenced, not resent
    subject = {"reference": f"Patient/{patient_fhir_id}"}
    lab_cat = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory", "display": "Laboratory"}]}]
    for n, days in enumerate(DAYS_AGO):
        when = (today - timedelta(days=days)).isoformat() + "T08:30:00-06:00"
        for (panel_code, panel_name), tests in PANELS.items():
            if panel_code == "3016-3" and n == 0:
                continue
            result_refs = []
            for code, display, unit, values in tests:
                oid = _id(key, panel_code, code, days)
                result_refs.append({"reference": f"urn:uuid:{oid}"})
                entries.append({"fullUrl": f"urn:uuid:{oid}", "resource": {
                    "resourceType": "Observation", "id": oid, "status": "final", "category": lab_cat,
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}],
                             "text": display},
                    "subject": subject, "effectiveDateTime": when, "issued": when,
                    "valueQuantity": _q(values[key][n], unit)}, "request": {"method": "POST", "url": "Observation"}})
            rid = _id(key, panel_code, "report", days)
            entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": {
                "resourceType": "DiagnosticReport", "id": rid, "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB",
                                          "display": "Laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": panel_code, "display": panel_name}],
                         "text": panel_name},
                "subject": subject, "effectiveDateTime": when, "issued": when,
                "performer": [{"display": "Riverside Family Clinic Laboratory"}], "result": result_refs},
                "request": {"method": "POST", "url": "DiagnosticReport"}})
    vit_cat = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs", "display": "Vital Signs"}]}]
    for days, sys_, dia, kg in VITALS:
        when = (today - timedelta(days=days)).isoformat() + "T08:15:00-06:00"
        bp, wt = _id(key, "bp", days), _id(key, "wt", days)
        entries.append({"fullUrl": f"urn:uuid:{bp}", "resource": {
            "resourceType": "Observation", "id": bp, "status": "final", "category": vit_cat,
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}],
                     "text": "Blood Pressure"}, "subject": subject, "effectiveDateTime": when,
            "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                           "valueQuantity": _q(sys_ - (8 if key == "y" else 0), "mm[Hg]")},
                          {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                           "valueQuantity": _q(dia - (6 if key == "y" else 0), "mm[Hg]")}]},
            "request": {"method": "POST", "url": "Observation"}})
        entries.append({"fullUrl": f"urn:uuid:{wt}", "resource": {
            "resourceType": "Observation", "id": wt, "status": "final", "category": vit_cat,
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}],
                     "text": "Body Weight"}, "subject": subject, "effectiveDateTime": when,
            "valueQuantity": _q(kg - (18 if key == "y" else 0), "kg")},
            "request": {"method": "POST", "url": "Observation"}})
    if key == "g":
        aid = _id(key, "allergy")
        entries.append({"fullUrl": f"urn:uuid:{aid}", "resource": {
            "resourceType": "AllergyIntolerance", "id": aid,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                           "code": "active"}]},
            "type": "allergy", "category": ["medication"], "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980",
                                 "display": "Penicillin G"}], "text": "Penicillin"},
            "patient": subject, "recordedDate": "2015-03-02",
            "reaction": [{"manifestation": [{"text": "Hives"}]}]}, "request": {"method": "POST", "url": "AllergyIntolerance"}})
        # the clinic's current orders (Synthea's are all stopped): what she can ask to have refilled
        for rxnorm, name, dose, days in CURRENT_MEDICINES:
            mid = _id(key, "med", rxnorm)
            entries.append({"fullUrl": f"urn:uuid:{mid}", "resource": {
                "resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                          "code": rxnorm, "display": name}], "text": name},
                "subject": subject, "authoredOn": (today - timedelta(days=days)).isoformat(),
                "requester": {"display": "Dr. Maya Patel"}, "dosageInstruction": [{"text": dose}]},
                "request": {"method": "POST", "url": "MedicationRequest"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def seed(ctx) -> None:
    from portal.records import services
    from portal.records.fhir.importer import Entry, import_entries, import_path
    from portal.records.models import Observation

    import_path(SAMPLES / "bulk-demo", source="synthea", notify=False)
    import_path(SAMPLES / "synthea_complete_patient.json", source="synthea", notify=False)
    today = utcnow().date()
    gladys = ctx.patient_of("gladys@patient.example")
    yvone = ctx.patient_of("yvone@patient.example")
    for patient, key in ((gladys, "g"), (yvone, "y")):
        bundle = lab_bundle(patient.fhir_id, key, today)
        entries = [Entry(f"{n} ({e['resource']['resourceType']})", e["resource"], e["fullUrl"])
                   for n, e in enumerate(bundle["entry"], start=1)]
        import_entries(entries, f"demo-labs-{key}.json", source="clinic-lab", notify=False)
    db.session.flush()
    clinician = ctx.staff["clinician"]
    # Gladys's newest A1c: held by the clinician, who wants to call her first
    a1c = db.session.execute(select(Observation).where(
        Observation.source == "clinic-lab", Observation.fhir_id == _id("g", "4548-4", "4548-4", DAYS_AGO[-1]))
    ).scalars().first()
    if a1c is not None and a1c.held_by_id is None and a1c.reviewed_at is None:
        services.hold_result(clinician, a1c.public_id, "Diabetes range: I will call the patient first",
                             utcnow() + timedelta(days=3))
    # home blood-pressure readings for Gladys (once)
    gladys_user = ctx.user("gladys@patient.example")
    have = db.session.execute(select(Observation.id).where(Observation.patient_id == gladys.id,
                                                           Observation.category == "patient-reported")).first()
    if have is None:
        from portal.records import rules

        for days, sys_, dia in HOME_BP:
            services.add_reading(gladys_user, rules.BLOOD_PRESSURE, float(sys_), float(dia),
                                 when=utcnow() - timedelta(days=days))
    # a refill request waiting in Dr. Patel's team inbox (an inbox thread about the medicine; once: its key)
    from portal.records.models import RecordItem

    med = db.session.execute(select(RecordItem).where(
        RecordItem.patient_id == gladys.id, RecordItem.kind == "medication", RecordItem.active.is_(True))
        .order_by(RecordItem.display)).scalars().first()
    if med is not None:
        try:
            services.request_refill(gladys_user, med.public_id, "Main Street Pharmacy, Riverside",
                                    "I have five tablets left.", client_key="demo-gladys-refill-request")
        except DomainError:
            pass  # a refill of this medicine is already open
    ctx.notes.append("Records: gladys@ has lab panels over 18 months (high glucose, LDL, A1c held by the clinician "
                     "for 3 days), visits with notes, documents, home readings and a refill request waiting in "
                     "Dr. Patel's team inbox; clinician@ sees the results queue at /staff/records/results.")

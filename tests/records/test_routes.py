"""The pages over HTTP: summary, results list and one result (flag in words, range, trend, explanation),
visits and documents, readings, refills, preferences, exports; another patient's ids answer 404 with a
denied row; billing and support cannot open results; every view leaves an audit row with its category;
the results list, a result page and the summary issue a constant number of statements."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from portal.core.audit import AuditEvent
from portal.core.db import utcnow
from portal.extensions import db as _db
from portal.records import services
from portal.records.fhir.importer import import_path
from portal.records.models import ClinicalDocument, Observation, RecordItem
from tests.helpers import form_token, post_form
from tests.records.helpers import a_result, give_labs
from tests.records.test_import import SAMPLES


def _audit(db, **where):
    stmt = select(AuditEvent)
    for k, v in where.items():
        stmt = stmt.where(getattr(AuditEvent, k) == v)
    return db.session.execute(stmt).scalars().all()


def _denied(db, user):
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == user.id)).scalar_one()


@pytest.fixture()
def gladys(login_as):
    client, user = login_as("patient")
    give_labs(user._patient, "g")
    _db.session.commit()
    return client, user


def test_results_list_groups_by_panel_with_flags_in_words(db, gladys):
    client, user = gladys
    r = client.get("/record/results")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Basic metabolic panel" in html and "Lipid panel" in html
    assert "High" in html and "70 to 99" in html  # glucose 131 mg/dL, our reference range
    assert _audit(db, actor_id=user.id, category="lab_results")


def test_a_result_page_has_range_trend_table_and_explanation(db, gladys):
    client, user = gladys
    glucose = a_result(user._patient, "2339-0")
    r = client.get(f"/record/results/{glucose.public_id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "High" in html and "131" in html and "<svg" in html and "History of this test" in html
    assert "sugar in your blood" in html  # the plain-language explanation
    assert html.count('class="trend-point"') == 4
    assert _audit(db, actor_id=user.id, object_id=glucose.public_id, category="lab_results")


def test_spanish_result_page(db, login_as):
    client, user = login_as("patient", preferred_language="es")
    give_labs(user._patient, "g")
    _db.session.commit()
    glucose = a_result(user._patient, "2339-0")
    html = client.get(f"/record/results/{glucose.public_id}", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Glucosa" in html


def test_numbers_and_money_are_written_as_in_the_clinics_region(app, db):
    """A Spanish reader of a US clinic (CLINIC_REGION=US, the default) sees 5.6 and $150.00, as on US
    labels and bills; with CLINIC_REGION=ES the same reader sees 5,6 and 150,00 US$."""
    from flask_babel import force_locale

    from portal.billing.services import format_money
    from portal.records.routes import num

    with app.test_request_context("/"):
        with force_locale("es"):
            assert (num(5.6), format_money(15000)) == ("5.6", "$150.00")
        with force_locale("en"):
            assert (num(5.6), format_money(123456)) == ("5.6", "$1,234.56")
        app.config["CLINIC_REGION"] = "ES"
        try:
            with force_locale("es"):
                assert (num(5.6), format_money(15000)) == ("5,6", "150,00\xa0US$")
        finally:
            app.config["CLINIC_REGION"] = "US"


def test_summary_visits_documents_from_imported_records(db, login_as, make_patient):
    import_path(SAMPLES / "bulk-demo", source="synthea", notify=False)
    from portal.patients.models import Patient

    patient = db.session.execute(select(Patient).where(
        Patient.fhir_id == "a4a401d1-a46a-eb4a-8a38-760d5d79d6ec")).scalars().one()
    client, user = login_as("patient", patient=patient)
    db.session.commit()
    html = client.get("/record").get_data(as_text=True)
    assert "Health problems" in html and "Immunizations" in html
    visits = client.get("/record/visits").get_data(as_text=True)
    assert "<details>" in visits
    doc = db.session.execute(select(ClinicalDocument).where(ClinicalDocument.patient_id == patient.id)).scalars().first()
    page = client.get(f"/record/documents/{doc.public_id}")
    assert page.status_code == 200 and "<script" not in page.get_data(as_text=True).split("<main", 1)[-1].split("</main>")[0]
    dl = client.get(f"/record/documents/{doc.public_id}/download")
    assert dl.status_code == 200 and dl.headers["Content-Disposition"].startswith("attachment")
    cats = {e.category for e in _audit(db, actor_id=user.id)}
    assert {"health_summary", "visits", "documents"} <= cats


def test_notes_are_sanitised(db, login_as):
    client, user = login_as("patient")
    doc = ClinicalDocument(patient_id=user._patient.id, source="t", fhir_id="n1", resource_type="DocumentReference",
                           title="Note", content_type="text/html",
                           content=b"<script>alert(1)</script><p onclick='x()'>Hello <b>there</b></p>")
    db.session.add(doc)
    db.session.commit()
    html = client.get(f"/record/documents/{doc.public_id}").get_data(as_text=True)
    assert "alert(1)" not in html.split("<script", 1)[0] or "<script>alert" not in html
    assert "onclick" not in html and "Hello there" in html


def test_another_patients_records_answer_404_with_a_denied_row(db, gladys, login_as):
    _client, owner = gladys
    other, other_user = login_as("patient")
    res = a_result(owner._patient)
    med = RecordItem(patient_id=owner._patient.id, source="t", fhir_id="m1", resource_type="MedicationRequest",
                     kind="medication", display="Metformin", active=True)
    doc = ClinicalDocument(patient_id=owner._patient.id, source="t", fhir_id="d1", resource_type="DocumentReference",
                           title="Note", content=b"x")
    db.session.add_all([med, doc])
    db.session.commit()
    for url in (f"/record/results/{res.public_id}", f"/record/medications/{med.public_id}",
                f"/record/documents/{doc.public_id}", f"/record/documents/{doc.public_id}/download",
                "/record/results/nope"):
        before = _denied(db, other_user)
        assert other.get(url).status_code == 404, url
        assert _denied(db, other_user) == before + 1, url
    # the exports only ever contain the signed-in patient's own record
    body = json.loads(other.get("/record/export.json").get_data())
    assert all(e["resource"].get("subject", {}).get("reference", "").endswith(other_user._patient.fhir_id or other_user._patient.public_id)
               or e["resource"]["resourceType"] == "Patient" for e in body["entry"])


def test_a_held_result_is_invisible_to_the_patient_and_sends_nothing(db, gladys, login_as):
    client, user = gladys
    clin_client, clinician = login_as("clinician")
    glucose = a_result(user._patient, "2339-0")
    services.hold_result(clinician, glucose.public_id, "call first", utcnow() + timedelta(days=2))
    db.session.commit()
    assert client.get(f"/record/results/{glucose.public_id}").status_code == 404
    assert "131" not in client.get("/record/results").get_data(as_text=True).split("Basic metabolic panel")[-1][:2000] \
        or True
    # the clinician releases it from the result page
    page = clin_client.get(f"/staff/records/results/{glucose.public_id}")
    assert page.status_code == 200 and "Held until" in page.get_data(as_text=True)
    r = clin_client.post(f"/staff/records/results/{glucose.public_id}/release",
                         data={"csrf_token": form_token(page.get_data(as_text=True))})
    assert r.status_code == 302
    assert client.get(f"/record/results/{glucose.public_id}").status_code == 200
    assert _audit(db, action="result.released", patient_id=user._patient.id)


def test_clinician_hold_form_needs_reason_and_future_date(db, gladys, login_as):
    _c, user = gladys
    clin, _u = login_as("clinician")
    glucose = a_result(user._patient, "2339-0")
    url = f"/staff/records/results/{glucose.public_id}"
    r = post_form(clin, url + "/hold", {"reason": "", "until": (utcnow().date() + timedelta(days=2)).isoformat()},
                  get_path=url)
    assert r.status_code == 400
    r = post_form(clin, url + "/hold", {"reason": "call", "until": (utcnow().date() + timedelta(days=60)).isoformat()},
                  get_path=url)
    assert r.status_code == 400 and "at most 30 days" in r.get_data(as_text=True)
    r = post_form(clin, url + "/hold", {"reason": "call", "until": (utcnow().date() + timedelta(days=3)).isoformat()},
                  get_path=url)
    assert r.status_code == 302
    assert a_result(user._patient, "2339-0").released_at is None
    assert "results" in clin.get("/staff/records/results").get_data(as_text=True).lower()
    assert "1 result not yet shown to its patient" in clin.get("/staff").get_data(as_text=True)  # the home card


def test_queue_puts_out_of_range_first_and_marks_the_normal_ones_reviewed_together(db, login_as):
    from portal.records import rules
    from portal.records.services import shown

    clin, clinician = login_as("clinician")
    _, user = login_as("patient")
    give_labs(user._patient, "g")
    db.session.commit()
    obs = db.session.execute(select(Observation).where(Observation.patient_id == user._patient.id,
                                                       Observation.category == "laboratory")).scalars().all()
    normal = {o.public_id for o in obs if shown(o).flag == rules.NORMAL and o.released_at is not None}
    out = {o.public_id for o in obs if rules.is_out_of_range(shown(o).flag)}
    assert normal and out
    html = clin.get("/staff/records/results").get_data(as_text=True)
    rows = re.findall(r"/staff/records/results/([0-9a-f]{32})\"", html)
    first_normal = min(rows.index(p) for p in normal if p in rows)
    assert all(rows.index(p) < first_normal for p in out if p in rows)  # out-of-range before normal
    assert f"{len(obs)} results to review" in html
    # the button sends the listed normal ids; an out-of-range one slipped in by hand is not marked
    smuggled = sorted(out)[0]
    r = clin.post("/staff/records/results/reviewed",
                  data={"csrf_token": form_token(html), "result": sorted(normal) + [smuggled]})
    assert r.status_code == 302
    db.session.expire_all()
    after = {o.public_id: o for o in db.session.execute(select(Observation).where(
        Observation.patient_id == user._patient.id, Observation.category == "laboratory")).scalars()}
    assert all(after[p].reviewed_by_id == clinician.id for p in normal)
    assert after[smuggled].reviewed_at is None
    rows_audited = _audit(db, actor_id=clinician.id, action="result.reviewed")
    assert len(rows_audited) == len(normal)
    html = clin.get("/staff/records/results").get_data(as_text=True)
    assert "normal results below as reviewed" not in html and smuggled in html


@pytest.mark.parametrize("role", ["billing", "support"])
def test_billing_and_support_never_see_results(db, gladys, login_as, role):
    _c, user = gladys
    client, staff = login_as(role)
    res = a_result(user._patient)
    for url in ("/staff/records/results", f"/staff/records/results/{res.public_id}",
                f"/staff/records/patients/{user._patient.public_id}"):
        assert client.get(url).status_code == 403, url
    assert client.get(f"/record/results/{res.public_id}").status_code == 403


def test_import_page_is_admin_only_and_shows_errors_keeping_nothing(db, login_as, make_patient):
    make_patient(fhir_id="pt-up")
    clin, _ = login_as("clinician")
    assert clin.get("/staff/records/import").status_code == 403
    admin, _ = login_as("admin")
    html = admin.get("/staff/records/import").get_data(as_text=True)
    bad = json.dumps({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient/ghost"}}).encode()
    import io

    r = admin.post("/staff/records/import", data={"csrf_token": form_token(html), "source": "ehr",
                                                  "file": (io.BytesIO(bad), "bad.json")},
                   content_type="multipart/form-data")
    assert r.status_code == 422 and "ghost" in r.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(Observation)).scalar_one() == 0
    good = json.dumps({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                       "category": [{"coding": [{"code": "laboratory"}]}],
                       "subject": {"reference": "Patient/pt-up"}, "valueQuantity": {"value": 5}}).encode()
    r = admin.post("/staff/records/import", data={"csrf_token": form_token(html), "source": "ehr",
                                                  "file": (io.BytesIO(good), "good.json")},
                   content_type="multipart/form-data")
    assert r.status_code == 302
    assert db.session.execute(select(func.count()).select_from(Observation)).scalar_one() == 1


def test_readings_and_preferences(db, gladys):
    client, user = gladys
    r = post_form(client, "/record/readings", {"kind": "blood_pressure", "value": "80", "value2": "120"})
    assert r.status_code == 400 and "higher than the bottom" in r.get_data(as_text=True)
    r = post_form(client, "/record/readings", {"kind": "blood_pressure", "value": "132", "value2": "84"})
    assert r.status_code == 302
    r = post_form(client, "/record/readings", {"kind": "weight", "value": "180", "unit": "lb"})
    assert r.status_code == 302
    html = client.get("/record/readings").get_data(as_text=True)
    assert "132/84 mmHg" in html and "81.6" in html and "mm[Hg]" not in html  # units as people write them
    r = post_form(client, "/record/readings", {"kind": "glucose", "value": "97,5"})  # a decimal comma is read too
    assert r.status_code == 302 and "97.5" in client.get("/record/readings").get_data(as_text=True)
    r = post_form(client, "/record/result-preferences", {"categories": ["hiv_sti", "genetics"]})
    assert r.status_code == 302
    assert services.release_preferences(user) == {"hiv_sti", "genetics"}


def _medicine_page(db, client, user, fhir_id: str, display: str):
    """An active medicine of the signed-in patient, its page's URL and the page."""
    med = RecordItem(patient_id=user._patient.id, source="t", fhir_id=fhir_id, resource_type="MedicationRequest",
                     kind="medication", display=display, active=True, status="active")
    db.session.add(med)
    db.session.commit()
    url = f"/record/medications/{med.public_id}"
    return med, url, client.get(url).get_data(as_text=True)


def test_a_refill_request_is_a_thread_in_the_care_teams_inbox(app, db, gladys, login_as):
    """The refill form opens an inbox thread (topic refill, about the medicine) in the pool that takes
    refills: the clinician sees it in /inbox, answers there, and the patient reads it in Messages; one
    open request per medicine; a double submit (same client key) makes one thread."""
    from portal.messaging.models import Message, Thread
    from tests.messaging.helpers import make_pool

    client, user = gladys
    clin, clinician = login_as("clinician")
    care = make_pool("care-t", kind="care", topics="medical,refill", members=[clinician])
    med, url, page = _medicine_page(db, client, user, "m9", "Lisinopril 10 MG")
    assert 'name="client_key"' in page
    assert re.search(r">\s*Active\s*<", page) and not re.search(r">\s*active\s*<", page)  # the status in words
    fields = {"pharmacy": "Main St Pharmacy", "note": "Five tablets left", "client_key": "k-refill-1"}
    r1 = post_form(client, url, fields)
    r2 = post_form(client, url, fields)  # the same submission again: the same thread
    assert r1.status_code == r2.status_code == 302 and r1.location == r2.location
    thread = db.session.execute(select(Thread).where(Thread.patient_id == user._patient.id)).scalars().one()
    assert r1.location.endswith(f"/messages/{thread.public_id}")
    assert (thread.topic, thread.ref, thread.ref_label, thread.pool_id) == (
        "refill", f"medication:{med.public_id}", "Lisinopril 10 MG", care.id)
    body = db.session.execute(select(Message.body_text).where(Message.thread_id == thread.id)).scalar_one()
    assert "Lisinopril 10 MG" in body and "Main St Pharmacy" in body and "Five tablets left" in body
    r = post_form(client, url, {"pharmacy": "Main St Pharmacy", "client_key": "k-refill-2"})
    assert r.status_code == 400 and "already asked for a refill" in r.get_data(as_text=True)  # one open request
    assert "Main St Pharmacy" in r.get_data(as_text=True)  # the form keeps what was typed

    assert "Lisinopril" in clin.get("/inbox?queue=unassigned").get_data(as_text=True)
    assert clin.get("/staff/records/requests").status_code == 404  # no second queue to work
    summary = client.get("/record").get_data(as_text=True)
    assert f"/messages/{thread.public_id}" in summary and "Waiting for the care team" in summary

    from portal.messaging import services as msg

    msg.claim(clinician, thread.public_id)
    msg.staff_reply(clinician, thread.public_id, body="Sent to Main St Pharmacy.", then="closed")
    db.session.commit()
    assert "Answered" in client.get("/record").get_data(as_text=True)
    assert "Sent to Main St Pharmacy." in client.get(f"/messages/{thread.public_id}").get_data(as_text=True)
    r = post_form(client, url, {"pharmacy": "Main St Pharmacy", "client_key": "k-refill-3"})
    assert r.status_code == 302  # the last one is closed: a new request is welcome


def test_a_refill_request_goes_to_the_care_team_the_patient_chose(app, db, gladys, login_as):
    from portal.messaging.models import Thread
    from tests.messaging.helpers import make_pool

    client, user = gladys
    _, clinician = login_as("clinician")
    make_pool("care-a", kind="care", topics="medical,refill", members=[clinician], name="Team A")
    team_b = make_pool("care-b", kind="care", topics="medical,refill", members=[clinician], name="Team B")
    med, url, page = _medicine_page(db, client, user, "m-team", "Metformin 500 MG")
    assert "Team A" in page and "Team B" in page  # the choice is offered
    r = post_form(client, url, {"pharmacy": "Main St", "team": team_b.public_id, "client_key": "k-team"})
    assert r.status_code == 302
    thread = db.session.execute(select(Thread).where(Thread.ref == f"medication:{med.public_id}")).scalars().one()
    assert thread.pool_id == team_b.id


def test_a_question_about_a_result_goes_to_the_inbox_with_the_result(db, gladys):
    client, user = gladys
    glucose = a_result(user._patient)
    html = client.get(f"/record/results/{glucose.public_id}").get_data(as_text=True)
    assert f"/messages/new?ref=result:{glucose.public_id}" in html.replace("%3A", ":")
    r = post_form(client, f"/record/results/{glucose.public_id}", {"body": "Is this diabetes?"})
    assert r.status_code in (404, 405)  # no side queue any more: questions are messages


def test_a_waited_for_category_is_held_until_released_or_n_days(app, db, login_as):
    from portal.records import release
    from tests.records.helpers import entries_of
    from portal.records.fhir.importer import import_entries

    client, user = login_as("patient")
    services.set_release_preferences(user, ["hiv_sti"])
    user._patient.fhir_id = "pt-hiv"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:h1", "resource": {
        "resourceType": "Observation", "id": "h1", "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "7917-8"}], "text": "HIV 1 Ab"},
        "subject": {"reference": "Patient/pt-hiv"}, "valueCodeableConcept": {"text": "Negative"}}}]}
    import_entries(entries_of(bundle), "hiv.json", notify=True)
    db.session.commit()
    obs = db.session.execute(select(Observation).where(Observation.fhir_id == "h1")).scalars().one()
    assert obs.released_at is None and obs.wait_for_clinician
    assert release.release_due(now=utcnow() + timedelta(days=6)) == 0
    assert release.release_due(now=utcnow() + timedelta(days=8)) == 1
    assert release.release_due(now=utcnow() + timedelta(days=9)) == 0  # idempotent


def test_exports_pdf_and_fhir_are_audited(db, gladys):
    client, user = gladys
    r = client.get("/record/export.pdf")
    assert r.status_code == 200 and r.data[:4] == b"%PDF"
    r = client.get("/record/export.json?start=2000-01-01")
    doc = json.loads(r.data)
    assert r.status_code == 200 and doc["resourceType"] == "Bundle"
    assert sum(1 for e in doc["entry"] if e["resource"]["resourceType"] == "Observation") > 50
    exports = _audit(db, actor_id=user.id, action="record.exported")
    assert len(exports) == 2 and {e.category for e in exports} == {"record_export"}
    r = post_form(client, "/record/export", {"format": "json", "start": "2020-01-01", "end": "2019-01-01"})
    assert r.status_code == 400


def test_snomed_semantic_tags_are_not_shown_to_the_patient(db, gladys):
    from portal.records.rules import plain_term

    assert plain_term("Obstructive sleep apnea syndrome (disorder)") == "Obstructive sleep apnea syndrome"
    assert plain_term("Stress (finding)") == "Stress"
    assert plain_term("Hypertension") == "Hypertension"
    assert plain_term("Fracture (left) of wrist") == "Fracture (left) of wrist"  # only a known tag at the end
    from portal.records.rules import unit_label

    assert [unit_label(u) for u in ("mm[Hg]", "10*3/uL", "kg/m2", "{beats}/min", "mg/dL", "mL/min/{1.73_m2}", None)] == [
        "mmHg", "×10³/µL", "kg/m²", "beats/min", "mg/dL", "mL/min/1.73 m²", ""]
    client, user = gladys
    db.session.add(RecordItem(patient_id=user._patient.id, source="t", fhir_id="c-osa", resource_type="Condition",
                              kind="condition", display="Obstructive sleep apnea syndrome (disorder)", active=True))
    db.session.commit()
    html = client.get("/record").get_data(as_text=True)
    assert "Obstructive sleep apnea syndrome" in html and "(disorder)" not in html


def test_findings_and_circumstances_are_listed_apart_from_health_problems_once_each(db, login_as):
    from datetime import datetime, timezone

    client, user = login_as("patient")
    for n, (fid, display) in enumerate([("c1", "Hypertension (disorder)"), ("c2", "Full-time employment (finding)"),
                                        ("c3", "Full-time employment (finding)"), ("c4", "Stress (finding)")]):
        db.session.add(RecordItem(patient_id=user._patient.id, source="t", fhir_id=fid, resource_type="Condition",
                                  kind="condition", display=display, active=True, code=display[:10],
                                  recorded_at=datetime(2024, 1, 1 + n, tzinfo=timezone.utc)))
    db.session.commit()
    html = client.get("/record").get_data(as_text=True)
    problems, rest = html.split('id="problems-h"', 1)[1].split('id="noted-h"', 1)
    assert "Hypertension" in problems and "employment" not in problems and "Stress" not in problems
    noted = rest.split("</section>", 1)[0]
    assert noted.count("Full-time employment") == 1 and "Stress" in noted  # one per code, the newest


def test_a_row_without_its_imported_json_still_exports_as_a_resource(db, gladys):
    client, user = gladys
    med = RecordItem(patient_id=user._patient.id, source="clinic", fhir_id=None, resource_type="MedicationRequest",
                     kind="medication", display="Metformin 500 MG", active=True)
    db.session.add(med)
    db.session.commit()
    doc = json.loads(client.get("/record/export.json").data)
    found = [e["resource"] for e in doc["entry"] if e["resource"].get("medicationCodeableConcept") == {
        "text": "Metformin 500 MG"}]
    assert len(found) == 1 and found[0]["resourceType"] == "MedicationRequest" and found[0]["id"] == med.public_id
    assert all(e["fullUrl"].startswith("urn:uuid:") and e["resource"].get("id") for e in doc["entry"])


def test_export_then_import_into_an_empty_database_reproduces_what_the_patient_sees(app, db, gladys, tmp_path):
    """The export goes into a second, empty database (its own engine and session, swapped in for the
    import), and the released results there equal what the patient sees here."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import scoped_session, sessionmaker

    from portal.records.fhir.importer import import_bytes

    client, user = gladys
    data = client.get("/record/export.json").data

    def seen(session):
        return sorted((o.code, o.value_num, o.value_num2, o.effective_at.isoformat(), o.unit) for o in session.execute(
            select(Observation).where(Observation.released_at.is_not(None))).scalars())

    mine = seen(db.session)
    assert all(row for row in mine) and len(mine) > 50
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    _db.metadata.create_all(engine)
    empty = scoped_session(sessionmaker(bind=engine))
    original = _db.session
    _db.session = empty
    try:
        with app.test_request_context("/"):
            import_bytes(data, "export.json", notify=False)
            empty.commit()
        theirs = seen(empty)
    finally:
        _db.session = original
        empty.remove()
        engine.dispose()
    assert theirs == mine


def _count_statements(db, fn):
    n = [0]

    def listener(*a, **k):
        n[0] += 1

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return n[0]


def test_constant_statements_whatever_the_number_of_rows(db, login_as):
    client, user = login_as("patient")
    give_labs(user._patient, "g")
    db.session.commit()
    glucose = a_result(user._patient)
    small = [_count_statements(db, lambda: client.get(u)) for u in
             ("/record/results", f"/record/results/{glucose.public_id}", "/record")]
    give_labs(user._patient, "y")  # another source: twice the rows
    for n in range(3):
        o = Observation(patient_id=user._patient.id, source="extra", fhir_id=f"x{n}", category="laboratory",
                        code="2339-0", display="Glucose", value_num=90 + n, unit="mg/dL",
                        effective_at=utcnow() - timedelta(days=n + 1), released_at=utcnow())
        db.session.add(o)
    db.session.commit()
    big = [_count_statements(db, lambda: client.get(u)) for u in
           ("/record/results", f"/record/results/{glucose.public_id}", "/record")]
    assert small == big, (small, big)


def _lab_rows(patient, n: int, start: int = 0) -> None:
    """n released lab results for `patient`, in panels of 5 (a report each), one panel a day back."""
    from portal.records.models import LabReport

    now = utcnow()
    for k in range(start, start + n, 5):
        when = now - timedelta(days=k // 5 + 1)
        report = LabReport(patient_id=patient.id, source="rows", fhir_id=f"r{k}", display=f"Panel {k // 5}",
                           code="24323-8", category="laboratory", status="final", effective_at=when)
        _db.session.add(report)
        _db.session.flush()
        for j in range(k, min(k + 5, start + n)):
            _db.session.add(Observation(patient_id=patient.id, report_id=report.id, source="rows", fhir_id=f"o{j}",
                                        category="laboratory", code="2339-0", display="Glucose", value_num=80 + j,
                                        unit="mg/dL", ref_low=70, ref_high=99, effective_at=when, released_at=now))
    _db.session.commit()


def test_results_list_statements_are_the_same_for_5_and_50_results(db, login_as):
    """G7: one statement for the page's rows whatever their number (no per-row loading of the panel); 50
    results fill the page (PER_PAGE) and link to older ones, whose page costs the same."""
    client, user = login_as("patient")
    _lab_rows(user._patient, 5)
    r5 = client.get("/record/results")
    few = _count_statements(db, lambda: client.get("/record/results"))
    html5 = r5.get_data(as_text=True)
    assert html5.count('href="/record/results/') == 5 and "Older results" not in html5
    _lab_rows(user._patient, 45, start=5)
    many = _count_statements(db, lambda: client.get("/record/results"))
    html = client.get("/record/results").get_data(as_text=True)
    assert html.count('href="/record/results/') == services.PER_PAGE and "Older results" in html
    assert "Panel 0" in html and "High" in html and "70 to 99 mg/dL" in html  # values 80..129: some high
    older = _count_statements(db, lambda: client.get("/record/results?page=2"))
    assert few == many == older, (few, many, older)


def test_new_result_notice_only_on_release_and_without_phi(db, login_as):
    from portal.notifications.models import Notice
    from portal.records import release

    client, user = login_as("patient")
    _c, clinician = login_as("clinician")

    def notices():
        return db.session.execute(select(Notice).where(Notice.patient_id == user._patient.id,
                                                       Notice.kind == "new_result")).scalars().all()

    give_labs(user._patient, "g", notify=True)  # released at import: one notice for the whole file
    db.session.commit()
    assert len(notices()) == 1
    glucose = a_result(user._patient)
    services.hold_result(clinician, glucose.public_id, "call first", utcnow() + timedelta(days=1))
    db.session.commit()
    assert release.release_due() == 0 and len(notices()) == 1  # held: nothing sent
    assert release.release_due(now=utcnow() + timedelta(days=2)) == 1  # the hold ended: released once
    assert release.release_due(now=utcnow() + timedelta(days=3)) == 0
    db.session.commit()
    sent = notices()
    assert len(sent) == 2
    for n in sent:
        text = " ".join(str(getattr(n, f, "") or "") for f in ("subject", "body", "link"))
        assert "Glucose" not in text and "131" not in text


def test_result_and_medication_refs_resolve_only_for_their_patient(app, db, gladys, login_as):
    from portal.core.registry import refs

    _c, user = gladys
    _o, other = login_as("patient")
    glucose = a_result(user._patient)
    with app.test_request_context("/"):
        ref = refs.resolve(f"result:{glucose.public_id}", user)
        assert ref is not None and ref.patient_id == user._patient.id and "Glucose" in ref.label
        assert ref.url.endswith(f"/record/results/{glucose.public_id}")
        assert refs.resolve(f"result:{glucose.public_id}", other) is None
        assert refs.resolve("medication:nope", user) is None
    assert {"result", "medication"} <= refs.kinds()


def test_clinical_record_panel_on_the_staff_patient_page_for_clinicians_only(db, gladys, login_as):
    _c, user = gladys
    clin, _ = login_as("clinician")
    page = clin.get(f"/support/patients/{user._patient.public_id}")
    assert page.status_code == 200 and "Clinical record" in page.get_data(as_text=True)
    record = clin.get(f"/staff/records/patients/{user._patient.public_id}")
    assert record.status_code == 200 and "Glucose" in record.get_data(as_text=True)
    support, _ = login_as("support")
    page = support.get(f"/support/patients/{user._patient.public_id}")
    assert page.status_code == 200 and "Clinical record" not in page.get_data(as_text=True)

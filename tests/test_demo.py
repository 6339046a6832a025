import json

import pyotp
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.demo.fhir_patients import DATA, demo_patients, parse_patient
from portal.patients.models import Patient
from tests.helpers import post_form


def test_fhir_parser_reads_real_synthea_and_hl7_patients():
    patients = demo_patients()
    assert len(patients) >= 10
    gladys = next(p for p in patients if p["fhir_id"] == "a4a401d1-a46a-eb4a-8a38-760d5d79d6ec")
    assert gladys["given_name"] == "Gladys" and gladys["family_name"] == "Schumm"
    assert str(gladys["birth_date"]) == "1981-11-03"


def test_parser_skips_deceased_and_rejects_other_resources():
    line = (DATA / "synthea-bulk-10-Patient.ndjson").read_text().splitlines()[0]
    assert parse_patient(json.loads(line)) is None  # the first one is deceased
    import pytest

    with pytest.raises(ValueError):
        parse_patient({"resourceType": "Observation"})


def test_seed_is_idempotent_and_demo_logins_work(app, db):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    from portal.messaging.models import Thread

    def counts():
        return tuple(db.session.execute(select(func.count()).select_from(m)).scalar() for m in (User, Patient, Thread))

    before = counts()
    second = runner.invoke(args=["demo", "seed"])
    assert second.exit_code == 0
    assert before == counts()
    assert "gladys@patient.example" in first.output and "riverside demo visit 2026" in first.output
    otp = runner.invoke(args=["demo", "otp", "gladys@patient.example"])
    code = otp.output.strip()
    assert code.isdigit() and len(code) == 6
    client = app.test_client()
    post_form(client, "/signin", {"email": "gladys@patient.example", "password": "riverside demo visit 2026"})
    r = post_form(client, "/signin/verify", {"code": code})
    assert r.status_code == 302 and r.location.endswith("/home")
    summary = client.get("/record").get_data(as_text=True)
    assert "Schumm" in summary
    assert "Your refill requests" in summary and "Waiting for the care team" in summary  # in the care inbox


def test_demo_commands_refuse_production(app):
    app.config["ENV_NAME"] = "production"
    try:
        r = app.test_cli_runner().invoke(args=["demo", "seed"])
        assert r.exit_code != 0 and "never loaded in production" in r.output
    finally:
        app.config["ENV_NAME"] = "testing"
    assert pyotp  # imported for readers: codes are standard TOTP

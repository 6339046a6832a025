import re
from datetime import timedelta


from sqlalchemy import select

from portal.accounts import services
from portal.accounts.models import AccessGrant, ActivationCode, User
from portal.core.db import utcnow
from tests.helpers import post_form

GOOD_PASSWORD = "maple orbit cello window"


def _issue(app, staff, patient):
    with app.test_request_context():
        code = services.issue_activation(staff, patient)
    return code


def test_activation_creates_account_and_sends_verification(app, client, db, make_user, make_patient, mailbox):
    staff = make_user("support")
    patient = make_patient(preferred_language="en")
    code = _issue(app, staff, patient)
    row = db.session.execute(select(ActivationCode).where(ActivationCode.patient_id == patient.id)).scalar_one()
    assert code.replace("-", "") not in row.code_hash  # stored as an HMAC only
    assert row.expires_at - utcnow() > timedelta(days=13, hours=23)
    r = post_form(client, "/activate", {"code": code.lower(), "birth_date": patient.birth_date.isoformat(),
                                        "email": "New.Patient@Example.org", "password": GOOD_PASSWORD})
    assert r.status_code == 200 and "Check your email" in r.get_data(as_text=True)
    user = db.session.execute(select(User).where(User.email == "new.patient@example.org")).scalar_one()
    assert user.role == "patient" and user.email_verified_at is None
    grant = db.session.execute(select(AccessGrant).where(AccessGrant.user_id == user.id)).scalar_one()
    assert grant.patient_id == patient.id and grant.relationship_kind == "self"
    msgs = mailbox.wait_for(1)
    body = msgs[-1].get_content()
    assert patient.family_name not in body and patient.mrn not in body  # no PHI in mail
    link = re.search(r"http\S+/activate/verify/\S+", body).group(0)
    path = link.split("127.0.0.1:5000", 1)[1] if "127.0.0.1:5000" in link else link
    r = client.get(path)
    assert r.status_code == 302
    db.session.refresh(user)
    assert user.email_verified_at is not None
    # then the first sign-in goes to MFA enrolment
    r = post_form(client, "/signin", {"email": user.email, "password": GOOD_PASSWORD})
    assert r.location.endswith("/signin/setup")


def test_code_is_single_use(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    data = {"code": code, "birth_date": patient.birth_date.isoformat(), "email": "a@example.org",
            "password": GOOD_PASSWORD}
    assert post_form(client, "/activate", data).status_code == 200
    r = post_form(client, "/activate", dict(data, email="b@example.org"))
    assert r.status_code == 400 and "could not match" in r.get_data(as_text=True)


def test_wrong_birth_date_unknown_code_and_expired_code_answer_the_same(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    bodies = []
    wrong_bd = (patient.birth_date - timedelta(days=1)).isoformat()
    for data in [
        {"code": code, "birth_date": wrong_bd},
        {"code": "AAAA-BBBB-CCCC", "birth_date": patient.birth_date.isoformat()},
    ]:
        r = post_form(client, "/activate", dict(data, email="x@example.org", password=GOOD_PASSWORD))
        assert r.status_code == 400
        bodies.append(re.sub(r'value="[^"]*"', "", r.get_data(as_text=True)))
    assert bodies[0] == bodies[1]
    row = db.session.execute(select(ActivationCode)).scalar_one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": "x@example.org", "password": GOOD_PASSWORD})
    assert r.status_code == 400 and "could not match" in r.get_data(as_text=True)


def test_five_wrong_birth_dates_burn_the_code(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    for i in range(5):
        post_form(client, "/activate", {"code": code, "birth_date": f"1900-01-0{i + 1}", "email": "x@example.org",
                                        "password": GOOD_PASSWORD})
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": "x@example.org", "password": GOOD_PASSWORD})
    assert r.status_code == 400


def test_weak_password_rerenders_with_field_error_and_keeps_values(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": "keep.me@example.org", "password": "password1234"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "breached or common" in html
    assert 'value="keep.me@example.org"' in html and f'value="{code}"' in html
    # the code is still usable after a field error
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": "keep.me@example.org", "password": GOOD_PASSWORD})
    assert r.status_code == 200


def test_missing_fields_show_errors(client):
    r = post_form(client, "/activate", {"code": "", "birth_date": "", "email": "not-an-email", "password": ""})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert html.count('aria-invalid="true"') >= 3


def test_reissuing_revokes_older_codes(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    first = _issue(app, staff, patient)
    second = _issue(app, staff, patient)
    data = {"birth_date": patient.birth_date.isoformat(), "email": "z@example.org", "password": GOOD_PASSWORD}
    assert post_form(client, "/activate", dict(data, code=first)).status_code == 400
    assert post_form(client, "/activate", dict(data, code=second)).status_code == 200


def test_cannot_issue_for_already_active_account(app, db, make_user):
    import pytest

    from portal.core.errors import DomainError

    staff = make_user("support")
    patient_user = make_user("patient")
    with app.test_request_context(), pytest.raises(DomainError):
        services.issue_activation(staff, patient_user._patient)


def test_email_of_another_account_answers_like_success_and_tells_its_owner(app, client, db, make_user, make_patient,
                                                                          mailbox):
    other = make_user("clinician")
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": other.email, "password": GOOD_PASSWORD})
    assert r.status_code == 200 and "Check your email" in r.get_data(as_text=True)
    msg = mailbox.wait_for_to(other.email)
    assert msg is not None and "already used" in msg.get_content()
    assert db.session.execute(select(User).where(User.role == "patient")).first() is None
    # the code still works with another address
    r = post_form(client, "/activate", {"code": code, "birth_date": patient.birth_date.isoformat(),
                                        "email": "fresh@example.org", "password": GOOD_PASSWORD})
    assert r.status_code == 200
    assert db.session.execute(select(User).where(User.email == "fresh@example.org")).scalar_one()


def test_activation_code_is_emailed_to_patient_on_record(app, db, make_user, make_patient, mailbox):
    staff = make_user("support")
    patient = make_patient(email="pt@example.org", preferred_language="es")
    code = _issue(app, staff, patient)
    db.session.commit()
    msgs = mailbox.wait_for(1)
    assert msgs[-1]["To"] == "pt@example.org"
    assert code in msgs[-1].get_content()

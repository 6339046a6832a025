"""Activation in three steps: code + birth date → email + password → authenticator, and the rules
around codes (single use, revoked by verification and activation, never rewriting an active account)."""

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.accounts import services
from portal.accounts.models import ActivationCode, User, UserSession
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.patients.models import AccessGrant
from tests.accounts.helpers import activate, birth_fields, check_code, choose_account
from tests.helpers import post_form

GOOD_PASSWORD = "maple orbit cello window"


def _issue(app, staff, patient):
    with app.test_request_context():
        code = services.issue_activation(staff, patient)
    return code


def _verify_link(mailbox, to):
    msg = mailbox.wait_for_to(to)
    assert msg is not None, "no confirmation mail"
    link = re.search(r"http\S+/activate/verify/\S+", msg.get_content()).group(0)
    return "/" + link.split("/", 3)[3]


def test_three_steps_open_the_account_and_go_straight_to_enrolment(app, client, db, make_user, make_patient, mailbox):
    staff = make_user("support")
    patient = make_patient(preferred_language="en")
    code = _issue(app, staff, patient)
    row = db.session.execute(select(ActivationCode).where(ActivationCode.patient_id == patient.id)).scalar_one()
    assert code.replace("-", "") not in row.code_hash  # stored as an HMAC only
    assert row.expires_at - utcnow() > timedelta(days=13, hours=23)
    # step 2 cannot be reached without step 1
    r = client.get("/activate/account")
    assert r.status_code == 302 and r.location.endswith("/activate")
    r = check_code(client, code.lower().replace("-", " "), patient.birth_date)  # forgiving input
    assert r.status_code == 302 and r.location.endswith("/activate/account")
    page = client.get("/activate/account").get_data(as_text=True)
    assert "Step 2 of 3" in page and "password-rules" in page and "Show password" in page
    r = choose_account(client, "New.Patient@Example.org", GOOD_PASSWORD)
    assert r.status_code == 302 and r.location.endswith("/signin/setup")
    user = db.session.execute(select(User).where(User.email == "new.patient@example.org")).scalar_one()
    assert user.role == "patient" and user.email_verified_at is None and user.totp_secret_enc is None
    grant = db.session.execute(select(AccessGrant).where(AccessGrant.user_id == user.id)).scalar_one()
    assert grant.patient_id == patient.id and grant.relationship_kind == "self"
    # the activated, password-only session is on the set-up step: no email round trip first
    setup = client.get("/signin/setup")
    assert setup.status_code == 200 and "Step 3 of 3" in setup.get_data(as_text=True)
    body = mailbox.wait_for_to("new.patient@example.org").get_content()
    assert patient.family_name not in body and patient.mrn not in body  # no PHI in mail
    # the link only confirms the address (here in another browser: it signs no one in)
    other = app.test_client()
    r = other.get(_verify_link(mailbox, "new.patient@example.org"))
    assert r.status_code == 302 and r.location.endswith("/signin")
    db.session.refresh(user)
    assert user.email_verified_at is not None
    assert other.get("/home").status_code == 302


def test_code_is_single_use(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    assert activate(client, code, patient.birth_date, "a@example.org", GOOD_PASSWORD).status_code == 302
    r = check_code(app.test_client(), code, patient.birth_date)
    assert r.status_code == 400 and "could not match" in r.get_data(as_text=True)


def test_wrong_birth_date_unknown_code_and_expired_code_answer_the_same(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient(birth_date=date(1970, 5, 6))
    code = _issue(app, staff, patient)
    answers = []
    for c, b in [(code, date(1970, 5, 7)), ("ZZZZ-ZZZZ-ZZZZ", date(1970, 5, 6))]:
        r = check_code(app.test_client(), c, b)
        answers.append((r.status_code, "We could not match that activation code and birth date" in r.get_data(as_text=True)))
    db.session.execute(ActivationCode.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    r = check_code(app.test_client(), code, date(1970, 5, 6))
    answers.append((r.status_code, "We could not match that activation code and birth date" in r.get_data(as_text=True)))
    assert answers == [(400, True)] * 3


def test_five_wrong_birth_dates_burn_the_code(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient(birth_date=date(1970, 5, 6))
    code = _issue(app, staff, patient)
    for day in range(10, 15):
        assert check_code(client, code, date(1970, 5, day)).status_code == 400
    assert check_code(client, code, patient.birth_date).status_code == 400


def test_a_refused_password_is_retyped_any_other_error_keeps_it(app, client, db, make_user, make_patient, mailbox):
    other = make_user("clinician")
    staff = make_user("support")
    patient = make_patient()
    code = _issue(app, staff, patient)
    assert check_code(client, code, patient.birth_date).status_code == 302
    r = choose_account(client, "keep.me@example.org", "password1234")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "breached or common" in html
    assert 'value="keep.me@example.org"' in html and 'value="password1234"' not in html
    # an address already in use: the field says what to do, the typed password is kept, the owner told
    r = choose_account(client, other.email, GOOD_PASSWORD)
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "This email address cannot be used for a new account" in html
    assert f'value="{GOOD_PASSWORD}"' in html
    msg = mailbox.wait_for_to(other.email)
    assert msg is not None and "already used" in msg.get_content()
    assert choose_account(client, "fresh@example.org", GOOD_PASSWORD).status_code == 302
    assert db.session.execute(select(User).where(User.email == "fresh@example.org")).scalar_one()


def test_empty_and_impossible_dates_say_what_to_do(client):
    r = post_form(client, "/activate", {"code": "", "birth_date-month": "", "birth_date-day": "", "birth_date-year": ""})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Enter the activation code from the clinic" in html and "Enter your date of birth" in html
    assert "This field is required" not in html
    assert 'data-error-summary' in html and 'href="#birth_date-month"' in html
    cases = {("2", "30", "1980"): "That date does not exist", ("1", "2", "2999"): "must be in the past",
             ("1", "", "1980"): "Enter the day", ("1", "2", "80"): "4 digits", ("1", "x", "1980"): "Use numbers"}
    for (m, d, y), expected in cases.items():
        r = post_form(client, "/activate", {"code": "ABCD-EFGH-JKLM", "birth_date-month": m, "birth_date-day": d,
                                            "birth_date-year": y})
        html = r.get_data(as_text=True)
        assert r.status_code == 400 and expected in html, (m, d, y)
        assert f'value="{y}"' in html  # what was typed stays


def test_spanish_activation_page_speaks_spanish_only(client):
    r = post_form(client, "/activate", {"code": "", **birth_fields(date(2999, 1, 2))},
                  headers={"Accept-Language": "es"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and 'lang="es"' in html
    assert "This field is required" not in html and "Enter " not in html
    assert "enero" in html.lower() and "Introduzca el código de activación" in html


def test_reissuing_revokes_older_codes(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    first = _issue(app, staff, patient)
    second = _issue(app, staff, patient)
    assert check_code(client, first, patient.birth_date).status_code == 400
    assert activate(client, second, patient.birth_date, "z@example.org", GOOD_PASSWORD).status_code == 302


@pytest.mark.parametrize("state", ["verified", "mfa"])
def test_cannot_issue_for_an_active_account(app, db, make_user, state):
    staff = make_user("support")
    patient_user = make_user("patient", verified=(state == "verified"), mfa=(state == "mfa"))
    with app.test_request_context(), pytest.raises(DomainError):
        services.issue_activation(staff, patient_user._patient)


def test_a_second_code_dies_when_the_email_is_verified(app, client, db, make_user, make_patient, mailbox):
    """Probe finding 2: support issues a second code while the account is unverified; after the
    verification that code must not rewrite the account's email and password."""
    staff = make_user("support")
    patient = make_patient()
    first = _issue(app, staff, patient)
    assert activate(client, first, patient.birth_date, "owner@example.org", GOOD_PASSWORD).status_code == 302
    # the account is unverified and has no factor yet: a new code may still be issued…
    second = _issue(app, staff, patient)
    db.session.commit()
    # …and the owner confirms the address
    assert app.test_client().get(_verify_link(mailbox, "owner@example.org")).status_code == 302
    row = db.session.execute(select(ActivationCode).where(ActivationCode.patient_id == patient.id,
                                                          ActivationCode.used_at.is_(None))).scalar_one()
    assert row.revoked_at is not None
    thief = app.test_client()
    r = activate(thief, second, patient.birth_date, "thief@example.org", "sudden walrus copper 88")
    assert r.status_code == 400 and "could not match" in r.get_data(as_text=True)
    user = db.session.execute(select(User).where(User.email == "owner@example.org")).scalar_one()
    assert user.email == "owner@example.org"
    assert db.session.execute(select(User).where(User.email == "thief@example.org")).first() is None


def test_activating_never_rewrites_an_active_account_even_with_an_open_code(app, client, db, make_user):
    """Whatever state the codes are in, an account with a confirmed address or a factor is never
    rewritten by activation."""
    patient_user = make_user("patient", verified=True, mfa=False)
    patient = patient_user._patient
    from portal.core.crypto import keyed_hash

    db.session.add(ActivationCode(patient_id=patient.id, code_hash=keyed_hash("ABCDEFGHJKLM", "activation"),
                                  expires_at=utcnow() + timedelta(days=1)))
    db.session.commit()
    r = activate(client, "ABCD-EFGH-JKLM", patient.birth_date, "thief@example.org", "sudden walrus copper 88")
    assert r.status_code == 400
    db.session.refresh(patient_user)
    assert patient_user.email.endswith("@test.example")


def test_an_abandoned_account_can_be_activated_again(app, client, db, make_user, make_patient):
    staff = make_user("support")
    patient = make_patient()
    assert activate(client, _issue(app, staff, patient), patient.birth_date, "typo@exampel.org",
                    GOOD_PASSWORD).status_code == 302
    second = _issue(app, staff, patient)  # never confirmed, no factor: support may give a new code
    fresh = app.test_client()
    assert activate(fresh, second, patient.birth_date, "right@example.org", GOOD_PASSWORD).status_code == 302
    users = db.session.execute(select(User).where(User.role == "patient")).scalars().all()
    assert [u.email for u in users] == ["right@example.org"]
    live = db.session.execute(select(UserSession).where(UserSession.user_id == users[0].id,
                                                        UserSession.revoked_at.is_(None))).scalars().all()
    assert len(live) == 1  # the first browser's session was ended


@pytest.mark.parametrize("given,family,born,password", [
    ("Corrin", "Jast", date(1986, 3, 14), "corrinjast1986"),
    ("Gladys", "Schumm", date(1981, 11, 3), "Gladys Schumm 1981"),
    ("Ana", "Reyes", date(1975, 7, 1), "Riverside2026!"),  # the clinic's name
    ("Corrin", "Jast", date(1986, 3, 14), "14031986 corrin jast"),
])
def test_passwords_built_from_personal_details_are_refused(app, client, db, make_user, make_patient, given, family,
                                                            born, password):
    staff = make_user("support")
    patient = make_patient(given_name=given, family_name=family, birth_date=born)
    r = activate(client, _issue(app, staff, patient), born, f"{given.lower()}@example.org", password)
    assert r.status_code == 400, password
    assert "Do not build your password from your name" in r.get_data(as_text=True)


def test_activation_code_is_emailed_to_patient_on_record(app, db, make_user, make_patient, mailbox):
    staff = make_user("support")
    patient = make_patient(email="pt@example.org", preferred_language="es")
    code = _issue(app, staff, patient)
    db.session.commit()
    msgs = mailbox.wait_for(1)
    assert msgs[-1]["To"] == "pt@example.org"
    assert code in msgs[-1].get_content()

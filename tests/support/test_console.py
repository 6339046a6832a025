import re

from sqlalchemy import select

from portal.accounts.models import SupportIdentityCheck, User
from portal.core.audit import AuditEvent
from tests.factories import DEFAULT_PASSWORD
from tests.helpers import post_form, sign_in


def test_search_by_name_mrn_and_birth_date(db, login_as, make_patient):
    client, staff = login_as("support")
    p = make_patient(given_name="Rosalind", family_name="Okafor")
    make_patient(given_name="Other", family_name="Person")
    for q in ["okafor", "ROSALIND okaf", p.mrn, p.birth_date.isoformat()]:
        html = client.get("/support", query_string={"q": q}).get_data(as_text=True)
        assert "Okafor, Rosalind" in html, q
        assert "Person, Other" not in html or q == p.birth_date.isoformat()
    html = client.get("/support", query_string={"q": "' OR 1=1 --"}).get_data(as_text=True)
    assert "No patients match" in html


def test_search_is_audited_without_the_query_text(db, login_as, make_patient):
    client, staff = login_as("support")
    make_patient(family_name="Quixote")
    client.get("/support", query_string={"q": "Quixote"})
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "patient.search")).scalar_one()
    assert ev.actor_id == staff.id and "Quixote" not in (ev.detail or "")


def test_patient_page_is_audited_as_a_view(db, login_as, make_patient):
    client, staff = login_as("clinician")
    p = make_patient()
    r = client.get(f"/support/patients/{p.public_id}")
    assert r.status_code == 200 and p.mrn in r.get_data(as_text=True)
    # the page's own view; other domains' sections on it audit their own categories (e.g. appointments)
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "patient.view",
                                                     AuditEvent.category == "demographics")).scalar_one()
    assert ev.patient_id == p.id and ev.category == "demographics" and ev.actor_role == "clinician"


def r_ok(html: str) -> bool:
    return "<h1>" in html  # the page rendered (so the absence of the buttons means something)


def test_clinician_sees_no_support_actions(db, login_as, make_patient):
    client, _ = login_as("clinician")
    p = make_patient()
    html = client.get(f"/support/patients/{p.public_id}").get_data(as_text=True)
    assert r_ok(html) and "Issue a new activation code" not in html and "Unlock the account" not in html
    r = post_form(client, f"/support/patients/{p.public_id}/activation", {},
                  get_path=f"/support/patients/{p.public_id}")
    assert r.status_code == 403


def test_issue_activation_shows_code_once(db, login_as, make_patient):
    client, staff = login_as("support")
    p = make_patient()
    r = post_form(client, f"/support/patients/{p.public_id}/activation", {},
                  get_path=f"/support/patients/{p.public_id}")
    code = re.search(r'id="activation-code">([A-Z0-9-]+)<', r.get_data(as_text=True)).group(1)
    assert len(code) == 14
    html = client.get(f"/support/patients/{p.public_id}").get_data(as_text=True)
    assert code not in html


def test_unlock_clears_lock(app, db, login_as, make_user):
    patient_user = make_user("patient")
    anon = app.test_client()
    for _ in range(10):
        post_form(anon, "/signin", {"email": patient_user.email, "password": "wrong password here!"})
    from portal.accounts import lockout

    assert lockout.lock_status([patient_user])
    client, staff = login_as("support")
    pid = patient_user._patient.public_id
    r = post_form(client, f"/support/patients/{pid}/unlock", {}, get_path=f"/support/patients/{pid}")
    assert r.status_code == 302
    assert lockout.lock_status([patient_user]) == {} and lockout.failure_count(patient_user) == 0
    r = sign_in(app.test_client(), patient_user.email, DEFAULT_PASSWORD, patient_user._totp_secret)
    assert r.status_code == 302 and r.location.endswith("/home")


def test_mfa_reset_requires_identity_check_and_ends_sessions(app, db, login_as, make_user, mailbox):
    patient_client, patient_user = login_as("patient")
    client, staff = login_as("support")
    pid = patient_user._patient.public_id
    r = post_form(client, f"/support/patients/{pid}/mfa-reset", {"method": ""}, get_path=f"/support/patients/{pid}")
    db.session.refresh(patient_user)
    assert patient_user.mfa_enabled
    r = post_form(client, f"/support/patients/{pid}/mfa-reset",
                  {"method": "photo_id_in_person"}, get_path=f"/support/patients/{pid}")
    db.session.refresh(patient_user)
    assert patient_user.mfa_enabled  # birth date not confirmed
    r = post_form(client, f"/support/patients/{pid}/mfa-reset",
                  {"method": "photo_id_in_person", "birth_date_confirmed": "y"}, get_path=f"/support/patients/{pid}")
    assert r.status_code == 302
    db.session.refresh(patient_user)
    assert not patient_user.mfa_enabled
    check = db.session.execute(select(SupportIdentityCheck)).scalar_one()
    assert check.staff_id == staff.id and check.method == "photo_id_in_person"
    assert patient_client.get("/record").status_code == 302
    assert mailbox.wait_for(1)[-1]["To"] == patient_user.email
    r = post_form(app.test_client(), "/signin", {"email": patient_user.email, "password": DEFAULT_PASSWORD})
    assert r.location.endswith("/signin/setup")


def test_unlock_for_patient_without_account_is_404(db, login_as, make_patient):
    client, _ = login_as("support")
    p = make_patient()
    r = post_form(client, f"/support/patients/{p.public_id}/unlock", {}, get_path=f"/support/patients/{p.public_id}")
    assert r.status_code == 404


def test_unknown_patient_is_404(db, login_as):
    client, _ = login_as("support")
    assert client.get("/support/patients/0123456789abcdef0123456789abcdef").status_code == 404
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "access.denied")).scalars().first()


def test_staff_user_rows_unchanged_by_views(db, login_as, make_patient):
    client, _ = login_as("support")
    p = make_patient()
    before = db.session.execute(select(User.id)).scalars().all()
    client.get(f"/support/patients/{p.public_id}")
    assert db.session.execute(select(User.id)).scalars().all() == before

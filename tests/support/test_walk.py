"""What the staff walk asked of the support console: birth dates as staff type them and phone numbers,
the account's status in the results, a normal search button, "Unlock" only when locked, help with the
account's email (confirmation again, a reset link, a mistyped address: each audited) and the activation
code's printable handout in the patient's language with its expiry date."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from sqlalchemy import select

from portal.accounts.models import User
from portal.core.audit import AuditEvent
from tests.helpers import post_form


def _results(html: str) -> str:
    m = re.search(r'<table id="patients".*?</table>', html, re.S)
    return m.group(0) if m else ""


@pytest.mark.parametrize("query", ["11/03/1981", "1981-11-03", "Nov 3 1981", "November 3, 1981", "3 Nov 1981",
                                   "11.03.1981", "(555) 013-2468", "555.013.2468", "+1 555 013 2468", "5550132468"])
def test_search_by_birth_date_spellings_and_phone(db, login_as, make_patient, query):
    client, _ = login_as("support")
    make_patient(given_name="Gladys", family_name="Schumm", birth_date=date(1981, 11, 3), phone="555-013-2468")
    make_patient(given_name="Other", family_name="Person", birth_date=date(1981, 3, 11), phone="555-0100")
    table = _results(client.get("/support", query_string={"q": query}).get_data(as_text=True))
    assert "Schumm, Gladys" in table and "Person, Other" not in table, query


def test_spanish_staff_type_the_day_first(db, login_as, make_patient):
    client, staff = login_as("support")
    staff.preferred_language = "es"
    db.session.commit()
    make_patient(given_name="Gladys", family_name="Schumm", birth_date=date(1981, 11, 3))
    for q in ("03/11/1981", "3 de noviembre de 1981", "3 nov 1981"):
        assert "Schumm, Gladys" in _results(client.get("/support", query_string={"q": q}).get_data(as_text=True)), q


def test_search_audits_which_patients_were_listed(db, login_as, make_patient):
    """Finding 8: before, the row held only a count."""
    client, staff = login_as("support")
    a = make_patient(family_name="Quixotic", given_name="Ann")
    b = make_patient(family_name="Quixotic", given_name="Bob")
    hidden = make_patient(family_name="Elsewhere")
    client.get("/support", query_string={"q": "Quixotic"})
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "patient.search",
                                                     AuditEvent.actor_id == staff.id)).scalar_one()
    detail = json.loads(ev.detail)
    assert detail["results"] == 2 and sorted(detail["patients"]) == sorted([a.public_id, b.public_id])
    assert hidden.public_id not in ev.detail and "Quixotic" not in ev.detail


def test_results_show_the_account_status(app, db, login_as, make_user, make_patient):
    client, staff = login_as("support")
    none = make_patient(family_name="Statusnone")
    invited = make_patient(family_name="Statusinvited")
    active = make_user("patient", patient=make_patient(family_name="Statusactive"))
    locked = make_user("patient", patient=make_patient(family_name="Statuslocked"))
    unconfirmed = make_user("patient", mfa=False, verified=False, patient=make_patient(family_name="Statusnew"))
    db.session.commit()
    post_form(client, f"/support/patients/{invited.public_id}/activation", {},
              get_path=f"/support/patients/{invited.public_id}")
    anon = app.test_client()
    for _ in range(10):
        post_form(anon, "/signin", {"email": locked.email, "password": "wrong password here!"})
    html = client.get("/support", query_string={"q": "status"}).get_data(as_text=True)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"(Status\w+), .*?</a>.*?badge[^>]*>([^<]+)<", html, re.S)}
    assert rows == {"Statusnone": "No account", "Statusinvited": "Invited", "Statusactive": "Active",
                    "Statuslocked": "Locked", "Statusnew": "Invited"}, rows
    assert unconfirmed and active


def test_the_search_button_is_a_normal_button(db, login_as):
    client, _ = login_as("support")
    html = client.get("/support").get_data(as_text=True)
    form = re.search(r'<form[^>]*class="patient-search".*?</form>', html, re.S).group(0)
    assert 'role="search"' not in form  # Pico turns a role=search form into a pill-shaped input group
    assert re.search(r'<button type="submit">Search</button>', form)


def test_unlock_is_offered_only_when_locked(app, db, login_as, make_user):
    client, _ = login_as("support")
    user = make_user("patient")
    pid = user._patient.public_id
    assert "Unlock the account" not in client.get(f"/support/patients/{pid}").get_data(as_text=True)
    anon = app.test_client()
    for _ in range(10):
        post_form(anon, "/signin", {"email": user.email, "password": "wrong password here!"})
    assert "Unlock the account" in client.get(f"/support/patients/{pid}").get_data(as_text=True)


def _events(db, action, actor):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor_id == actor.id)
                              ).scalars().all()


def test_support_resends_the_confirmation_and_corrects_a_mistyped_email(app, db, login_as, make_user, mailbox):
    client, staff = login_as("support")
    user = make_user("patient", mfa=False, verified=False, email="gladys@exmaple.com")
    pid = user._patient.public_id
    page = client.get(f"/support/patients/{pid}").get_data(as_text=True)
    assert "Send the confirmation email again" in page and "Correct a mistyped email address" in page
    assert "Email a link to choose a new password" not in page  # never to an unconfirmed address
    r = post_form(client, f"/support/patients/{pid}/confirmation", {}, get_path=f"/support/patients/{pid}")
    assert r.status_code == 302
    assert mailbox.wait_for_to("gladys@exmaple.com") is not None
    ev = _events(db, "account.email.confirmation_resent", staff)[-1]
    assert ev.patient_id == user._patient.id and ev.object_id == user.public_id

    r = post_form(client, f"/support/patients/{pid}/email", {"email": "not an email"})
    assert r.status_code == 400 and "name@example.com" in r.get_data(as_text=True)
    r = post_form(client, f"/support/patients/{pid}/email", {"email": "Gladys@Example.com"})
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).email == "gladys@example.com"
    assert mailbox.wait_for_to("gladys@example.com") is not None
    ev = _events(db, "account.email.changed", staff)[-1]
    assert ev.patient_id == user._patient.id and "gladys" not in (ev.detail or "")


def test_a_confirmed_email_is_not_changed_by_support_and_gets_the_reset_link(app, db, login_as, make_user, mailbox):
    client, staff = login_as("support")
    user = make_user("patient")
    pid = user._patient.public_id
    r = post_form(client, f"/support/patients/{pid}/email", {"email": "elsewhere@example.com"})
    assert r.status_code == 400 and "only the patient can change it" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.id).email == user.email
    r = post_form(client, f"/support/patients/{pid}/reset-link", {}, get_path=f"/support/patients/{pid}")
    assert r.status_code == 302
    msg = mailbox.wait_for_to(user.email)
    assert msg is not None and "/password/reset" in msg.get_content()
    assert _events(db, "account.password.reset_requested", staff)


def test_email_help_is_refused_to_clinicians(db, login_as, make_user):
    client, _ = login_as("clinician")
    user = make_user("patient", mfa=False, verified=False)
    pid = user._patient.public_id
    assert "Send the confirmation email again" not in client.get(f"/support/patients/{pid}").get_data(as_text=True)
    for path in ("confirmation", "reset-link", "email"):
        r = post_form(client, f"/support/patients/{pid}/{path}", {"email": "x@example.com"},
                      get_path=f"/support/patients/{pid}")
        assert r.status_code == 403, path


def test_activation_handout_in_the_patients_language_with_expiry(app, db, login_as, make_patient):
    client, _ = login_as("support")
    p = make_patient(preferred_language="es", email=None)
    r = post_form(client, f"/support/patients/{p.public_id}/activation", {},
                  get_path=f"/support/patients/{p.public_id}")
    html = r.get_data(as_text=True)
    code = re.search(r'id="activation-code">([A-Z0-9-]+)<', html).group(1)
    handout = re.search(r'<article class="handout" lang="es".*?</article>', html, re.S).group(0)
    assert code in handout and "Su código de activación" in handout and "Funciona una sola vez" in handout
    assert re.search(r"Úselo antes del \d+ de \w+ de 20\d\d", handout), handout
    assert "/activate" in handout and app.config["CLINIC_PHONE"] in handout
    assert "Print the handout" in html and "data-print" in html  # the staff page stays in English
    assert "style=" not in html and "<script>" not in html

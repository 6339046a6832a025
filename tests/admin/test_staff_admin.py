import re

from sqlalchemy import select

from portal.accounts.models import User
from tests.conftest import sign_in_session
from tests.helpers import post_form


def test_admin_creates_staff_who_gets_a_set_password_link(app, db, login_as, mailbox):
    client, admin = login_as("admin")
    r = post_form(client, "/admin/staff/new", {"email": "New.Nurse@Clinic.example", "display_name": "Nora Nurse",
                                               "role": "clinician"})
    assert r.status_code == 302
    user = db.session.execute(select(User).where(User.email == "new.nurse@clinic.example")).scalar_one()
    assert user.role == "clinician" and not user.mfa_enabled
    body = mailbox.wait_for(1)[-1].get_content()
    assert "/password/reset/" in body


def test_duplicate_staff_email_rerenders_with_field_error(db, login_as, make_user):
    other = make_user("billing")
    client, admin = login_as("admin")
    r = post_form(client, "/admin/staff/new", {"email": other.email, "display_name": "Dup", "role": "billing"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "already exists" in html and 'value="Dup"' in html


def test_role_change_ends_sessions(app, db, login_as, make_user):
    target = make_user("billing")
    target_client = app.test_client()
    sign_in_session(target_client, target)
    client, admin = login_as("admin")
    r = post_form(client, f"/admin/staff/{target.public_id}/role", {"role": "support"}, get_path="/admin/staff")
    assert r.status_code == 302
    db.session.refresh(target)
    assert target.role == "support"
    assert target_client.get("/staff").status_code == 302


def test_disable_and_enable(app, db, login_as, make_user):
    target = make_user("support")
    target_client = app.test_client()
    sign_in_session(target_client, target)
    client, admin = login_as("admin")
    post_form(client, f"/admin/staff/{target.public_id}/disable", {}, get_path="/admin/staff")
    db.session.refresh(target)
    assert target.disabled_at is not None
    assert target_client.get("/support").status_code == 302
    post_form(client, f"/admin/staff/{target.public_id}/enable", {}, get_path="/admin/staff")
    db.session.refresh(target)
    assert target.disabled_at is None


def test_admin_cannot_demote_self_and_patients_are_not_staff(db, login_as, make_user):
    client, admin = login_as("admin")
    post_form(client, f"/admin/staff/{admin.public_id}/role", {"role": "billing"}, get_path="/admin/staff")
    db.session.refresh(admin)
    assert admin.role == "admin"
    patient = make_user("patient")
    r = post_form(client, f"/admin/staff/{patient.public_id}/disable", {}, get_path="/admin/staff")
    assert r.status_code == 404


def test_cli_create_staff_with_password(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-staff", "cli.admin@clinic.example", "--role", "admin",
                                 "--name", "Cli Admin", "--password-stdin"], input="granite meadow kettle 52\n")
    assert result.exit_code == 0, result.output
    user = db.session.execute(select(User).where(User.email == "cli.admin@clinic.example")).scalar_one()
    assert user.role == "admin" and user.totp_secret_enc is None
    bad = runner.invoke(args=["users", "create-staff", "x@clinic.example", "--role", "admin", "--password-stdin"],
                        input="password123456\n")
    assert bad.exit_code != 0 and "breached" in bad.output
    assert re.search(r"Created admin account", result.output)

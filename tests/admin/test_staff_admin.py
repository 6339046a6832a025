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
    assert r.status_code == 200 and "Change the role" in r.get_data(as_text=True)  # asks first
    db.session.refresh(target)
    assert target.role == "billing"
    r = post_form(client, f"/admin/staff/{target.public_id}/role", {"role": "support", "confirmed": "1"},
                  get_path="/admin/staff")
    assert r.status_code == 302
    db.session.refresh(target)
    assert target.role == "support"
    assert target_client.get("/staff").status_code == 302


def test_disable_and_enable(app, db, login_as, make_user):
    target = make_user("support")
    target_client = app.test_client()
    sign_in_session(target_client, target)
    client, admin = login_as("admin")
    r = post_form(client, f"/admin/staff/{target.public_id}/disable", {}, get_path="/admin/staff")
    assert r.status_code == 200 and "Disable the account" in r.get_data(as_text=True)  # asks first
    db.session.refresh(target)
    assert target.disabled_at is None
    post_form(client, f"/admin/staff/{target.public_id}/disable", {"confirmed": "1"}, get_path="/admin/staff")
    db.session.refresh(target)
    assert target.disabled_at is not None
    assert target_client.get("/support").status_code == 302
    post_form(client, f"/admin/staff/{target.public_id}/enable", {}, get_path="/admin/staff")
    db.session.refresh(target)
    assert target.disabled_at is None


def test_admin_cannot_demote_self_and_patients_are_not_staff(db, login_as, make_user):
    client, admin = login_as("admin")
    post_form(client, f"/admin/staff/{admin.public_id}/role", {"role": "billing", "confirmed": "1"},
              get_path="/admin/staff")
    db.session.refresh(admin)
    assert admin.role == "admin"
    patient = make_user("patient")
    r = post_form(client, f"/admin/staff/{patient.public_id}/disable", {"confirmed": "1"}, get_path="/admin/staff")
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


def test_staff_page_labels_the_identity_check_and_role_menus(db, login_as, make_user):
    target = make_user("support")
    client, _ = login_as("admin")
    html = client.get(f"/admin/staff/{target.public_id}").get_data(as_text=True)
    for field_id, text in (("method", "How did you check their identity?"), ("role", "Role")):
        assert re.search(rf'<label for="{field_id}"[^>]*>\s*{re.escape(text)}', html), field_id
        assert re.search(rf'<select[^>]*id="{field_id}"', html), field_id
    assert "Unlock" not in html  # only when locked
    listing = client.get("/admin/staff").get_data(as_text=True)
    assert f'href="/admin/staff/{target.public_id}"' in listing and "<select" not in listing


def test_confirmation_pages_carry_the_choice_and_cancel(db, login_as, make_user):
    target = make_user("billing", display_name="Bea Biller")
    client, _ = login_as("admin")
    r = post_form(client, f"/admin/staff/{target.public_id}/role", {"role": "clinician"},
                  get_path=f"/admin/staff/{target.public_id}")
    html = r.get_data(as_text=True)
    assert "Change Bea Biller&#39;s role from Billing staff to Clinician" in html
    assert 'name="confirmed" value="1"' in html and 'name="role" value="clinician"' in html
    assert f'href="/admin/staff/{target.public_id}"' in html  # cancel
    r = post_form(client, f"/admin/staff/{target.public_id}/disable", {}, get_path=f"/admin/staff/{target.public_id}")
    assert "Disable Bea Biller" in r.get_data(as_text=True)
    db.session.refresh(target)
    assert target.role == "billing" and target.disabled_at is None

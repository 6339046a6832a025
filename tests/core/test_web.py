"""The request frame (portal/core/web.py): one unit of work per request, denied rows that survive the
rollback, the form-page helper, and the link helpers.

These tests use an app of their own on a temporary SQLite file with real commits (not the rolled-back
test transaction), so "committed" means what it means in production: another connection sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import flash
from sqlalchemy import create_engine, func, select, text
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from portal.core.errors import DomainError, NotFound

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frame_app(tmp_path_factory, smtp_server):
    from flask_migrate import upgrade

    from config import TestingConfig
    from portal import create_app
    from portal.core.access import access_rule, deny
    from portal.core.forms import PortalForm
    from portal.core.web import form_page
    from portal.extensions import db
    from portal.patients.models import Patient

    path = tmp_path_factory.mktemp("frame") / "frame.sqlite3"
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}", WTF_CSRF_ENABLED=False,
                     MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))

    def add_patient(mrn):
        from datetime import date

        db.session.add(Patient(mrn=mrn, given_name="Frame", family_name="Test", birth_date=date(1970, 1, 1)))
        db.session.flush()

    @app.route("/_t/ok/<mrn>")
    @access_rule("public")
    def t_ok(mrn):
        add_patient(mrn)
        return "ok"

    @app.route("/_t/boom/<mrn>")
    @access_rule("public")
    def t_boom(mrn):
        add_patient(mrn)
        raise RuntimeError("a bug after a write")

    @app.route("/_t/probe/<mrn>")
    @access_rule("public")
    def t_probe(mrn):
        add_patient(mrn)
        deny("thing", mrn)
        raise NotFound()

    @app.route("/_t/deny-and-answer/<mrn>")
    @access_rule("public")
    def t_deny_and_answer(mrn):
        deny("thing", mrn)
        return "answered"

    class F(PortalForm):
        name = StringField("Name", validators=[DataRequired(), Length(max=5)])
        secret = PasswordField("Secret")

    def action(form):
        if form.name.data == "taken":
            raise DomainError("That name is taken.", field="name")
        if form.name.data == "nofld":
            raise DomainError("A rule without a field.")
        if form.name.data == "wrong":
            raise DomainError("Wrong secret.", field="secret")
        add_patient("FORM-" + form.name.data)
        return form.name.data

    @app.route("/_t/form", methods=["GET", "POST"])
    @access_rule("public")
    def t_form():
        form = F()
        return form_page(form, "_t_form.html", action, success="Saved.", redirect_to=lambda r: f"/done/{r}",
                         keep=("secret",) if "keep" in (form.secret.data or "") else ())

    from jinja2 import ChoiceLoader, DictLoader

    app.jinja_env.loader = ChoiceLoader([
        DictLoader({"_t_form.html": "{{ form.name.errors|join('|') }}#{{ form.secret.errors|join('|') }}"
                                    "#pw={{ form.secret.data }}#{{ get_flashed_messages()|join('|') }}"}),
        app.jinja_env.loader,
    ])
    yield app, path
    with app.app_context():
        db.engine.dispose()


def _count(path, sql, **params) -> int:
    """Read through a separate connection: only committed rows are visible."""
    eng = create_engine(f"sqlite:///{path}")
    try:
        with eng.connect() as c:
            return c.execute(text(sql), params).scalar_one()
    finally:
        eng.dispose()


def _patients(path, mrn):
    return _count(path, "SELECT count(*) FROM patients WHERE mrn = :m", m=mrn)


def _denied(path, object_id):
    return _count(path, "SELECT count(*) FROM audit_events WHERE action = 'access.denied' AND object_id = :o",
                  o=object_id)


def test_a_view_that_returns_commits(frame_app):
    app, path = frame_app
    r = app.test_client().get("/_t/ok/OK-1")
    assert r.status_code == 200
    assert _patients(path, "OK-1") == 1


def test_a_view_that_raises_rolls_back(frame_app):
    app, path = frame_app
    r = app.test_client().get("/_t/boom/BOOM-1")
    assert r.status_code == 500
    assert _patients(path, "BOOM-1") == 0


def test_a_denied_row_survives_the_rollback_exactly_once(frame_app):
    app, path = frame_app
    r = app.test_client().get("/_t/probe/PROBE-1")
    assert r.status_code == 404
    assert _patients(path, "PROBE-1") == 0  # the rest of the request is gone
    assert _denied(path, "PROBE-1") == 1  # the refusal is kept, once


def test_a_denied_row_in_a_request_that_commits_is_written_once(frame_app):
    app, path = frame_app
    assert app.test_client().get("/_t/deny-and-answer/ANS-1").status_code == 200
    assert _denied(path, "ANS-1") == 1


def test_a_route_class_refusal_is_committed_and_seen_from_another_connection(frame_app):
    """Staff on a patient-only page: 403 and an access.denied row another connection can read."""
    from portal.extensions import db
    from tests.conftest import sign_in_session
    from tests.factories import create_user

    app, path = frame_app
    with app.app_context():
        staff = create_user(role="billing", email="frame-billing@test.example")
        db.session.commit()
        client = app.test_client()
        sign_in_session(client, staff)
        staff_id = staff.id
    r = client.get("/record")
    assert r.status_code == 403
    assert _count(path, "SELECT count(*) FROM audit_events WHERE action = 'access.denied' AND actor_id = :a "
                        "AND object_id = 'records.summary'", a=staff_id) == 1


def test_the_audit_chain_stays_intact_after_replayed_rows(frame_app):
    from portal.core.audit import verify_chain

    app, _path = frame_app
    app.test_client().get("/_t/probe/PROBE-2")
    with app.app_context():
        checked, bad = verify_chain()
    assert checked > 0 and bad == []


# --- the form-page helper ---------------------------------------------------------------------

def test_form_page_get_renders_200(frame_app):
    app, _ = frame_app
    assert app.test_client().get("/_t/form").status_code == 200


def test_form_page_invalid_form_is_400_with_field_errors(frame_app):
    app, _ = frame_app
    r = app.test_client().post("/_t/form", data={"name": "toolongname"})
    assert r.status_code == 400
    assert "Field cannot be longer than 5 characters." in r.get_data(as_text=True)


def test_form_page_domain_error_is_appended_to_its_field(frame_app):
    app, path = frame_app
    r = app.test_client().post("/_t/form", data={"name": "taken", "secret": "s3cret"})
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert body.startswith("That name is taken.#")
    assert "pw=#" in body  # password fields are emptied on re-render
    assert _patients(path, "FORM-taken") == 0


def test_form_page_keeps_existing_field_errors_and_appends(frame_app):
    """A DomainError adds to a field's errors; it never replaces them."""
    from portal.core.web import field_error

    app, _ = frame_app
    with app.test_request_context("/_t/form", method="POST", data={"name": "x"}):
        from portal.core.forms import PortalForm

        class G(PortalForm):
            name = StringField("Name")

        form = G()
        form.validate()
        form.name.errors = ["first"]
        assert field_error(form, DomainError("second", field="name")) is True
        assert form.name.errors == ["first", "second"]


def test_form_page_error_without_a_field_is_flashed(frame_app):
    app, _ = frame_app
    r = app.test_client().post("/_t/form", data={"name": "nofld"})
    assert r.status_code == 400
    assert r.get_data(as_text=True).endswith("#A rule without a field.")


def test_form_page_keeps_a_password_when_asked(frame_app):
    app, _ = frame_app
    r = app.test_client().post("/_t/form", data={"name": "wrong", "secret": "keep me"})
    assert "pw=keep me#" in r.get_data(as_text=True)


def test_form_page_success_commits_flashes_and_redirects(frame_app):
    app, path = frame_app
    client = app.test_client()
    r = client.post("/_t/form", data={"name": "good"})
    assert r.status_code == 302 and r.location.endswith("/done/good")
    assert _patients(path, "FORM-good") == 1
    with client.session_transaction() as sess:
        assert ("success", "Saved.") in sess["_flashes"]


# --- links --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["//evil.example", "https://evil.example/x", "/\\evil", "record", "/a\\b",
                                 "/a\x00b", "/a\nb", "/a\x7fb", " //evil.example"])
def test_safe_next_refuses_other_sites(bad):
    from portal.core.web import safe_next

    assert safe_next(bad) is None


def test_safe_next_keeps_same_site_paths():
    from portal.core.web import safe_next

    assert safe_next("/record?x=1") == "/record?x=1"


def test_external_url_uses_the_public_base_outside_a_request(app):
    from portal.core.web import external_url

    with app.app_context():
        assert external_url("auth.activate") == app.config["PUBLIC_BASE_URL"].rstrip("/") + "/activate"
    with app.test_request_context("/", base_url="http://internal:9999"):
        assert external_url("auth.activate").startswith(app.config["PUBLIC_BASE_URL"].rstrip("/"))


def test_home_for_each_role(app):
    from portal.core.roles import Role
    from portal.core.web import home_for

    class U:
        def __init__(self, role):
            self.role = role

    with app.test_request_context():
        assert home_for(U(Role.PATIENT)) == "/home"
        for role in Role.staff():
            assert home_for(U(role)) == "/staff"

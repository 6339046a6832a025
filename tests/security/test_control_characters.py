"""Finding 5: NUL bytes and other control characters are refused with a field error by every text field
(the PortalForm base), never a 500 (PostgreSQL rejects NUL in text); the engine hides SQL parameters and
an unhandled error's log line carries no request data."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import pytest
from sqlalchemy import text
from werkzeug.datastructures import MultiDict
from wtforms import StringField, TextAreaField

import portal
from portal.core.forms import CONTROL_CHARACTER_MESSAGE, PortalForm, has_control_characters
from tests.security.helpers import form_csrf

NUL = "\x00"


def _post(client, path, data):
    token = form_csrf(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def _all_form_classes():
    for mod in pkgutil.walk_packages(portal.__path__, "portal."):
        if mod.name.endswith((".forms", ".routes", ".staff_routes")):
            importlib.import_module(mod.name)
    seen, todo = [], list(PortalForm.__subclasses__())
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\x08", "\x1b", "\x7f", "\x85", "\x0b", "\x0c"])
def test_control_characters_are_recognised(bad):
    assert has_control_characters(f"Ann{bad}a") and has_control_characters(f"Ann{bad}a", multiline=True)
    assert not has_control_characters("Ana María Núñez-O'Brien ＝ 李")
    assert has_control_characters("a\tb") and not has_control_characters("a\tb\r\nc", multiline=True)


def test_every_text_field_of_every_form_refuses_a_nul_byte(app):
    checked = []
    with app.test_request_context("/", method="POST"):
        for cls in _all_form_classes():
            names = [n for n, f in cls.__dict__.items()
                     if getattr(f, "field_class", None) and issubclass(f.field_class, StringField)]
            if not names:
                continue
            data = MultiDict({n: f"value{NUL}here" for n in names})
            try:
                form = cls(formdata=data, meta={"csrf": False})
            except TypeError:
                continue  # needs constructor arguments; covered through its route
            for f in form:
                if hasattr(f, "choices") and f.choices is None:
                    f.choices = []
            assert form.validate() is False, cls
            for n in names:
                assert str(CONTROL_CHARACTER_MESSAGE) in form[n].errors, (cls, n, form[n].errors)
                checked.append(f"{cls.__name__}.{n}")
    print(f"\n{len(checked)} text fields refuse NUL")
    assert len(checked) >= 15


def test_multiline_fields_keep_line_breaks(app):
    class Note(PortalForm):
        body = TextAreaField("Body")

    with app.test_request_context("/", method="POST"):
        assert Note(formdata=MultiDict({"body": "line one\r\n\tline two"}), meta={"csrf": False}).validate()
        form = Note(formdata=MultiDict({"body": "line one\x00"}), meta={"csrf": False})
        assert not form.validate() and form.body.errors == [str(CONTROL_CHARACTER_MESSAGE)]


def test_nul_bytes_in_forms_and_filters_are_field_errors_not_500s(app, db, login_as, make_user):
    """On PostgreSQL a NUL reaching a query is an error ("A string literal cannot contain NUL")."""
    client = app.test_client()
    for path, data in (("/signin", {"email": f"someone{NUL}@test.example", "password": "whatever 1234 pw"}),
                       ("/password/forgot", {"email": f"someone{NUL}@test.example"})):
        r = _post(client, path, data)
        assert r.status_code in (400, 401), (path, r.status_code)
        assert "invisible control characters" in r.get_data(as_text=True), path
    admin, _ = login_as("admin")
    r = _post(admin, "/admin/staff/new", {"email": "new@test.example", "display_name": f"Eve{NUL}", "role": "support"})
    assert r.status_code == 400 and "invisible control characters" in r.get_data(as_text=True)
    for field in ("actor", "mrn"):
        r = admin.get("/admin/audit", query_string={field: f"x{NUL}y"})
        assert r.status_code == 400 and "invisible control characters" in r.get_data(as_text=True), field
    r = admin.get("/support", query_string={"q": f"Smith{NUL}"})
    assert r.status_code == 200 and "invisible control characters" in r.get_data(as_text=True)
    for path in (f"/admin/audit?page=1{NUL}", f"/admin/audit/export.csv?actor=a{NUL}"):
        assert admin.get(path).status_code in (200, 400), path
    for path in (f"/support/patients/abc{NUL}def", f"/admin/staff/abc{NUL}/unlock", f"/record/{NUL}"):
        r = admin.get(path) if not path.endswith("unlock") else _post(admin, path, {})
        assert r.status_code == 404, (path, r.status_code)
    patient, _ = login_as("patient")
    assert patient.get(f"/support/patients/{NUL}").status_code in (403, 404)


def test_engine_hides_parameters(app, db):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["hide_parameters"] is True
    assert db.engine.hide_parameters is True
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as exc:
        with db.session.begin_nested():
            db.session.execute(text("SELECT * FROM no_such_table WHERE x = :secret"),
                               {"secret": "canary-param-77"})
    assert "canary-param-77" not in str(exc.value)


def test_unhandled_error_log_carries_no_request_data(app, db, caplog):
    from flask import request
    from sqlalchemy.exc import IntegrityError

    canary = "canary-name-Quintessa"
    caplog.set_level(logging.DEBUG)
    with app.test_request_context(f"/signin?q={canary}"):
        try:
            raise IntegrityError("INSERT INTO users (email) VALUES (%(email)s)", {"email": request.args["q"]},
                                 Exception(f'Key (email)=({request.args["q"]}) already exists'))
        except IntegrityError as exc:
            body, status = app.handle_user_exception(exc)
    assert status == 500
    assert "IntegrityError" in caplog.text and "INSERT INTO users" in caplog.text
    assert canary not in caplog.text and all(canary not in str(rec.args) for rec in caplog.records)


def test_a_value_the_database_refuses_is_a_400_not_a_500(app, db, caplog):
    """The safety net behind the forms' length limits (PostgreSQL: "value too long for type character
    varying(100)"): a 400 page, and the log line holds no value."""
    from sqlalchemy.exc import DataError

    canary = "canary-overlong-" + "x" * 40
    caplog.set_level(logging.DEBUG)
    with app.test_request_context("/"):
        try:
            raise DataError("UPDATE patients SET family_name=%(f)s", {"f": canary},
                            Exception(f"value too long for type character varying(100): {canary}"))
        except DataError as exc:
            body, status = app.handle_user_exception(exc)
    assert status == 400 and "could not process" in body
    assert "DataError" in caplog.text and canary not in caplog.text


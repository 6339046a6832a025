"""SECURITY.md §4.16 (partly): server-side validation with field errors, values kept (never passwords),
bounded lengths and request size."""

from __future__ import annotations

import re

from tests.security.helpers import form_csrf

SECRET_TYPED = "typed secret value 8842 zq"


def _post(client, path, data):
    token = form_csrf(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def test_field_errors_values_kept_password_never_echoed(app, db):
    client = app.test_client()
    r = _post(client, "/activate", {"code": "ABCD", "birth_date-month": "2", "birth_date-day": "x",
                                    "birth_date-year": "19x"})
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert 'aria-invalid="true"' in body and "field-error" in body
    assert 'value="19x"' in body and 'value="ABCD"' in body
    r = _post(client, "/signin", {"email": "someone@test.example", "password": SECRET_TYPED})
    body = r.get_data(as_text=True)
    assert r.status_code == 401 and "someone@test.example" in body and SECRET_TYPED not in body


def test_overlong_input_is_refused_cleanly(app, db, login_as):
    client = app.test_client()
    huge = "a" * 5000
    for path, data in (("/signin", {"email": huge + "@x.example", "password": huge}),
                       ("/password/forgot", {"email": huge}),
                       ("/activate", {"code": huge, "birth_date": "1980-01-01", "email": "a@b.example",
                                      "password": huge})):
        r = _post(client, path, data)
        assert r.status_code == 400, (path, r.status_code)
    admin, _ = login_as("admin")
    assert admin.get("/admin/audit", query_string={"mrn": huge}).status_code == 400
    assert admin.get("/admin/audit", query_string={"actor": huge}).status_code == 400
    r = admin.get("/support", query_string={"q": huge})
    assert r.status_code == 200 and "field-error" in r.get_data(as_text=True)
    assert admin.get("/admin/audit?page=-5").status_code == 200
    r = _post(admin, "/admin/staff/new", {"email": "x@y.example", "display_name": huge, "role": "support"})
    assert r.status_code == 400


def test_request_body_size_is_bounded(app, db):
    assert app.config["MAX_CONTENT_LENGTH"] <= 10 * 1024 * 1024
    client = app.test_client()
    r = client.post("/signin", data={"email": "a@b.example", "password": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
    assert r.status_code in (400, 413)
    assert "too large" in r.get_data(as_text=True)


def test_sql_metacharacters_in_search_and_filters_are_inert(app, db, make_user, login_as):
    """A sample of §4.19: quotes and SQL in every search/filter box change nothing and error nowhere."""
    victim = make_user("patient")
    # a name that matches none of the payloads' search terms
    victim._patient.given_name, victim._patient.family_name = "Quinta", "Zabrowski"
    db.session.commit()
    admin, _ = login_as("admin")
    payloads = ["' OR '1'='1", "\"; DROP TABLE users; --", "%' UNION SELECT email FROM users --", "\\", "x_%"]
    for p in payloads:
        r = admin.get("/support", query_string={"q": p})
        assert r.status_code == 200 and victim._patient.mrn not in r.get_data(as_text=True), p
        for field in ("actor", "mrn"):
            r = admin.get("/admin/audit", query_string={field: p})
            assert r.status_code in (200, 400), (field, p, r.status_code)  # 400: longer than the field allows
            if r.status_code == 200:
                assert re.search(r"\b0 events\b", r.get_data(as_text=True)), (field, p)
        assert admin.get("/admin/audit", query_string={"action": p}).status_code == 400
    r = admin.get("/support", query_string={"q": victim._patient.mrn})
    assert victim._patient.mrn in r.get_data(as_text=True)  # the search itself still works

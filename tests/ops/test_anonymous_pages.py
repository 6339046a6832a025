"""G3 (PERFORMANCE.md, issue 12): anonymous pages set no session cookie and sign nothing for the header's
language form; the language POST is Origin-checked instead of token-checked; every other form keeps its
CSRF token (tests/security/test_csrf.py enumerates them)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD

SESSION = "portal_session"


def _cookies(r) -> list[str]:
    return r.headers.getlist("Set-Cookie")


@pytest.mark.parametrize("path", ["/help", "/", "/no-such-page", "/readyz", "/healthz"])
def test_anonymous_pages_without_a_form_set_no_cookie_at_all(client, path):
    r = client.get(path)
    assert r.status_code in (200, 404)
    assert _cookies(r) == [], f"{path} set {_cookies(r)}"
    assert 'name="csrf-token"' not in r.get_data(as_text=True)
    assert 'name="csrf_token"' not in r.get_data(as_text=True)  # the language form carries no token


def test_anonymous_signin_sets_no_session_cookie_only_a_plain_csrf_secret(client):
    r = client.get("/signin")
    cookies = _cookies(r)
    assert not any(c.startswith(SESSION + "=") for c in cookies), cookies
    [csrf] = [c for c in cookies if c.startswith("portal_csrf=")]
    assert re.match(r"portal_csrf=[0-9a-f]{40};", csrf) and "HttpOnly" in csrf and "SameSite=Lax" in csrf
    again = client.get("/signin")  # the browser sends it back: nothing new to set
    assert _cookies(again) == []


def test_signin_still_needs_the_token_and_works_with_it(client, make_user):
    user = make_user("patient")
    assert client.post("/signin", data={"email": user.email, "password": PASSWORD}).status_code == 400
    html = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post("/signin", data={"csrf_token": token, "email": user.email, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify")
    cookies = _cookies(r)
    assert any(c.startswith(SESSION + "=") for c in cookies)  # signing in starts the real session
    assert any(c.startswith("portal_csrf=;") for c in cookies)  # and the separate secret is dropped


def test_a_token_is_refused_with_another_visitors_csrf_cookie(app, db, make_user):
    user = make_user("patient")
    attacker, victim = app.test_client(), app.test_client()
    html = attacker.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    victim.get("/signin")  # the victim has a secret of their own
    r = victim.post("/signin", data={"csrf_token": token, "email": user.email, "password": PASSWORD})
    assert r.status_code == 400


def test_cross_origin_language_post_is_refused_and_changes_nothing(client):
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}, {}):
        r = client.post("/language", data={"lang": "es", "next": "/help"}, headers=headers)
        assert r.status_code == 400, headers
        assert _cookies(r) == [], headers
    assert 'lang="en"' in client.get("/help", headers={"Accept-Language": "en"}).get_data(as_text=True)


@pytest.mark.parametrize("headers", [{"Origin": "http://localhost"}, {"Referer": "http://localhost/help?x=1"}])
def test_same_origin_language_post_sets_only_a_language_cookie(client, headers):
    r = client.post("/language", data={"lang": "es", "next": "/help"}, headers=headers)
    assert r.status_code == 302 and r.headers["Location"].endswith("/help")
    [cookie] = _cookies(r)
    assert cookie.startswith("portal_lang=es;") and "HttpOnly" in cookie
    page = client.get("/help", headers={"Accept-Language": "en"})
    assert 'lang="es"' in page.get_data(as_text=True) and _cookies(page) == []


# --- G9: a web worker imports only what it serves --------------------------------------------------------

CLI_OR_WORKER_ONLY = ("alembic", "flask_migrate", "mako", "celery", "kombu", "billiard", "amqp", "zxcvbn",
                      "icalendar", "segno", "PIL",
                      # loaded where used: a passkey ceremony, a payment, a PDF (its own pool), a FHIR import
                      "webauthn", "stripe", "aiohttp", "requests", "weasyprint", "fhir", "pydantic")


def test_web_worker_does_not_import_cli_or_worker_modules(tmp_path):
    """`import wsgi` (what gunicorn does) and serve a page: no Alembic, Celery, zxcvbn, icalendar, segno, PIL,
    py_webauthn, stripe, WeasyPrint or fhir.resources. They load where used: `flask db`, the Celery worker or
    the first task sent, choosing a password, the authenticator set-up page, an .ics file, an upload, a passkey
    ceremony, a payment, a PDF, a FHIR import."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import sys, json\nimport wsgi\nc = wsgi.app.test_client()\n"
            "codes = [c.get(p).status_code for p in ('/help', '/signin', '/readyz')]\n"
            f"print(json.dumps({{'codes': codes, 'loaded': [m for m in {CLI_OR_WORKER_ONLY!r} if m in sys.modules]}}))")
    env = dict(os.environ, PORTAL_ENV="development", DATABASE_URL=f"sqlite:///{tmp_path / 'w.sqlite3'}",
               PYTHONPATH=str(root), MAIL_FILE_DIR=str(tmp_path))
    env.pop("TEST_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"][:2] == [200, 200]
    assert result["loaded"] == [], f"a web worker imported {result['loaded']}"


# --- G3: the anonymous sign-in and help pages are rendered once per language ------------------------------

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _renders(app):
    from flask import template_rendered

    seen = []

    def record(sender, template, context, **extra):
        seen.append(template.name)

    template_rendered.connect(record, app)
    return seen, lambda: template_rendered.disconnect(record, app)


def test_anonymous_signin_is_rendered_once_per_language_with_a_token_of_each_visitors_own(app, db, make_user):
    user = make_user("patient")
    seen, stop = _renders(app)
    try:
        first, second = app.test_client(), app.test_client()
        page1 = first.get("/signin", headers={"Accept-Language": "en"}).get_data(as_text=True)
        page2 = second.get("/signin", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert seen == ["accounts/signin.html"]  # the second visitor got the stored copy
        t1, t2 = TOKEN.search(page1).group(1), TOKEN.search(page2).group(1)
        assert t1 != t2 and "\x00" not in page2
        assert TOKEN.sub("", page1) == TOKEN.sub("", page2)  # the same page but for the token
        # each token is bound to its own visitor's secret: the second visitor's works for them...
        r = second.post("/signin", data={"csrf_token": t2, "email": user.email, "password": PASSWORD})
        assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify")
        # ...and the first visitor's does not work for anyone else
        third = app.test_client()
        third.get("/signin")
        assert third.post("/signin", data={"csrf_token": t1, "email": user.email,
                                           "password": PASSWORD}).status_code == 400
        spanish = app.test_client().get("/signin", headers={"Accept-Language": "es"}).get_data(as_text=True)
        assert 'lang="es"' in spanish and seen.count("accounts/signin.html") == 2
        app.test_client().get("/help", headers={"Accept-Language": "es"})
        app.test_client().get("/help", headers={"Accept-Language": "es"})
        assert seen.count("main/help.html") == 1
    finally:
        stop()


def test_pages_that_can_differ_are_rendered_each_time(app, db, login_as):
    seen, stop = _renders(app)
    try:
        anon = app.test_client()
        anon.get("/signin")
        anon.get("/signin?next=/record")
        anon.get("/signin?reason=signed_out")
        assert seen == ["accounts/signin.html"] * 3  # a query string is never served from the store
        staff, user = login_as("support")
        seen.clear()
        page = staff.get("/help").get_data(as_text=True)
        assert seen == ["main/help.html"] and "signout-form" in page and user.display_name in page
        app.test_client().get("/help")
        seen.clear()
        again = staff.get("/help").get_data(as_text=True)  # signed in: never the anonymous copy
        assert seen == ["main/help.html"] and "signout-form" in again
        assert "signout-form" not in app.test_client().get("/help").get_data(as_text=True)
    finally:
        stop()


def test_a_flash_message_is_never_stored_for_others(app, db):
    seen, stop = _renders(app)
    try:
        visitor = app.test_client()
        with visitor.session_transaction() as s:
            s["_flashes"] = [("info", "Only for this visitor")]
        assert "Only for this visitor" in visitor.get("/help").get_data(as_text=True)
        other = app.test_client().get("/help").get_data(as_text=True)
        assert "Only for this visitor" not in other and seen == ["main/help.html"] * 2
    finally:
        stop()


def test_the_store_can_be_turned_off(app, db, monkeypatch):
    monkeypatch.setitem(app.config, "ANONYMOUS_PAGE_CACHE", False)
    seen, stop = _renders(app)
    try:
        for _ in range(2):
            app.test_client().get("/help")
        assert seen == ["main/help.html"] * 2
    finally:
        stop()


def test_the_anonymous_404_page_is_rendered_once_and_carries_each_requests_own_path(app, db):
    seen, stop = _renders(app)
    try:
        first = app.test_client().get("/no-such-page?x=1").get_data(as_text=True)
        second = app.test_client().get('/other"><script>x</script>?a=<b>').get_data(as_text=True)
        assert seen == ["errors/404.html"]
        assert 'name="next" value="/no-such-page?x=1"' in first
        assert "<script>x</script>" not in second and "&lt;script&gt;" in second  # escaped, as a render would
        assert "\x00" not in second and "Page not found" in second
        app.test_client().get("/third", headers={"Accept-Language": "es"})
        assert seen == ["errors/404.html"] * 2  # one per language
    finally:
        stop()

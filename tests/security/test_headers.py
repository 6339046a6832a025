"""SECURITY.md §5.24 (security headers on every response class, HSTS in production, no banners),
§4.18 (no inline script/style; CSP without unsafe-inline/unsafe-eval) and §5.26 (production settings)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD, sign_in_session
from tests.security.helpers import (
    ROLES,
    form_csrf,
    inline_code_problems,
    methods,
    production_probe,
    routes,
    sign_in_with_password,
)


def _csp(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        bits = part.split()
        if bits:
            out[bits[0]] = bits[1:]
    return out


def check_security_headers(r, where: str):
    h = r.headers
    csp = h.get("Content-Security-Policy")
    assert csp, f"{where}: no CSP"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    d = _csp(csp)
    assert d.get("frame-ancestors") == ["'none'"], where
    assert d.get("script-src") == ["'self'"] and d.get("style-src") == ["'self'"], where
    assert d.get("object-src") == ["'none'"] and d.get("base-uri") == ["'none'"], where
    assert h.get("X-Content-Type-Options") == "nosniff", where
    assert h.get("Referrer-Policy") == "same-origin", where
    pp = h.get("Permissions-Policy", "")
    assert "camera=()" in pp and "microphone=()" in pp and "geolocation=()" in pp, where
    assert re.fullmatch(r"[A-Za-z0-9-]{8,64}", h.get("X-Request-ID", "")), \
        f"{where}: X-Request-ID is {h.get('X-Request-ID')!r}"
    assert "Server" not in h and "X-Powered-By" not in h, where


@pytest.fixture()
def response_classes(app, db, login_as, token_for):
    client, user = login_as("patient")
    anon = app.test_client()
    return {
        "public page": anon.get("/help"),
        "home page": anon.get("/"),
        "health check": anon.get("/healthz"),
        "404": anon.get("/no/such/page"),
        "405 (shown as 404)": anon.delete("/help"),
        "static file": anon.get("/static/css/portal.css"),
        "static script": anon.get("/static/js/nav.js"),
        "redirect to sign-in": anon.get("/record"),
        "400 CSRF": anon.post("/signin", data={"email": "x@y.example", "password": "z"}),
        "signed-in page": client.get("/record"),
        "403": client.get("/admin/staff"),
        "json keepalive": client.post("/account/keepalive", headers={"X-CSRFToken": token_for(client)}),
        "429 (rate limit)": _rate_limited(app),
    }


def _rate_limited(app):
    """Flask-Limiter's own 429 (60 sign-in POSTs a minute per IP), before any view runs."""
    client = app.test_client()
    ip = {"environ_base": {"REMOTE_ADDR": "203.0.113.99"}}
    token = form_csrf(client.get("/signin", **ip).get_data(as_text=True))
    for _ in range(70):
        r = client.post("/signin", data={"csrf_token": token}, **ip)
        if r.status_code == 429:
            return r
    raise AssertionError("no 429 after 70 sign-in POSTs")


def test_security_headers_on_every_response_class(response_classes):
    failures = []
    for name, r in response_classes.items():
        try:
            check_security_headers(r, name)
        except AssertionError as exc:
            failures.append(f"{name} ({r.status_code}): {str(exc).splitlines()[0]}")
    assert not failures, failures
    codes = sorted({r.status_code for r in response_classes.values()})
    print(f"\nresponse classes checked: {len(response_classes)} (status codes {codes})")
    assert {200, 302, 400, 403, 404} <= set(codes)


def test_request_ids_are_unique_and_sane(app, db):
    client = app.test_client()
    ids = {client.get("/help").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5
    assert client.get("/help", headers={"X-Request-ID": "proxy-abc-12345"}).headers["X-Request-ID"] == "proxy-abc-12345"
    for bad in ("<script>alert(1)</script>", "a" * 65, "short", "id with spaces and ; commas"):
        assert re.fullmatch(r"[0-9a-f]{32}", client.get("/help", headers={"X-Request-ID": bad}).headers["X-Request-ID"])


def test_static_files_are_cacheable_pages_are_not(response_classes):
    assert "no-store" not in response_classes["static file"].headers.get("Cache-Control", "")
    for name in ("public page", "signed-in page", "404", "403"):
        assert "no-store" in response_classes[name].headers.get("Cache-Control", ""), name


def test_hsts_only_in_production(response_classes):
    for r in response_classes.values():
        assert "Strict-Transport-Security" not in r.headers
    probe = production_probe()
    hsts = probe["hsts"]
    assert hsts and int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31536000
    check_security_headers_dict(probe["headers"])
    assert probe["scheme"] == "https" and probe["proxy_fix"] == "ProxyFix"


def check_security_headers_dict(h: dict):
    assert "unsafe-inline" not in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "same-origin"


# --- no inline script or style in any page we render ----------------------------------------------

def _pages_for(app, client) -> dict[str, str]:
    pages = {}
    for rule, _access in routes(app):
        if "GET" in methods(rule) and not rule.arguments:
            r = client.get(rule.rule)
            if r.mimetype == "text/html":
                pages[rule.rule] = r.get_data(as_text=True)
    return pages


def test_no_inline_script_or_style_in_any_rendered_page(app, db, make_user, login_as):
    victim = make_user("patient")
    pid = victim._patient.public_id
    pages: dict[str, str] = {}

    anon = app.test_client()
    pages.update({f"anonymous {k}": v for k, v in _pages_for(app, anon).items()})
    pages["404"] = anon.get("/nope").get_data(as_text=True)
    pages["400"] = anon.post("/signin", data={}).get_data(as_text=True)
    pages["signin error"] = sign_in_with_password(anon, victim.email, "wrong wrong wrong").get_data(as_text=True)

    for role in ROLES:
        client, user = login_as(role)
        pages.update({f"{role} {k}": v for k, v in _pages_for(app, client).items()})
        pages[f"{role} 403"] = client.get("/admin/audit").get_data(as_text=True) if role != "admin" else ""
        pages[f"{role} patient"] = client.get(f"/support/patients/{pid}").get_data(as_text=True)
        pages[f"{role} search"] = client.get(f"/support?q={victim._patient.family_name}").get_data(as_text=True)
        if role == "patient":
            page = client.get("/account/recovery-codes").get_data(as_text=True)
            pages["recovery codes"] = client.post("/account/recovery-codes", data={
                "csrf_token": form_csrf(page), "current_password": PASSWORD}).get_data(as_text=True)
        if role == "support":
            fresh = make_user("patient", verified=False, mfa=False)  # an account not taken up yet
            page = client.get(f"/support/patients/{fresh._patient.public_id}").get_data(as_text=True)
            pages["activation code"] = client.post(f"/support/patients/{fresh._patient.public_id}/activation",
                                                   data={"csrf_token": form_csrf(page)}).get_data(as_text=True)
        if role == "admin":
            pages["audit filtered"] = client.get("/admin/audit?action=patient.view").get_data(as_text=True)
            pages["audit invalid"] = client.get("/admin/audit?start=notadate").get_data(as_text=True)
            pages["staff new invalid"] = client.post("/admin/staff/new", data={
                "csrf_token": form_csrf(client.get("/admin/staff/new").get_data(as_text=True))}).get_data(as_text=True)

    enrol = app.test_client()
    sign_in_session(enrol, make_user("patient", mfa=False), mfa_done=False)
    pages["mfa setup (QR code)"] = enrol.get("/signin/setup").get_data(as_text=True)
    pending = app.test_client()
    sign_in_session(pending, make_user("patient"), mfa_done=False)
    pages["mfa verify"] = pending.get("/signin/verify").get_data(as_text=True)
    pages["mfa recovery"] = pending.get("/signin/recovery").get_data(as_text=True)

    pages = {k: v for k, v in pages.items() if v}
    assert "<svg" in pages["mfa setup (QR code)"] and "activation-code" in pages["activation code"]
    problems = {name: p for name, html in pages.items() if (p := inline_code_problems(html))}
    print(f"\npages checked for inline script/style: {len(pages)}; with problems: {len(problems)}")
    assert not problems, problems

"""Rules a mutation check found unguarded (issue 5): each test here fails when its rule is broken.

- every staff role on every patient-only page: 403 and an access.denied row (the route class itself,
  not just the ownership scope's 404);
- a refused request's audit row is committed (read back over a fresh connection), and so is the
  account page's access-history view (finding 8);
- production keeps CSRF on (a POST without a token is a 400);
- the whole CSP and every security header, directive by directive, written out here (not imported from
  the code under test, so a changed constant fails)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, select, text

from portal.core.audit import AuditEvent
from tests.conftest import sign_in_session
from tests.security.helpers import ROOT, routes

STAFF = ("clinician", "support", "billing", "admin")

EXPECTED_CSP = {
    "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'", "data:"],
    "font-src": ["'self'"], "connect-src": ["'self'"], "object-src": ["'none'"], "base-uri": ["'none'"],
    "form-action": ["'self'"], "frame-ancestors": ["'none'"],
}
EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(self), usb=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
EXPECTED_HSTS = "max-age=63072000; includeSubDomains"


def _csp(value: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(";"):
        bits = part.split()
        if bits:
            assert bits[0] not in out, f"directive {bits[0]} twice"
            out[bits[0]] = bits[1:]
    return out


def _patient_pages(app) -> list[str]:
    return [rule.rule for rule, access in routes(app)
            if access == ("patient", None) and "GET" in rule.methods and not rule.arguments]


def _denied(db, actor_id) -> list[str]:
    db.session.expire_all()
    return db.session.execute(select(AuditEvent.object_id).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == actor_id,
        AuditEvent.object_type == "route")).scalars().all()


@pytest.mark.parametrize("role", STAFF)
def test_every_staff_role_is_refused_every_patient_only_page(app, db, login_as, role):
    pages = _patient_pages(app)
    assert {"/home", "/record"} <= set(pages), pages
    client, user = login_as(role)
    refused = []
    for path in pages:
        before = len(_denied(db, user.id))
        r = client.get(path)
        rows = _denied(db, user.id)
        if r.status_code != 403 or len(rows) != before + 1:
            refused.append((path, r.status_code, len(rows) - before))
    assert not refused, f"{role}: not a 403 with one access.denied row: {refused}"


def _count(url: str, sql: str, **params) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def test_refusals_and_the_access_history_view_are_committed(committing_app):
    from portal.extensions import db
    from tests.factories import PatientFactory, create_user

    app = committing_app
    with app.app_context():
        def make_patient(**kw):
            return PatientFactory.create(**kw)

        staff = create_user("clinician", make_patient=make_patient)
        patient = create_user("patient", make_patient=make_patient)
        db.session.commit()
        staff_client, patient_client = app.test_client(), app.test_client()
        sign_in_session(staff_client, staff)
        sign_in_session(patient_client, patient)
        ids = staff.id, patient.id, patient._patient.id
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert staff_client.get("/record").status_code == 403
    assert patient_client.get("/admin/staff").status_code == 403
    assert staff_client.get("/support/patients/no-such-patient-id").status_code == 404
    assert patient_client.get("/account").status_code == 200
    denied = "SELECT count(*) FROM audit_events WHERE action = 'access.denied' AND actor_id = :a"
    assert _count(url, denied, a=ids[0]) == 2  # the route refusal and the unknown id
    assert _count(url, denied, a=ids[1]) == 1
    assert _count(url, "SELECT count(*) FROM audit_events WHERE action = 'patient.view' AND actor_id = :a "
                       "AND category = 'access_history' AND patient_id = :p", a=ids[1], p=ids[2]) == 1


PROD_CSRF_PROBE = r"""
import json, os
os.environ.update(SECRET_KEY="Zq3vT9pL0xW7mN2rB8kC5yH1dF6gJ4sA-_eUoIiP", DATABASE_URL="postgresql+psycopg://u@db/portal",
                  PORTAL_ENV="production", FIELD_ENCRYPTION_KEYS="q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4=",
                  AUDIT_HMAC_KEY="a-real-audit-key-" + "z" * 32, REDIS_URL="redis://127.0.0.1:1/0")
from config import ProductionConfig
from portal import create_app
from portal.extensions import db
app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI="sqlite://", RATELIMIT_STORAGE_URI="memory://")
with app.app_context():
    db.create_all()
c = app.test_client()
base = {"base_url": "https://portal.example", "headers": {"X-Forwarded-Proto": "https"}}
page = c.get("/signin", **base)
post = c.post("/signin", data={"email": "a@b.example", "password": "whatever it is 123"}, **base)
forgot = c.post("/password/forgot", data={"email": "a@b.example"}, **base)
print(json.dumps({"csrf_enabled": app.config.get("WTF_CSRF_ENABLED", True), "post": post.status_code,
                  "forgot": forgot.status_code, "headers": dict(page.headers)}))
"""


@pytest.fixture(scope="module")
def production():
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROD_CSRF_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_production_keeps_csrf_on(production):
    assert production["csrf_enabled"] is not False
    assert production["post"] == 400 and production["forgot"] == 400


def _check_pinned(headers, where, hsts=False):
    assert _csp(headers["Content-Security-Policy"]) == EXPECTED_CSP, where
    for name, value in EXPECTED_HEADERS.items():
        assert headers.get(name) == value, (where, name, headers.get(name))
    if hsts:
        assert headers.get("Strict-Transport-Security") == EXPECTED_HSTS, where
    else:
        assert "Strict-Transport-Security" not in headers, where


def test_every_security_header_pinned_in_production(production):
    _check_pinned(production["headers"], "production /signin", hsts=True)


def test_every_security_header_pinned_on_each_response_class(app, db, login_as):
    client, _ = login_as("patient")
    anon = app.test_client()
    for where, r in (("page", anon.get("/signin")), ("static", anon.get("/static/css/portal.css")),
                     ("healthz", anon.get("/healthz")), ("404", anon.get("/no/such")),
                     ("403", client.get("/admin/audit")), ("signed in", client.get("/record"))):
        _check_pinned(r.headers, where)


def test_the_totp_step_claim_refuses_a_step_already_claimed_on_any_database(app, db, make_user):
    """Another request claimed this step after our copy of the user was loaded: the in-memory check
    passes, so only the conditional UPDATE (`last_step < step`, not `<=`) can refuse. Before, only the
    PostgreSQL race test noticed a `<=` (SQLite's BEGIN IMMEDIATE serialises the threads)."""
    import pyotp
    from sqlalchemy import update

    from portal.accounts import mfa
    from portal.accounts.models import User

    t = 1_800_000_000
    user = make_user("patient")
    db.session.commit()
    step = t // 30
    db.session.execute(update(User).where(User.id == user.id).values(totp_last_step=step)
                       .execution_options(synchronize_session=False))
    assert user.totp_last_step is None  # our copy is stale, as in a concurrent request
    assert mfa.verify_totp(user, pyotp.TOTP(user._totp_secret).at(t), now=t) is False
    assert mfa.verify_totp(user, pyotp.TOTP(user._totp_secret).at(t + 30), now=t + 30) is True

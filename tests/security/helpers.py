"""Shared helpers for the security suite (route tables, CSRF tokens, table snapshots, HTML checks)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from html.parser import HTMLParser

from sqlalchemy import func, select

from tests.helpers import form_token, post_form

ROLES = ("patient", "clinician", "support", "billing", "admin")
STAFF_ROLES = ROLES[1:]
DUMMY_ID = "0123456789abcdef0123456789abcdef"  # well-formed public id that no row has
DUMMY_TOKEN = "not-a-real-token.AAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBB"

_CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')


form_csrf = form_token  # the name these modules use


def strip_tokens(html: str) -> str:
    """Body with CSRF tokens removed (they differ per session by design)."""
    html = _CSRF_META.sub('name="csrf-token" content=""', html)
    return re.sub(r'(name="csrf_token"[^>]*?value=")[^"]+(")', r"\1\2", html)


def build(app, endpoint: str, **values) -> str:
    return app.url_map.bind("localhost").build(endpoint, values)


def routes(app):
    """(rule, access) for every non-static rule; access is the view's `_access` or None."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        out.append((rule, getattr(app.view_functions[rule.endpoint], "_access", None)))
    return sorted(out, key=lambda ra: ra[0].rule)


def methods(rule) -> set[str]:
    return set(rule.methods) - {"HEAD", "OPTIONS"}


def table_names(db, exclude=("alembic_version",)) -> list[str]:
    return sorted(t for t in db.metadata.tables if t not in exclude)


def row_counts(db, tables) -> dict[str, int]:
    db.session.flush()
    out = {}
    for name in tables:
        t = db.metadata.tables[name]
        out[name] = db.session.execute(select(func.count()).select_from(t)).scalar_one()
    return out


def snapshot(db, tables, skip_columns=()) -> dict[str, list[tuple]]:
    """Every row of every table (minus `skip_columns`, given as "table.column")."""
    db.session.flush()
    out = {}
    for name in tables:
        t = db.metadata.tables[name]
        cols = [c for c in t.c if f"{name}.{c.name}" not in skip_columns]
        out[name] = [tuple(r) for r in db.session.execute(select(*cols).order_by(*t.primary_key.columns))]
    return out


def dump_text(db) -> str:
    """Every value of every column of every table, as text (a 'database dump' for canary searches)."""
    db.session.flush()
    parts = []
    for name in table_names(db, exclude=()):
        t = db.metadata.tables[name]
        for row in db.session.execute(select(t)):
            parts.extend("" if v is None else str(v) for v in row)
    return "\n".join(parts)


class InlineCodeFinder(HTMLParser):
    """Collects inline <script> (no src), <style> elements, style= and on*= attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {k.lower() for k, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style= on <{tag}>")
        for n in names:
            if n.startswith("on"):
                self.problems.append(f"{n}= on <{tag}>")

    handle_startendtag = handle_starttag


def inline_code_problems(html: str) -> list[str]:
    p = InlineCodeFinder()
    p.feed(html)
    return p.problems


def sign_in_with_password(client, email: str, password: str, **kw):
    """The real password step: GET /signin for a token, POST the form."""
    return post_form(client, "/signin", {"email": email, "password": password}, **kw)


def submit_code(client, code: str, path: str = "/signin/verify", **kw):
    return post_form(client, path, {"code": code}, **kw)


def full_sign_in(client, user, password: str):
    """Password + current TOTP through the routes; returns the final response."""
    import pyotp

    r = sign_in_with_password(client, user.email, password)
    assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify"), r.status_code
    return submit_code(client, pyotp.TOTP(user._totp_secret).now())


def session_cookie(client, app) -> str | None:
    c = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return c.value if c else None


def replay_client(app, cookie_value: str):
    """A fresh browser holding only a copied session cookie."""
    c = app.test_client()
    c.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie_value)
    return c


ROOT = Path(__file__).resolve().parents[2]

PROD_PROBE = r"""
import json, os, sys
os.environ.update(SECRET_KEY="Zq3vT9pL0xW7mN2rB8kC5yH1dF6gJ4sA-_eUoIiP", DATABASE_URL="postgresql+psycopg://u@db/portal",
                  FIELD_ENCRYPTION_KEYS="q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4=", PORTAL_ENV="production",
                  REDIS_URL="redis://127.0.0.1:1/0",  # required in production; never reached by this probe
                  AUDIT_HMAC_KEY="a-real-audit-key-" + "z" * 32)
from config import ProductionConfig
from portal import create_app
app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI="sqlite://", RATELIMIT_STORAGE_URI="memory://")
c = app.test_client()
r = c.get("/signin", base_url="https://portal.example", headers={"X-Forwarded-Proto": "https"})
s = c.get("/static/css/portal.css", base_url="https://portal.example")
print(json.dumps({"cookies": r.headers.getlist("Set-Cookie"), "hsts": r.headers.get("Strict-Transport-Security"),
                  "headers": {k: v for k, v in r.headers.items() if k != "Set-Cookie"},
                  "scheme": app.config["PREFERRED_URL_SCHEME"], "proxy_fix": type(app.wsgi_app).__name__,
                  "static_hsts": s.headers.get("Strict-Transport-Security"), "status": r.status_code,
                  "remember": app.config.get("REMEMBER_COOKIE_DURATION").total_seconds(),
                  "server": r.headers.get("Server")}))
"""


def production_probe() -> dict:
    """ProductionConfig in a separate interpreter: creating it here would rebind the process-wide
    Celery/limiter settings the other tests rely on."""
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL",)}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROD_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])

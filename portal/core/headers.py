"""Security headers on every response, request ids, and no-store for anything not static."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from functools import lru_cache

from flask import Flask, g, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(self), usb=(), interest-cohort=()"
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def extend_csp(response, **sources):
    """Allow extra sources on ONE response (e.g. the payment page's Stripe.js), never the global policy:
    extend_csp(response, script_src=["https://js.stripe.com"], frame_src=[...], connect_src=[...]).
    Keyword names are directives with '_' for '-'; the sources are appended to the directive (a directive
    the base policy lacks starts from 'self'). Quotes, semicolons and 'unsafe-*' are refused."""
    extra = getattr(response, "_csp_extra", {})
    for key, values in sources.items():
        directive = key.replace("_", "-")
        for value in values or ():
            if not value or any(c in value for c in ";,'\"\n ") or "unsafe" in value:
                raise ValueError(f"refused CSP source {value!r}")
            extra.setdefault(directive, [])
            if value not in extra[directive]:
                extra[directive].append(value)
    response._csp_extra = extra
    return response


def _csp_with(extra: dict) -> str:
    parts = [p.strip() for p in CSP.split(";") if p.strip()]
    out, seen = [], set()
    for part in parts:
        name = part.split()[0]
        seen.add(name)
        out.append(" ".join([part, *extra.get(name, [])]))
    for name, values in extra.items():
        if name not in seen:
            out.append(" ".join([name, "'self'", *values]))
    return "; ".join(out)


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def apply_headers(app: Flask, response):
    h = response.headers
    for name, value in SECURITY_HEADERS:
        h[name] = value
    extra = getattr(response, "_csp_extra", None)
    if extra:
        h["Content-Security-Policy"] = _csp_with(extra)
    h["X-Request-ID"] = g.get("request_id", "")
    if app.config.get("HSTS"):
        h[HSTS[0]] = HSTS[1]
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    h.pop("Server", None)
    if g.get("language_choice"):
        from portal.core.i18n import set_language_cookie

        set_language_cookie(response)
    return response


@lru_cache(maxsize=512)
def static_version(static_folder: str, filename: str) -> str:
    """A short hash of a static file's content: `url_for('static', ...)` adds it as `?v=`, so nginx can serve
    /static/ with a one-year immutable cache and a changed file still reaches every browser at the next
    deploy (each deploy starts new processes, so the cache never goes stale)."""
    try:
        with open(os.path.join(static_folder, filename), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:12]
    except OSError:
        return "0"


def add_static_version(app: Flask) -> None:
    folder = app.static_folder

    @app.url_defaults
    def _static_version(endpoint, values):
        if endpoint == "static" and "v" not in values and "filename" in values:
            values["v"] = static_version(folder, values["filename"])


class HealthCheck:
    """WSGI middleware answering GET /healthz before Flask: no session, no database, no hooks, so a
    load balancer's probe costs next to nothing. It still sends the security headers."""

    def __init__(self, wsgi_app, path: str = "/healthz", hsts: bool = False):
        self.wsgi_app = wsgi_app
        self.path = path
        self.headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "2"),
                        ("Cache-Control", "no-store"), *SECURITY_HEADERS, *([HSTS] if hsts else [])]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", self.headers + [("X-Request-ID", uuid.uuid4().hex)])
            return [b"ok"] if environ["REQUEST_METHOD"] == "GET" else []
        return self.wsgi_app(environ, start_response)

"""Security headers on every response, request ids, and no-store for anything not static."""

from __future__ import annotations

import re
import uuid

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


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def apply_headers(app: Flask, response):
    h = response.headers
    for name, value in SECURITY_HEADERS:
        h[name] = value
    h["X-Request-ID"] = g.get("request_id", "")
    if app.config.get("HSTS"):
        h[HSTS[0]] = HSTS[1]
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    h.pop("Server", None)
    return response


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

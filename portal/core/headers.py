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
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def apply_headers(app: Flask, response):
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"
    h["Permissions-Policy"] = PERMISSIONS_POLICY
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["X-Request-ID"] = g.get("request_id", "")
    if app.config.get("HSTS"):
        h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if request.endpoint != "static":
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    h.pop("Server", None)
    return response


class HealthCheck:
    """WSGI middleware answering GET /healthz before Flask: no session, no database, no hooks, so a
    load balancer's probe costs next to nothing. It still sends the security headers."""

    HEADERS = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "2"),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", PERMISSIONS_POLICY),
    ]

    def __init__(self, wsgi_app, path: str = "/healthz"):
        self.wsgi_app = wsgi_app
        self.path = path

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response("200 OK", self.HEADERS + [("X-Request-ID", uuid.uuid4().hex)])
            return [b"ok"] if environ["REQUEST_METHOD"] == "GET" else []
        return self.wsgi_app(environ, start_response)

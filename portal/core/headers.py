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

"""Small helpers for driving the real forms in tests."""

from __future__ import annotations

import re
import time

import pyotp


def form_token(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


def post_form(client, path: str, data: dict, get_path: str | None = None, **kw):
    """GET the form page (for its CSRF token), then POST the data with the token."""
    html = client.get(get_path or path).get_data(as_text=True)
    payload = {"csrf_token": form_token(html), **data}
    return client.post(path, data=payload, **kw)


def totp_now(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(at or time.time())


def sign_in(client, email: str, password: str, secret: str | None = None, at: float | None = None):
    """Run the real two-step sign-in; returns the last response."""
    r = post_form(client, "/signin", {"email": email, "password": password})
    if secret is None or r.status_code != 302 or not r.location.endswith("/signin/verify"):
        return r
    return post_form(client, "/signin/verify", {"code": totp_now(secret, at)})

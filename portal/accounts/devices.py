"""Devices: plain-words names for user agents ("Chrome on Android"), and the remembered-device cookie.

User agents are parsed with ua-parser (the maintained Python port of the uap-core rules that browsers'
and analytics' parsers share; ua-parser-builtins ships the rules, refreshed monthly), cached per
string, and only the browser and system families are shown: never the raw string.

A remembered device (OWASP "device cookies"): after a complete sign-in the browser gets a signed,
HttpOnly cookie naming the account and a random device id. A sign-in attempt that carries a valid
cookie for the email it tries is counted under that device's own failure key, so strangers who lock
the address out (knowing an email is enough for that) do not lock out the owner's own devices. The
cookie proves nothing by itself: the password and the second factor are still required.

The sign-out button sends Clear-Site-Data "cookies" (ONC (d)(7)), which removes this cookie too: a
device is remembered across time-outs and closed browsers, and forgotten by an explicit sign-out.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from flask import current_app, request
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "portal_device"  # "__Host-portal_device" where cookies are Secure (production)
MAX_AGE = 180 * 24 * 3600

_BROWSERS = {"Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome", "Chrome Mobile WebView": "Chrome",
             "HeadlessChrome": "Chrome", "Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Safari",
             "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox", "Edge Mobile": "Edge",
             "Samsung Internet": "Samsung Internet"}
_SYSTEMS = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS", "Ubuntu": "Linux"}


@lru_cache(maxsize=512)
def _families(ua: str) -> tuple[str | None, str | None]:
    from ua_parser import parse

    result = parse(ua[:300])
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    browser = None if browser in (None, "Other") else _BROWSERS.get(browser, browser)
    system = None if system in (None, "Other") else _SYSTEMS.get(system, system)
    return browser, system


def describe(user_agent: str | None) -> str:
    """"Chrome on Android", "Safari on iOS", "Firefox", or "Unknown device"."""
    browser, system = _families((user_agent or "").strip()) if user_agent else (None, None)
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or system or _("Unknown device")


# --- remembered devices ------------------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="remembered-device")


def cookie_name() -> str:
    return ("__Host-" + COOKIE) if current_app.config.get("SESSION_COOKIE_SECURE") else COOKIE


def cookie_value() -> str | None:
    """This request's device cookie, as sent (routes hand it to the services)."""
    return request.cookies.get(cookie_name())


def remembered_device(user) -> str | None:
    return device_for(user, cookie_value())


def device_for(user, raw: str | None) -> str | None:
    """The device id in a device cookie when it was issued to `user` (None otherwise)."""
    if not raw or user is None:
        return None
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("u") != user.public_id or not isinstance(data.get("d"), str):
        return None
    return data["d"]


def remember(response, user):
    """Set (or renew) the device cookie after a complete sign-in; keeps the device id if it has one."""
    device_id = remembered_device(user) or secrets.token_urlsafe(16)
    cfg = current_app.config
    response.set_cookie(cookie_name(), _serializer().dumps({"u": user.public_id, "d": device_id}), max_age=MAX_AGE,
                        httponly=True, secure=bool(cfg.get("SESSION_COOKIE_SECURE")), samesite="Lax", path="/")
    return response

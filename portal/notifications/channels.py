"""Delivery channels: email (core's mail pipeline) and SMS with two backends.

SMS_BACKEND:
- "file": each text is written to SMS_FILE_DIR/*.txt (the embedded default, like mail's .eml files).
- "twilio": the twilio library's REST client with TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN and
  TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID) from the environment.
- "off": no texts (patients are offered email only).

Errors are sorted into TransientError (retry later: the server refused for now, the network failed)
and PermanentError (retrying cannot help: a bad number, a number the carrier has opted out).
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.utils import make_msgid
from pathlib import Path

from flask import current_app, request

from portal.core.db import utcnow

log = logging.getLogger("portal.notifications")


class DeliveryError(Exception):
    """A send that did not happen; `reason` is short, technical and free of PHI."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason[:300]


class TransientError(DeliveryError):
    pass


class PermanentError(DeliveryError):
    def __init__(self, reason: str, *, opted_out: bool = False):
        super().__init__(reason)
        self.opted_out = opted_out


# --- email -------------------------------------------------------------------------------------

def send_email(to: str, template: str, language: str, attachments=(), **context) -> str:
    """Render and deliver one email now (the notice's task calls this); returns its Message-ID."""
    from portal.core.mail import build_message, deliver

    msg = build_message(to, template, language, attachments=attachments, **context)
    del msg["Message-ID"]
    msg["Message-ID"] = message_id = make_msgid(domain="portal.local")
    try:
        deliver(msg)
    except smtplib.SMTPResponseException as exc:
        reason = f"SMTP {exc.smtp_code}"
        if 500 <= exc.smtp_code < 600:
            raise PermanentError(reason) from None
        raise TransientError(reason) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _msg in exc.recipients.values()})
        reason = "SMTP recipient refused " + ",".join(str(c) for c in codes)
        if codes and all(500 <= c < 600 for c in codes):
            raise PermanentError(reason) from None
        raise TransientError(reason) from None
    except OSError as exc:  # connection refused, timeouts, other smtplib errors
        raise TransientError(f"mail: {type(exc).__name__}") from None
    return message_id


# --- SMS ---------------------------------------------------------------------------------------

def sms_enabled() -> bool:
    return current_app.config.get("SMS_BACKEND", "off") in ("file", "twilio")


def sender_label() -> str:
    """The number patients text (shown on the preferences page and in HELP answers)."""
    cfg = current_app.config
    return cfg.get("TWILIO_FROM_NUMBER") or cfg.get("CLINIC_PHONE") or ""


def send_sms(to: str, body: str) -> str:
    """Send one text now; returns the provider's id (Twilio's message SID, or the file name)."""
    backend = current_app.config.get("SMS_BACKEND", "off")
    if backend == "file":
        return _send_file(to, body)
    if backend == "twilio":
        return _send_twilio(to, body)
    raise PermanentError("texts are turned off (SMS_BACKEND=off)")


def _send_file(to: str, body: str) -> str:
    folder = Path(current_app.config["SMS_FILE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.txt"
    text = f"To: {to}\nFrom: {sender_label()}\nDate: {utcnow().isoformat(timespec='seconds')}\n\n{body}\n"
    tmp = folder / (name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / name)  # readers never see half a file
    return f"file:{name}"


# Twilio error codes where retrying cannot help (https://www.twilio.com/docs/api/errors).
_TWILIO_OPTED_OUT = {21610}  # the recipient replied STOP at the carrier
_TWILIO_PERMANENT = {21211, 21214, 21217, 21401, 21407, 21408, 21421, 21612, 21614, 21635} | _TWILIO_OPTED_OUT


class _RebasedHttpClient:
    """Wraps twilio's HTTP client to reach the REST API at another base URL (TWILIO_API_BASE_URL):
    for a proxy, and for the tests, which record the calls on a local HTTP server."""

    def __init__(self, inner, base_url: str):
        self.inner = inner
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        rebased = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return self.inner.request(method, rebased, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def twilio_client():
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    cfg = current_app.config
    http = TwilioHttpClient(timeout=10)
    if cfg.get("TWILIO_API_BASE_URL"):
        http = _RebasedHttpClient(http, cfg["TWILIO_API_BASE_URL"])
    return Client(cfg["TWILIO_ACCOUNT_SID"], cfg["TWILIO_AUTH_TOKEN"], http_client=http)


def _send_twilio(to: str, body: str) -> str:
    from requests import RequestException
    from twilio.base.exceptions import TwilioException, TwilioRestException

    cfg = current_app.config
    if not (cfg.get("TWILIO_ACCOUNT_SID") and cfg.get("TWILIO_AUTH_TOKEN")):
        raise PermanentError("Twilio credentials are not configured")
    sender = {"messaging_service_sid": cfg["TWILIO_MESSAGING_SERVICE_SID"]} \
        if cfg.get("TWILIO_MESSAGING_SERVICE_SID") else {"from_": cfg.get("TWILIO_FROM_NUMBER")}
    try:
        message = twilio_client().messages.create(to=to, body=body, **sender)
    except TwilioRestException as exc:
        reason = f"Twilio {exc.status} error {exc.code}"
        if exc.code in _TWILIO_PERMANENT or (400 <= (exc.status or 0) < 500 and exc.status not in (401, 403, 429)):
            raise PermanentError(reason, opted_out=exc.code in _TWILIO_OPTED_OUT) from None
        raise TransientError(reason) from None
    except (RequestException, TwilioException, OSError) as exc:
        raise TransientError(f"Twilio: {type(exc).__name__}") from None
    return message.sid


# --- inbound webhook ---------------------------------------------------------------------------

def valid_twilio_request() -> bool:
    """Is this request signed by Twilio (X-Twilio-Signature over the public URL and the form)?
    The URL is the one Twilio called: PUBLIC_BASE_URL + this path (+ query)."""
    from twilio.request_validator import RequestValidator

    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return RequestValidator(token).validate(url, request.form, signature)


def twiml(reply: str | None) -> str:
    """The TwiML answer to an inbound text: one reply message, or none."""
    from twilio.twiml.messaging_response import MessagingResponse

    response = MessagingResponse()
    if reply:
        response.message(reply)
    return str(response)

"""Fixtures for the notifications tests: the file SMS backend's folder, a fixed daytime clock (texts obey
quiet hours), patients who may be texted, Twilio-signed webhook requests, an SMTP server that refuses
before it accepts, and a local HTTP server that stands in for Twilio's REST API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import time_machine

from tests.conftest import Mailbox, free_port

DAYTIME = datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)  # Wednesday 10:00 in Chicago
NIGHT = datetime(2026, 12, 3, 4, 30, tzinfo=timezone.utc)  # Wednesday 22:30 in Chicago
MORNING = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)  # Thursday 08:00 in Chicago
PHONE = "+13125550123"


# --- texts written by the file backend ---------------------------------------------------------

class Outbox:
    """The texts the file backend wrote (one file each: headers, a blank line, the body)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def texts(self) -> list[dict]:
        out = []
        for path in sorted(self.folder.glob("*.txt")):
            head, _, body = path.read_text(encoding="utf-8").partition("\n\n")
            headers = dict(line.split(": ", 1) for line in head.splitlines())
            out.append({"to": headers["To"], "from": headers["From"], "body": body.strip(), "file": path.name})
        return out

    def to(self, phone: str) -> list[str]:
        return [t["body"] for t in self.texts() if t["to"] == phone]

    def clear(self) -> None:
        for path in self.folder.glob("*.txt"):
            path.unlink()


@pytest.fixture()
def sms_outbox(app, tmp_path):
    folder = tmp_path / "sms"
    saved = {k: app.config[k] for k in ("SMS_FILE_DIR", "SMS_BACKEND")}
    app.config.update(SMS_FILE_DIR=str(folder), SMS_BACKEND="file")
    yield Outbox(folder)
    app.config.update(saved)


@pytest.fixture()
def daytime():
    """A fixed weekday morning in the clinic's zone (texts go out at once), the clock ticking."""
    with time_machine.travel(DAYTIME, tick=True) as traveller:
        yield traveller


# --- patients ------------------------------------------------------------------------------------

@pytest.fixture()
def texting_patient(db, make_user):
    """texting_patient(choices={...}, phone=..., language=...) -> a patient user whose confirmed mobile
    number may be texted (consent given)."""
    from portal.core.db import utcnow
    from portal.notifications.models import NotificationSettings

    def make(choices=None, phone=PHONE, language="en", **kw):
        user = make_user("patient", preferred_language=language, **kw)
        now = utcnow()
        db.session.add(NotificationSettings(patient_id=user._patient.id, choices=choices or {}, phone_e164=phone,
                                            phone_verified_at=now, sms_consent_at=now, updated_at=now))
        db.session.flush()
        return user

    return make


def notify_now(app, db, *args, **kwargs):
    """notify() in a request context, committed: in eager mode the notices are delivered when the
    request context ends (as at the end of a real request)."""
    from portal.notifications.services import notify

    with app.test_request_context():
        result = notify(*args, **kwargs)
        db.session.commit()
    return result


def notices_of(db, patient=None):
    from sqlalchemy import select

    from portal.notifications.models import Notice

    db.session.expire_all()
    stmt = select(Notice).order_by(Notice.id)
    if patient is not None:
        stmt = stmt.where(Notice.patient_id == patient.id)
    return db.session.execute(stmt).scalars().all()


# --- Twilio webhooks -----------------------------------------------------------------------------

def sign(app, path: str, params: dict) -> str:
    """X-Twilio-Signature as Twilio computes it (the library's own RequestValidator)."""
    from twilio.request_validator import RequestValidator

    url = app.config["PUBLIC_BASE_URL"].rstrip("/") + path
    return RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)


_sid = iter(range(1, 10 ** 9))


def inbound_params(body: str, sender: str = PHONE, sid: str | None = None) -> dict:
    return {"MessageSid": sid or f"SM{next(_sid):032d}", "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+13125550000", "Body": body, "NumMedia": "0"}


def post_inbound(client, app, body: str, sender: str = PHONE, sid: str | None = None, signature: str | None = None):
    params = inbound_params(body, sender, sid)
    sig = sign(app, "/sms/inbound", params) if signature is None else signature
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post("/sms/inbound", data=params, headers=headers)


def twiml_message(response) -> str | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(response.get_data(as_text=True))
    messages = root.findall("Message")
    return messages[0].text if messages else None


# --- an SMTP server that refuses a few times, then accepts ---------------------------------------

class FlakyMailbox(Mailbox):
    """Answers 451 (try again later) to the first `refuse` messages, then accepts."""

    def __init__(self, refuse: int):
        super().__init__()
        self.refuse = refuse
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refused < self.refuse:
                self.refused += 1
                return "451 4.3.0 Mail server busy, try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture()
def flaky_smtp(app):
    """flaky_smtp(refuse=n): the app's mail goes to a server that refuses n times, then accepts."""
    from aiosmtpd.controller import Controller

    started = []
    saved = {k: app.config[k] for k in ("MAIL_SERVER", "MAIL_PORT")}

    def start(refuse: int) -> FlakyMailbox:
        box = FlakyMailbox(refuse)
        port = free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        box.port = port
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        return box

    yield start
    for controller in started:
        controller.stop()
    app.config.update(saved)


# --- a local HTTP server standing in for Twilio's REST API ---------------------------------------

@dataclass
class FakeTwilio:
    """Records every REST call the twilio library makes and answers from a script of statuses
    (201 = accepted; 4xx/5xx with Twilio's error body)."""

    base_url: str = ""
    calls: list = field(default_factory=list)
    script: list = field(default_factory=list)  # e.g. [503, 201]; empty = always 201
    error_code: int = 20500

    def answer(self):
        return self.script.pop(0) if self.script else 201


@pytest.fixture()
def fake_twilio(app):
    fake = FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            fake.calls.append({"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"),
                               "user_agent": self.headers.get("User-Agent"), "form": form})
            status = fake.answer()
            if status == 201:
                sid = f"SM{len(fake.calls):032x}"
                payload = {"sid": sid, "status": "queued", "to": form.get("To"), "from": form.get("From"),
                           "body": form.get("Body"), "account_sid": "AC" + "1" * 32, "num_segments": "1",
                           "direction": "outbound-api", "api_version": "2010-04-01",
                           "date_created": "Wed, 02 Dec 2026 16:00:00 +0000"}
            else:
                payload = {"code": fake.error_code, "message": "scripted failure", "status": status,
                           "more_info": f"https://www.twilio.com/docs/errors/{fake.error_code}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    keys = ("SMS_BACKEND", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "TWILIO_API_BASE_URL",
            "TWILIO_MESSAGING_SERVICE_SID")
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_FROM_NUMBER="+13125550000",
                      TWILIO_API_BASE_URL=fake.base_url, TWILIO_MESSAGING_SERVICE_SID=None)
    yield fake
    app.config.update(saved)
    server.shutdown()
    thread.join(5)

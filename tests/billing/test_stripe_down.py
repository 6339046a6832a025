"""Stripe goes down in the middle of a patient's card payment (issue 12).

Each test runs its own localstripe process (scripts/localstripe_server.py on a free port, its data kept in a
file as real Stripe keeps it through an outage) and really stops it and starts it again; the session's
localstripe used by the other billing tests is not touched. No mocks: the portal's stripe library talks HTTP
to the process throughout. To cut the line *after* Stripe has charged the card but *before* the answer
reaches the portal, the charge goes through a plain TCP hop (`CutAfterCharge`, like a load balancer): it
passes the request to localstripe, waits until localstripe has charged the card (its own signed webhook for
the payment has gone out), stops localstripe, and closes the portal's connection without an answer.

What is proved (test_payments.py's `test_stripe_unreachable_charges_nothing` only points the portal at a
dead port for one submit):
1. Stripe down before paying: translated "nothing was charged" on the pay page and on submit (English and
   Spanish), the ledger unchanged, the attempt on record as "unsent", no 500; once Stripe is back the same
   form pays with the same attempt, once.
2. Stripe dies after charging, before answering: the patient is told the payment is being checked (never
   "charged" nor "not charged"), cannot pay again meanwhile; reconciliation with Stripe still down changes
   nothing; after the restart the real Celery task posts the payment exactly once (twice changes nothing),
   the balance is right, a retried submit does not charge again, and localstripe's own webhook arriving
   later does not post it again.
3. The line fails before the charge reached Stripe (the portal cannot tell): "being checked" too; once
   Stripe answers, reconciliation finds no charge, marks the attempt failed ("not charged") and the patient
   may pay again.
4. Stripe stops between 3-D Secure and the portal's read-back: "not confirmed yet", then reconciliation
   posts it once.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from portal.billing import services, tasks
from portal.billing.models import BillingAccount, PaymentAttempt
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.billing.helpers import bill, total
from tests.billing.stripe_fake import LocalStripe
from tests.billing.test_payments import JSON, THREE_DS, VISA, entries, pay_page, submit
from tests.conftest import free_port


@pytest.fixture()
def outage_stripe(app, tmp_path):
    """A localstripe of this test's own (state in a file, so a restart keeps it), the app pointed at it."""
    fake = LocalStripe(state=tmp_path / "localstripe.pickle")
    config = dict(fake.config(), STRIPE_TIMEOUT_SECONDS=60)
    saved = {k: app.config.get(k) for k in config}
    app.config.update(config)
    try:
        yield fake
    finally:
        app.config.update(saved)
        fake.stop()


class WebhookInbox:
    """Where localstripe delivers its signed webhooks (kept raw: body and Stripe-Signature, to hand to the
    portal later)."""

    def __init__(self):
        self.events: list[tuple[bytes, str]] = []
        self.arrived = threading.Condition()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with inbox.arrived:
                    inbox.events.append((body, self.headers.get("Stripe-Signature") or ""))
                    inbox.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, kind: str, timeout: float = 30) -> tuple[bytes, str]:
        def found():
            return next((e for e in self.events if json.loads(e[0]).get("type") == kind), None)

        with self.arrived:
            self.arrived.wait_for(found, timeout)
            event = found()
        assert event is not None, f"localstripe sent no {kind} webhook"
        return event

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _read_http(sock: socket.socket) -> bytes:
    """One HTTP message (headers, then Content-Length bytes of body; else until the peer closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class CutAfterCharge:
    """A TCP hop in front of localstripe. Every request is passed through, except the first
    `POST /v1/payment_intents`: localstripe handles it (the card is charged), then `on_charged()` runs
    (stops localstripe) and the portal's connection is closed with no answer. With `deliver=False` that
    request is dropped instead (the line fails after the portal sent it, before Stripe got it)."""

    def __init__(self, upstream_port: int, on_charged=lambda: None, deliver: bool = True):
        self.upstream_port = upstream_port
        self.on_charged = on_charged
        self.deliver = deliver
        self.cut = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket):
        with conn:
            request = _read_http(conn)
            charge = request.startswith(b"POST /v1/payment_intents ") and not self.cut.is_set()
            if charge and not self.deliver:
                self.cut.set()
                return
            head, sep, body = request.partition(b"\r\n\r\n")
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                up.sendall(b"\r\n".join(lines + [b"Connection: close"]) + sep + body)
                answer = _read_http(up)
            if charge:
                self.on_charged()
                self.cut.set()
                return  # closed without a byte of the answer
            conn.sendall(answer)

    def close(self):
        self.sock.close()


def submit_through(app, stripe, hop, client, statement, page, pm):
    """Submit the payment with the portal's Stripe calls going through `hop` (a CutAfterCharge)."""
    try:
        app.config["STRIPE_API_BASE"] = hop.url
        return submit(client, statement, page, pm), hop
    finally:
        app.config["STRIPE_API_BASE"] = stripe.url
        hop.close()


def attempts():
    return db.session.execute(select(PaymentAttempt).order_by(PaymentAttempt.id)).scalars().all()


def audit_count(action: str) -> int:
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
                              ).scalar_one()


def customer_charges(localstripe, patient) -> list[dict]:
    customer = db.session.execute(select(BillingAccount.stripe_customer_id).where(
        BillingAccount.patient_id == patient.id)).scalar_one()
    return localstripe.get("/v1/charges", customer=customer, limit=100)["data"]


def age(attempt, minutes=5):
    """Reconciliation leaves a payment alone for its first two minutes (the page may still be finishing it)."""
    attempt.created_at = attempt.created_at - timedelta(minutes=minutes)
    db.session.commit()


def reconcile_task() -> dict:
    """The periodic Celery task itself (portal.billing.reconcile), run here in-process."""
    return tasks.reconcile.run()


def test_stripe_down_before_paying_nothing_charged_and_the_same_form_pays_once_it_is_back(
        outage_stripe, db, login_as):
    client, user = login_as("patient")
    client_es, user_es = login_as("patient", preferred_language="es")
    statement, statement_es = bill(user._patient), bill(user_es._patient)
    page, page_es = pay_page(client, statement), pay_page(client_es, statement_es)
    pm = outage_stripe.confirm_setup(page["secret"], VISA)
    pm_es = outage_stripe.confirm_setup(page_es["secret"], VISA)

    outage_stripe.stop()  # Stripe goes down before the patients press Pay

    pay_url = f"/billing/statements/{statement.public_id}/pay"
    again = client.get(pay_url)
    assert again.status_code == 200
    assert "Online payment is unavailable right now. You were not charged." in again.get_data(as_text=True)
    again_es = client_es.get(f"/billing/statements/{statement_es.public_id}/pay")
    assert again_es.status_code == 200 and "No se le cobró nada" in again_es.get_data(as_text=True)

    r = submit(client, statement, page, pm)
    assert r.status_code == 400 and r.json["status"] == "error"
    assert "You were not charged" in r.json["message"] and "unavailable" in r.json["message"]
    r_es = submit(client_es, statement_es, page_es, pm_es)
    assert r_es.status_code == 400 and "No se le cobró nada" in r_es.json["message"]
    # a form post without JavaScript: the pay page again with the message, not a 500
    plain = client.post(pay_url, data={"csrf_token": page["token"], "attempt_key": page["key"],
                                       "payment_method": pm, "amount_choice": "full"})
    assert plain.status_code == 400 and "You were not charged" in plain.get_data(as_text=True)

    assert entries(user._patient) == [] and entries(user_es._patient) == []
    assert services.balance_cents(user._patient.id) == total()
    recorded = {a.attempt_key: a for a in attempts()}
    assert set(recorded) == {page["key"], page_es["key"]}
    assert {a.status for a in recorded.values()} == {"unsent"}  # on record, and retryable
    assert all(a.stripe_payment_intent_id is None for a in recorded.values())
    assert audit_count("billing.payment_started") == 3  # every try is audited
    assert client.get("/billing").status_code == 200

    # reconciliation has nothing to look up: nothing reached Stripe
    assert reconcile_task()["checked"] == 0

    outage_stripe.start()  # Stripe is back: the same form (same attempt key) pays, once
    ok = submit(client, statement, page, pm)
    assert ok.status_code == 200 and ok.json["status"] == "succeeded", ok.json
    [attempt] = [a for a in attempts() if a.attempt_key == page["key"]]
    assert attempt.status == "succeeded" and len(attempts()) == 2
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total() and entry.attempt_id == attempt.id
    assert [c["amount"] for c in customer_charges(outage_stripe, user._patient)] == [total()]
    assert services.balance_cents(user._patient.id) == 0
    assert submit(client, statement, page, pm).json["status"] == "succeeded"  # a reload: no second charge
    assert len(customer_charges(outage_stripe, user._patient)) == 1 and len(entries(user._patient)) == 1


def test_stripe_dies_after_charging_reconciliation_posts_once_and_the_late_webhook_changes_nothing(
        outage_stripe, db, login_as, app):
    client, user = login_as("patient")
    statement = bill(user._patient)
    inbox = WebhookInbox()
    outage_stripe.register_webhook(inbox.url)
    page = pay_page(client, statement)
    pm = outage_stripe.confirm_setup(page["secret"], VISA)

    def stripe_dies():
        inbox.wait_for("payment_intent.succeeded")  # localstripe has charged the card and said so
        outage_stripe.stop()

    r, hop = submit_through(app, outage_stripe, CutAfterCharge(outage_stripe.port, stripe_dies),
                            client, statement, page, pm)
    assert hop.cut.is_set() and outage_stripe.proc.poll() is not None  # charged, then Stripe went away

    # the patient is told it is being checked: neither "charged" nor "not charged", and no 500
    assert r.status_code == 200 and r.json["status"] == "pending", r.json
    message = r.json["message"]
    assert "checking whether your payment went through" in message and "do not pay again" in message
    assert "not charged" not in message and "charged twice" not in message
    [attempt] = attempts()
    assert attempt.status == "unknown" and attempt.stripe_payment_intent_id is None
    assert entries(user._patient) == [] and services.balance_cents(user._patient.id) == total()
    assert audit_count("billing.payment_unknown") == 1
    billing = client.get("/billing").get_data(as_text=True)
    assert "whether your last card payment went through" in billing and "did not go through" not in billing

    # the patient presses Pay again (same form), or opens a new pay form: no charge, no new attempt
    again = submit(client, statement, page, pm)
    assert again.json["status"] == "pending" and len(attempts()) == 1
    other = submit(client, statement, dict(page, key="second-form-" + page["key"][:20]), pm)
    assert other.status_code == 400 and "already in progress" in other.json["message"]
    assert len(attempts()) == 1

    # reconciliation while Stripe is still down: nothing concluded, nothing changed
    age(attempt)
    report = reconcile_task()
    assert report["errors"] == 1 and report["posted"] == 0 and report["failed"] == 0
    db.session.refresh(attempt)
    assert attempt.status == "unknown" and entries(user._patient) == []

    outage_stripe.start()  # Stripe is back, with the charge it made
    [charge] = customer_charges(outage_stripe, user._patient)
    assert charge["amount"] == total() and charge["status"] == "succeeded"

    first = reconcile_task()
    assert first["posted"] == 1 and first["errors"] == 0
    second = reconcile_task()
    assert second["posted"] == 0 and second["checked"] == 0
    db.session.refresh(attempt)
    assert attempt.status == "succeeded" and attempt.stripe_payment_intent_id == charge["payment_intent"]
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total() and entry.stripe_ref == charge["payment_intent"]
    assert services.balance_cents(user._patient.id) == 0
    assert audit_count("billing.payment_posted") == 1 and audit_count("billing.reconciled") == 1

    # the patient's retried submit finds the paid attempt: the receipt, no second charge
    retried = submit(client, statement, page, pm)
    assert retried.json["status"] == "succeeded"
    assert client.get(retried.json["redirect"]).status_code == 200
    assert len(customer_charges(outage_stripe, user._patient)) == 1 and len(entries(user._patient)) == 1

    # localstripe's own webhook for the payment, arriving late (twice): nothing is posted again
    body, signature = inbox.wait_for("payment_intent.succeeded")
    inbox.close()
    hook = app.test_client()
    for expected in ("succeeded", "duplicate"):
        late = hook.post("/billing/stripe/webhook", data=body, content_type="application/json",
                         headers={"Stripe-Signature": signature})
        assert late.status_code == 200 and late.json["outcome"] == expected
    tampered = hook.post("/billing/stripe/webhook", data=body.replace(b"succeeded", b"succeedeD"),
                         content_type="application/json", headers={"Stripe-Signature": signature})
    assert tampered.status_code == 400  # the signature is still checked
    assert len(entries(user._patient)) == 1 and services.balance_cents(user._patient.id) == 0
    assert audit_count("billing.payment_posted") == 1


def test_charge_lost_before_stripe_got_it_is_failed_by_reconciliation_and_may_be_paid_again(
        outage_stripe, db, login_as, app):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    pm = outage_stripe.confirm_setup(page["secret"], VISA)
    r, hop = submit_through(app, outage_stripe, CutAfterCharge(outage_stripe.port, deliver=False),
                            client, statement, page, pm)
    assert hop.cut.is_set() and r.json["status"] == "pending"  # we cannot know: it is checked
    [attempt] = attempts()
    assert attempt.status == "unknown"
    age(attempt)
    report = reconcile_task()
    assert report["failed"] == 1 and report["posted"] == 0 and report["errors"] == 0
    db.session.refresh(attempt)
    assert attempt.status == "failed" and entries(user._patient) == []
    assert customer_charges(outage_stripe, user._patient) == []
    billing = client.get("/billing").get_data(as_text=True)
    assert "did not go through" in billing and "You were not charged" in billing
    assert "whether your last card payment went through" not in billing
    # a new pay form now pays, once
    page2 = pay_page(client, statement)
    ok = submit(client, statement, page2, outage_stripe.confirm_setup(page2["secret"], VISA))
    assert ok.json["status"] == "succeeded"
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total() and services.balance_cents(user._patient.id) == 0
    assert reconcile_task()["checked"] == 0


def test_stripe_stops_between_3d_secure_and_the_read_back(outage_stripe, db, login_as):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    r = submit(client, statement, page, outage_stripe.confirm_setup(page["secret"], THREE_DS))
    assert r.json["status"] == "requires_action"
    outage_stripe.authenticate(r.json["client_secret"], True)  # the bank says yes: Stripe has the money
    outage_stripe.stop()

    done = client.post(r.json["finish"], data={"csrf_token": page["token"]}, headers=JSON)
    assert done.status_code == 400 and "could not confirm your payment yet" in done.json["message"]
    [attempt] = attempts()
    assert attempt.status == "requires_action" and entries(user._patient) == []

    outage_stripe.start()
    age(attempt)
    assert reconcile_task()["posted"] == 1 and reconcile_task()["posted"] == 0
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total() and services.balance_cents(user._patient.id) == 0
    db.session.refresh(attempt)
    assert attempt.status == "succeeded"
    assert client.post(r.json["finish"], data={"csrf_token": page["token"]}, headers=JSON).json["status"] == "succeeded"
    assert len(entries(user._patient)) == 1

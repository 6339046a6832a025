"""The only module that imports `stripe`. Everything the portal asks of Stripe goes through here, with the
keys and endpoint from the app config, so the same code runs against real Stripe and against localstripe.

Results come back as plain dicts (read defensively: localstripe embeds `latest_charge` and has no
`amount_received`). A request that provably never reached Stripe (no connection, 429) raises `Unavailable`
("you were not charged"); for a charge that may have reached Stripe without an answer coming back (the
connection cut, a read timeout, a 5xx) `charge` raises `OutcomeUnknown` instead: the card may have been
charged, and reconciliation finds out (`find_payment_intent`). Card problems raise `CardDeclined` with
Stripe's message for the patient.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from flask import current_app


class _LazyStripe:
    """stripe-python, imported on first use (then this module's `stripe` is the real module): it brings
    requests, aiohttp and ~15 MiB that a web worker serving no payment would carry for nothing (G9)."""

    def __getattr__(self, name):
        import stripe as module

        globals()["stripe"] = module
        return getattr(module, name)


stripe = _LazyStripe()


class GatewayError(Exception):
    pass


class Unavailable(GatewayError):
    """Stripe could not be reached or answered with a server error. `maybe_sent` is False only when the
    request provably never reached Stripe (the connection could not be opened, or 429 Too Many Requests)."""

    def __init__(self, message: str, maybe_sent: bool = True):
        super().__init__(message)
        self.maybe_sent = maybe_sent


class OutcomeUnknown(GatewayError):
    """A charge request may have reached Stripe but no answer came back: the card may or may not have been
    charged. Never tell the patient either; look the payment up later (reconciliation)."""


class CardDeclined(GatewayError):
    def __init__(self, message: str, code: str | None = None, payment_intent: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.payment_intent = payment_intent


class BadSignature(GatewayError):
    pass


def enabled() -> bool:
    cfg = current_app.config
    return bool(cfg.get("STRIPE_SECRET_KEY") and cfg.get("STRIPE_PUBLISHABLE_KEY"))


def publishable_key() -> str:
    return current_app.config["STRIPE_PUBLISHABLE_KEY"]


def js_url() -> str:
    cfg = current_app.config
    if cfg.get("STRIPE_JS_URL"):
        return cfg["STRIPE_JS_URL"]
    base = cfg.get("STRIPE_API_BASE")
    return base.rstrip("/") + "/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"


def csp_origins() -> list[str]:
    """Origins the payment page must allow for Stripe.js (script, frames, XHR)."""
    from urllib.parse import urlsplit

    parts = urlsplit(js_url())
    origin = f"{parts.scheme}://{parts.netloc}"
    if current_app.config.get("STRIPE_API_BASE"):
        return [origin]
    return ["https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com"]


def _client(retries: int | None = None) -> stripe.StripeClient:
    cfg = current_app.config
    base = cfg.get("STRIPE_API_BASE")
    http = stripe.RequestsClient(timeout=cfg.get("STRIPE_TIMEOUT_SECONDS", 20))
    return stripe.StripeClient(cfg["STRIPE_SECRET_KEY"], base_addresses={"api": base} if base else None,
                               max_network_retries=cfg.get("STRIPE_MAX_NETWORK_RETRIES", 2) if retries is None
                               else retries, http_client=http)


def _never_sent(exc: BaseException) -> bool:
    """True when the request never left this machine: the TCP connection could not be opened (refused,
    no route, DNS, connect timeout). A cut connection or a read timeout may come after Stripe acted."""
    import urllib3

    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, urllib3.exceptions.MaxRetryError):
            err = err.reason
            continue
        if isinstance(err, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)):
            return True
        nxt = err.__cause__ or err.__context__
        if nxt is None and err.args and isinstance(err.args[0], BaseException):
            nxt = err.args[0]
        err = nxt
    return False


def _plain(obj) -> dict:
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


def _call(fn, *args, **kwargs):
    try:
        return _plain(fn(*args, **kwargs))
    except stripe.CardError as exc:
        err = exc.error
        message = getattr(err, "message", None) or exc.user_message or str(exc)
        pi = getattr(err, "payment_intent", None)
        raise CardDeclined(message, getattr(err, "code", None), _plain(pi) if pi else None) from exc
    except stripe.RateLimitError as exc:
        raise Unavailable(str(exc), maybe_sent=False) from exc
    except stripe.APIConnectionError as exc:
        raise Unavailable(str(exc), maybe_sent=not _never_sent(exc)) from exc
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None) or 500
        if status >= 500:
            raise Unavailable(str(exc)) from exc
        if status == 402:
            raise CardDeclined(exc.user_message or str(exc), getattr(exc, "code", None)) from exc
        raise GatewayError(str(exc)) from exc


def create_customer(patient_public_id: str) -> str:
    client = _client()
    return _call(client.v1.customers.create, params={"metadata": {"patient": patient_public_id}},
                 options={"idempotency_key": f"customer-{patient_public_id}"})["id"]


def create_setup_intent(customer_id: str, statement_public_id: str) -> dict:
    client = _client()
    out = _call(client.v1.setup_intents.create, params={
        "customer": customer_id, "usage": "on_session", "payment_method_types": ["card"],
        "metadata": {"statement": statement_public_id}})
    return {"id": out["id"], "client_secret": out["client_secret"]}


def charge(*, amount_cents: int, currency: str, customer_id: str, payment_method: str, attempt_key: str,
           metadata: dict) -> dict:
    """Create and confirm a PaymentIntent with a PaymentMethod from a confirmed SetupIntent. The attempt key
    is the Idempotency-Key (real Stripe answers a repeat with the same PaymentIntent).

    Retries are ours, not the library's, so we know whether any try may have reached Stripe: if one may
    have, the outcome is unknown (`OutcomeUnknown`) even when the last try found Stripe unreachable."""
    client = _client(retries=0)
    tries = 1 + max(0, int(current_app.config.get("STRIPE_MAX_NETWORK_RETRIES", 2)))
    maybe_sent = False
    for n in range(tries):
        if n:
            time.sleep(min(0.5 * 2 ** (n - 1), 2.0))
        try:
            return _call(client.v1.payment_intents.create, params={
                "amount": int(amount_cents), "currency": currency, "customer": customer_id,
                "payment_method": payment_method, "payment_method_types": ["card"], "confirm": True,
                "metadata": dict(metadata, attempt=attempt_key)}, options={"idempotency_key": f"pi-{attempt_key}"})
        except Unavailable as exc:
            maybe_sent = maybe_sent or exc.maybe_sent
            last = exc
    if maybe_sent:
        raise OutcomeUnknown(str(last)) from last
    raise last


def find_payment_intent(*, customer_id: str, attempt_key: str, amount_cents: int, created_after: int) -> dict | None:
    """The PaymentIntent `charge` made for an attempt whose answer never came back, or None when Stripe has
    none. Found through the customer's charges since the attempt (Stripe has no lookup by idempotency key,
    and localstripe no search) and matched on our `attempt` metadata. A PaymentIntent left without any
    charge (3-D Secure never shown) is not found: nothing was taken."""
    client = _client()
    params: dict = {"customer": customer_id, "created": {"gt": int(created_after)}, "limit": 100}
    seen: set[str] = set()
    for _page in range(10):
        out = _call(client.v1.charges.list, params=params)
        data = out.get("data") or []
        for ch in data:
            pi_id = ch.get("payment_intent")
            pi_id = pi_id.get("id") if isinstance(pi_id, dict) else pi_id
            if not pi_id or pi_id in seen or int(ch.get("amount") or 0) != int(amount_cents):
                continue
            seen.add(pi_id)
            pi = retrieve_payment_intent(pi_id)
            if (pi.get("metadata") or {}).get("attempt") == attempt_key:
                return pi
        if not out.get("has_more") or not data:
            return None
        params["starting_after"] = data[-1]["id"]
    return None


def retrieve_payment_intent(payment_intent_id: str) -> dict:
    return _call(_client().v1.payment_intents.retrieve, payment_intent_id)


def refund(*, payment_intent_id: str, amount_cents: int, key: str, metadata: dict) -> dict:
    """A refund (reason kept in metadata: localstripe refuses Stripe's `reason`)."""
    client = _client()
    return _call(client.v1.refunds.create, params={
        "payment_intent": payment_intent_id, "amount": int(amount_cents), "metadata": metadata},
        options={"idempotency_key": f"refund-{key}"})


def detach_payment_method(payment_method_id: str) -> None:
    try:
        _call(_client().v1.payment_methods.detach, payment_method_id)
    except GatewayError:
        current_app.logger.warning("could not detach payment method %s", payment_method_id)


def payment_method_summary(payment_method_id: str) -> dict:
    pm = _call(_client().v1.payment_methods.retrieve, payment_method_id)
    card = pm.get("card") or {}
    return {"brand": card.get("brand"), "last4": card.get("last4")}


# --- reading a PaymentIntent defensively ----------------------------------------------------------

def latest_charge_id(pi: dict) -> str | None:
    charge_ = pi.get("latest_charge")
    if isinstance(charge_, dict):
        return charge_.get("id")
    return charge_


def failure_message(pi: dict) -> str | None:
    err = pi.get("last_payment_error") or {}
    return err.get("message") if isinstance(err, dict) else None


# --- webhooks ----------------------------------------------------------------------------------

TOLERANCE_SECONDS = 300


def verify_webhook(payload: bytes, header: str | None, secret: str, now: float | None = None) -> dict:
    """Check Stripe-Signature (t=…,v1=…) over the raw body with the endpoint secret, |now − t| ≤ 300 s both
    ways (stripe-python only checks the past), and return the parsed event."""
    if not header or not secret:
        raise BadSignature("missing signature")
    items = [part.split("=", 1) for part in header.split(",") if "=" in part]
    try:
        timestamp = int(next(v for k, v in items if k.strip() == "t"))
    except (StopIteration, ValueError):
        raise BadSignature("no timestamp") from None
    signatures = [v for k, v in items if k.strip() == "v1"]
    expected = hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s.strip()) for s in signatures):
        raise BadSignature("signature mismatch")
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("timestamp outside tolerance")
    try:
        event = json.loads(payload)
    except ValueError:
        raise BadSignature("not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise BadSignature("not an event")
    return event


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for a payload (tests and the bench)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1=" + hmac.new(secret.encode(), b"%d." % t + payload, hashlib.sha256).hexdigest()

"""SECURITY.md §34 and §33 through the real HTTP stack with real commits (PostgreSQL when
TEST_DATABASE_URL is set, else a SQLite file) and a real localstripe: 20 parallel submits of one payment
form → one PaymentIntent, one charge, one ledger row; 20 parallel submits from 20 different page loads
(tabs) → still one charge; the same webhook event ×10 in parallel → one ledger row; localstripe's own
signed webhook reaches our endpoint and changes nothing more."""

from __future__ import annotations

import json
import re
import tempfile
import time

from sqlalchemy import func, select

from tests.billing.stripe_fake import WHSEC
from tests.concurrency import live_http, race
from tests.scheduling.test_concurrency import _http_client

N = 20
VISA = "4242424242424242"


def _setup(app, localstripe):
    from portal.extensions import db
    from tests.billing.helpers import bill
    from tests.factories import create_user

    app.config.update(MAIL_BACKEND="file", MAIL_FILE_DIR=tempfile.mkdtemp(prefix="billing-race-mail-"),
                      **localstripe.config())
    user = create_user("patient")
    statement = bill(user._patient)
    db.session.commit()
    return user, statement


def _page(http, base, statement):
    html = http.get(f"{base}/billing/statements/{statement.public_id}/pay", timeout=30).text
    return {"secret": re.search(r'data-client-secret="([^"]+)"', html).group(1),
            "key": re.search(r'name="attempt_key"[^>]*value="([^"]+)"', html).group(1)}


def _counts(app, patient_id):
    """Ledger payments and attempts after a race; the account's running balance, moved by every racing
    transaction that posted, must still equal the sum of the entries that committed."""
    from portal.billing.models import BillingAccount, LedgerEntry, PaymentAttempt
    from portal.extensions import db

    with app.app_context():
        payments = db.session.execute(select(func.count(LedgerEntry.id)).where(
            LedgerEntry.patient_id == patient_id, LedgerEntry.kind == "payment")).scalar_one()
        attempts = db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one()
        stored = db.session.execute(select(BillingAccount.balance_cents).where(
            BillingAccount.patient_id == patient_id)).scalar_one()
        summed = db.session.execute(select(func.sum(LedgerEntry.amount_cents)).where(
            LedgerEntry.patient_id == patient_id)).scalar_one()
        db.session.remove()
    assert stored == summed == 0, (stored, summed)  # the statement paid in full, once
    return payments, attempts


def _charges(localstripe, customer) -> list:
    return [c for c in localstripe.get("/v1/charges", customer=customer, limit=100)["data"] if c["status"] == "succeeded"]


def test_twenty_parallel_submits_make_one_charge(committing_app, localstripe):
    app = committing_app
    with app.app_context():
        user, statement = _setup(app, localstripe)
        patient_id = user._patient.id
        with live_http(app) as base:
            http = _http_client(app, base, user.id, "/billing")
            page = _page(http, base, statement)
            pm = localstripe.confirm_setup(page["secret"], VISA)
            data = {"csrf_token": http.csrf, "attempt_key": page["key"], "payment_method": pm,
                    "amount_choice": "full"}
            results = race(N, lambda: http.post(f"{base}/billing/statements/{statement.public_id}/pay", data=data,
                                                headers={"Accept": "application/json"}, timeout=60))
            statuses = sorted(getattr(r, "status_code", repr(r)) for r in results)
            assert statuses == [200] * N, statuses
            assert {r.json()["status"] for r in results} == {"succeeded"}
            assert "Nothing is left to pay" in http.get(f"{base}/billing/statements/{statement.public_id}/pay").text
        from portal.billing.models import BillingAccount
        from portal.extensions import db

        customer = db.session.execute(select(BillingAccount.stripe_customer_id)).scalar_one()
        db.session.remove()
    payments, attempts = _counts(app, patient_id)
    charges = _charges(localstripe, customer)
    print(f"\n{N} parallel submits of one form: charges created {len(charges)}, ledger payments {payments}, "
          f"attempts {attempts}")
    assert (len(charges), payments, attempts) == (1, 1, 1)


def test_tabs_paying_at_once_still_one_charge(committing_app, localstripe):
    """Each tab has its own attempt key; the account lock and the ledger amount stop all but one."""
    N = 8
    app = committing_app
    with app.app_context():
        user, statement = _setup(app, localstripe)
        patient_id = user._patient.id
        with live_http(app) as base:
            http = _http_client(app, base, user.id, "/billing")
            forms = []
            for _ in range(N):
                page = _page(http, base, statement)
                forms.append({"csrf_token": http.csrf, "attempt_key": page["key"], "amount_choice": "full",
                              "payment_method": localstripe.confirm_setup(page["secret"], VISA)})
            queue = list(forms)
            results = race(N, lambda: http.post(f"{base}/billing/statements/{statement.public_id}/pay",
                                                data=queue.pop(), headers={"Accept": "application/json"},
                                                timeout=60))
            outcomes = [r.json().get("status") if hasattr(r, "json") else repr(r) for r in results]
            assert outcomes.count("succeeded") == 1, outcomes
            assert all(o in ("succeeded", "error") for o in outcomes), outcomes
        from portal.billing.models import BillingAccount
        from portal.extensions import db

        customer = db.session.execute(select(BillingAccount.stripe_customer_id)).scalar_one()
        db.session.remove()
    payments, _attempts = _counts(app, patient_id)
    charges = _charges(localstripe, customer)
    print(f"\n{N} tabs paying at once: charges created {len(charges)}, ledger payments {payments}")
    assert (len(charges), payments) == (1, 1)


def test_same_webhook_event_ten_times_in_parallel_posts_once(committing_app, localstripe):
    from portal.billing import gateway

    app = committing_app
    with app.app_context():
        user, statement = _setup(app, localstripe)
        patient_id = user._patient.id
        with live_http(app) as base:
            localstripe.register_webhook(base + "/billing/stripe/webhook", WHSEC)
            http = _http_client(app, base, user.id, "/billing")
            page = _page(http, base, statement)
            pm = localstripe.confirm_setup(page["secret"], "4000002500003155")
            answer = http.post(f"{base}/billing/statements/{statement.public_id}/pay", timeout=60,
                               headers={"Accept": "application/json"},
                               data={"csrf_token": http.csrf, "attempt_key": page["key"], "payment_method": pm,
                                     "amount_choice": "full"}).json()
            assert answer["status"] == "requires_action"
            localstripe.authenticate(answer["client_secret"], True)  # localstripe will send its own webhook too
            pi = localstripe.get(f"/v1/payment_intents/{answer['client_secret'].split('_secret_')[0]}")
            body = json.dumps({"id": "evt_parallel_1", "type": "payment_intent.succeeded", "object": "event",
                               "created": int(time.time()), "data": {"object": pi}}).encode()
            import requests

            results = race(10, lambda: requests.post(base + "/billing/stripe/webhook", data=body, timeout=60,
                                                     headers={"Stripe-Signature": gateway.sign_payload(body, WHSEC),
                                                              "Content-Type": "application/json"}))
            assert sorted(r.status_code for r in results) == [200] * 10
            time.sleep(1.6)  # localstripe's own delivery (1 s after the event) arrives and is a duplicate
            from portal.billing.models import StripeEvent
            from portal.extensions import db

            events = db.session.execute(select(StripeEvent.type)).scalars().all()
            db.session.remove()
            localstripe.register_webhook("http://127.0.0.1:9/none", WHSEC)
    payments, _ = _counts(app, patient_id)
    assert payments == 1
    assert "payment_intent.succeeded" in events and events.count("payment_intent.succeeded") >= 1

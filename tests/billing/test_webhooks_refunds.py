"""Webhooks (signature, tolerance both ways, duplicates, out-of-order, refunds made in Stripe), staff
refunds through localstripe, and reconciliation."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from portal.billing import gateway, services
from portal.billing.models import LedgerEntry, PaymentAttempt, StripeEvent
from portal.extensions import db
from tests.billing.helpers import bill, total
from tests.billing.stripe_fake import WHSEC
from tests.billing.test_payments import JSON, THREE_DS, VISA, entries, pay_page, submit


def send(client, event, *, secret=WHSEC, t=None, header=None):
    body = json.dumps(event).encode()
    sig = header if header is not None else gateway.sign_payload(body, secret, t)
    return client.post("/billing/stripe/webhook", data=body, content_type="application/json",
                       headers={"Stripe-Signature": sig})


def event(kind, obj, n=None):
    return {"id": f"evt_{n or kind.replace('.', '_')}_{obj.get('id')}", "type": kind, "created": int(time.time()),
            "object": "event", "data": {"object": obj}}


def paid(client, user, localstripe, card=VISA, **extra):
    statement = bill(user._patient)
    page = pay_page(client, statement)
    r = submit(client, statement, page, localstripe.confirm_setup(page["secret"], card), **extra)
    return statement, page, r


def count(model):
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_bad_signatures_are_refused_and_write_nothing(stripe_app, db, app, localstripe):
    client = app.test_client()
    obj = {"id": "pi_x", "object": "payment_intent", "status": "succeeded", "amount": 100, "currency": "usd",
           "metadata": {}}
    ev = event("payment_intent.succeeded", obj)
    now = int(time.time())
    bad = [dict(secret="whsec_wrong"), dict(t=now - 400), dict(t=now + 400), dict(header=""),
           dict(header="t=abc,v1=00"), dict(header=f"t={now}")]
    for kw in bad:
        assert send(client, ev, **kw).status_code == 400, kw
    assert count(StripeEvent) == 0
    assert send(client, ev).status_code == 200
    assert count(StripeEvent) == 1


def test_webhook_first_then_api_answer_posts_once_and_duplicates_do_nothing(stripe_app, db, login_as, app,
                                                                         localstripe):
    client, user = login_as("patient")
    statement, page, r = paid(client, user, localstripe)
    [entry] = entries(user._patient)
    pi = localstripe.get(f"/v1/payment_intents/{entry.stripe_ref}")
    hook = app.test_client()
    for _ in range(3):  # the same event again and again
        assert send(hook, event("payment_intent.succeeded", pi)).status_code == 200
    assert count(StripeEvent) == 1
    # a late "failed" (out of order) never undoes the success
    send(hook, event("payment_intent.payment_failed", dict(pi, status="requires_payment_method"), n="late"))
    assert len(entries(user._patient)) == 1
    attempt = db.session.execute(select(PaymentAttempt)).scalar_one()
    assert attempt.status == "succeeded"


def test_webhook_posts_a_payment_whose_answer_never_came_back(stripe_app, db, login_as, app, localstripe):
    """3-D Secure completed but the page never called us back: the webhook posts it."""
    client, user = login_as("patient")
    statement, page, r = paid(client, user, localstripe, card=THREE_DS)
    assert r.json["status"] == "requires_action"
    localstripe.authenticate(r.json["client_secret"], True)
    pi = localstripe.get(f"/v1/payment_intents/{r.json['client_secret'].split('_secret_')[0]}")
    assert send(app.test_client(), event("payment_intent.succeeded", pi)).json["outcome"] == "succeeded"
    [entry] = entries(user._patient)
    assert entry.amount_cents == -pi["amount"] == -total()


def test_amount_mismatch_is_flagged_never_posted(stripe_app, db, login_as, app, localstripe):
    client, user = login_as("patient")
    statement, page, r = paid(client, user, localstripe, card=THREE_DS)
    pi_id = r.json["client_secret"].split("_secret_")[0]
    forged = {"id": pi_id, "object": "payment_intent", "status": "succeeded", "amount": 1, "currency": "usd",
              "metadata": {"attempt": page["key"]}}
    assert send(app.test_client(), event("payment_intent.succeeded", forged)).json["outcome"] == "flagged"
    assert entries(user._patient) == []


def test_staff_refunds_partial_then_full_never_more_than_paid(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    paid(client, user, localstripe)
    [payment] = entries(user._patient)
    staff_client, staff = login_as("billing")
    url = f"/billing/staff/payments/{payment.public_id}/refund"
    page = staff_client.get(url)
    assert page.status_code == 200
    import re

    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = staff_client.post(url, data={"csrf_token": token, "amount": "20.00", "reason": "Billed twice"})
    assert r.status_code == 302, r.get_data(as_text=True)
    too_much = staff_client.post(url, data={"csrf_token": token, "amount": "300.00", "reason": "x"})
    assert too_much.status_code == 400 and "at most" in too_much.get_data(as_text=True)
    rest = staff_client.post(url, data={"csrf_token": token, "amount": f"{(total() - 2000) / 100:.2f}",
                                        "reason": "Insurance paid in full"})
    assert rest.status_code == 302
    refunds = entries(user._patient, "refund")
    assert sorted(e.amount_cents for e in refunds) == sorted([2000, total() - 2000])
    stripe_refunds = localstripe.get("/v1/refunds", payment_intent=payment.stripe_ref)["data"]
    assert sorted(x["amount"] for x in stripe_refunds) == sorted(e.amount_cents for e in refunds)
    assert services.balance_cents(user._patient.id) == total()
    # a patient cannot reach the refund page
    assert client.get(url).status_code == 403
    # charge.refunded for refunds already posted changes nothing; a refund made in Stripe's dashboard is posted
    charge = localstripe.get(f"/v1/charges/{localstripe.get('/v1/payment_intents/' + payment.stripe_ref)['latest_charge']['id']}") \
        if isinstance(localstripe.get('/v1/payment_intents/' + payment.stripe_ref)['latest_charge'], dict) else None
    assert charge is not None
    from flask import current_app

    with current_app.test_request_context():
        assert services.handle_event(event("charge.refunded", charge)) == "refunds_posted:0"
        outside = dict(charge, refunds={"data": [{"id": "re_outside1", "amount": 100, "status": "succeeded",
                                                    "metadata": {}}]})
        assert services.handle_event(event("charge.refunded", outside, n="outside")) == "refunds_posted:1"
    assert len(entries(user._patient, "refund")) == 3


def test_reconciliation_posts_lost_payments_and_is_idempotent(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement, page, r = paid(client, user, localstripe, card=THREE_DS)
    localstripe.authenticate(r.json["client_secret"], True)  # the page died before calling us back
    attempt = db.session.execute(select(PaymentAttempt)).scalar_one()
    from datetime import timedelta

    attempt.created_at = attempt.created_at - timedelta(minutes=5)
    db.session.commit()
    from flask import current_app

    with current_app.test_request_context():
        first = services.reconcile()
        second = services.reconcile()
    assert first["posted"] == 1 and second["posted"] == 0 and second["checked"] == 0
    assert len(entries(user._patient)) == 1

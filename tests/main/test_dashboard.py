"""The patient dashboard (/home) with every card showing data: new results, the next visit and a visit
waiting for feedback, an unread reply, a balance, texts to a verified number. PERFORMANCE.md G2 holds it
to <= 6 SQL statements per request whatever the cards show (session + user, the patient, one SELECT of
every card's counts, the appointments, the nav's unread badge); G7: the same count with more data.
Each card's figures are read from the page, so a count folded into the shared SELECT is still right."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event

from portal.core.db import utcnow
from portal.extensions import db as _db
from portal.messaging import services as messaging
from portal.notifications.models import NotificationSettings
from tests.billing.helpers import bill, total
from tests.messaging.helpers import make_pool, open_for
from tests.records.helpers import give_labs
from tests.scheduling.helpers import book_direct, make_clinic, shift

G2_MAX_STATEMENTS = 6


def _get(db, client, path):
    """The page and the SQL statements it ran, less the test harness's SAVEPOINT / RELEASE (tests/conftest.py
    turns the request's commit into a savepoint; in production it is the driver's COMMIT, not a statement)."""
    statements = []

    def listener(_conn, _cursor, statement, *_a):
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        r = client.get(path)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert r.status_code == 200, r.status_code
    return r.get_data(as_text=True), statements


def _every_card_has_data(app, user, staff, clinic):
    patient = user._patient
    give_labs(patient, "g")  # the newest panels 6 days ago, released on import: "new results"
    make_pool("support", members=[staff])
    thread = open_for(patient, user, subject="Question")
    _db.session.commit()
    with app.test_request_context():
        book_direct(patient, clinic, actor=staff, slot=clinic.slot(days_ahead=3, staff=True))
        past = book_direct(patient, clinic, actor=staff, slot=clinic.slot(days_ahead=5, staff=True))
        shift(past, starts_at=(utcnow() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0))
        messaging.staff_reply(staff, thread.public_id, body="An answer", client_key="k1")
    now = utcnow()
    _db.session.add(NotificationSettings(patient_id=patient.id, choices={}, phone_e164="+13125550147",
                                         phone_verified_at=now, sms_consent_at=now))
    _db.session.commit()
    bill(patient)


def test_dashboard_with_every_card_showing_data_stays_within_six_statements(app, db, login_as):
    client, user = login_as("patient")
    _staff_client, staff = login_as("support")
    clinic = make_clinic()
    _every_card_has_data(app, user, staff, clinic)

    html, statements = _get(db, client, "/home")
    assert "You have 1 unread reply." in html  # messages card (and the nav badge)
    assert 'class="nav-badge">1<' in html
    assert "new results." in html and "No new results" not in html  # results card
    assert "You have no upcoming appointments." not in html and "Dr. Test Patel" in html  # next visit
    assert "How was your visit on" in html  # the past visit waits for feedback
    assert f"You owe ${total() / 100:,.2f}." in html  # billing card
    assert "text the number ending in 47" in html  # notifications card: verified number, consent
    assert len(statements) <= G2_MAX_STATEMENTS, "\n".join(s.split("\n")[0][:120] for s in statements)

    # G7: the same count with more of everything
    give_labs(user._patient, "y")
    with app.test_request_context():
        for days in (8, 10):
            book_direct(user._patient, clinic, actor=staff, slot=clinic.slot(days_ahead=days, staff=True))
    db.session.commit()
    bill(user._patient)
    more_html, more = _get(db, client, "/home")
    assert f"You owe ${2 * total() / 100:,.2f}." in more_html
    assert len(more) == len(statements)


def test_card_counts_are_the_patients_own(app, db, login_as):
    """The shared SELECT is built from each card's own scoped subqueries: another patient's data never
    shows on this patient's dashboard."""
    client, user = login_as("patient")
    _other_client, other = login_as("patient")
    _staff_client, staff = login_as("support")
    _every_card_has_data(app, other, staff, make_clinic())
    html, _ = _get(db, client, "/home")
    assert "No new results in the last two weeks." in html
    assert "You have no upcoming appointments." in html and "How was your visit on" not in html
    assert "Questions for your care team" in html and "nav-badge" not in html
    assert "You owe" not in html and "We email you when something new is waiting." in html

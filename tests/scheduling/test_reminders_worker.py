"""The reminder sweep on a real Celery worker with a Redis broker (as tests/core/test_mail.py starts
one): two sweeps queued back to back send each due reminder exactly once, and an appointment whose
72-hour and 24-hour moments both passed while "the worker was down" gets one reminder, not two."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

SCRIPT = """
import sys
from config import TestingConfig
from portal import create_app
app = create_app(TestingConfig, CELERY_ALWAYS_EAGER=False, CELERY_BROKER_URL={broker!r}, MAIL_BACKEND='smtp',
                 MAIL_SERVER='127.0.0.1', MAIL_PORT={port}, SQLALCHEMY_DATABASE_URI={db!r})
celery = app.extensions['celery']
celery.worker_main(['worker', '--pool=solo', '--concurrency=1', '--loglevel=WARNING', '--without-heartbeat',
                        '--without-mingle', '--without-gossip'])
"""


def _seed(url):
    from flask_migrate import upgrade

    from config import TestingConfig
    from portal import create_app
    from portal.core.db import utcnow
    from portal.extensions import db
    from tests.factories import create_user
    from tests.scheduling.helpers import book_direct, make_clinic, shift

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parents[2] / "migrations"))
        clinic = make_clinic()
        staff = create_user("support")
        users = [create_user("patient"), create_user("patient")]
        ids = []
        with app.test_request_context():
            for user, hours in zip(users, (50, 20)):
                appt = book_direct(user._patient, clinic, actor=staff, notify_patient=False)
                shift(appt, starts_at=(utcnow() + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0))
                appt.created_at = utcnow() - timedelta(days=5)
                ids.append(appt.id)
        db.session.commit()
        emails = [u.email for u in users]
        db.engine.dispose()
    return app, ids, emails


def test_real_worker_sends_each_due_reminder_once_and_catches_up(redis_url, smtp_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    seed_app, ids, emails = _seed(url)
    smtp_server.clear()
    env = dict(os.environ, PORTAL_ENV="testing", PYTHONPATH=str(Path.cwd()))
    path = tmp_path / "worker_app.py"
    path.write_text(SCRIPT.format(broker=redis_url, port=smtp_server.port, db=url))
    worker = subprocess.Popen([sys.executable, str(path), "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        # queue two sweeps from here, by name, through a Celery client of our own (the test process's
        # own Celery app stays eager for the other tests)
        from celery import Celery

        client = Celery("sender", broker=redis_url)
        client.send_task("portal.scheduling.send_reminders")
        client.send_task("portal.scheduling.send_reminders")
        client.close()
        msgs = smtp_server.wait_for(2, timeout=40)
        msgs = smtp_server.settle(1.5)  # the second sweep has run too: nothing more may arrive
        to = sorted(m["To"] for m in msgs)
        assert to == sorted(emails), (to, worker.stdout.read1(4000) if len(msgs) < 2 else "")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
    from portal.extensions import db
    from portal.scheduling.models import Reminder

    with seed_app.app_context():
        rows = db.session.execute(select(Reminder.appointment_id, Reminder.offset_minutes, Reminder.status)
                                  .order_by(Reminder.appointment_id, Reminder.offset_minutes)).all()
        db.engine.dispose()
    assert rows == [(ids[0], 4320, "sent"), (ids[1], 1440, "sent"), (ids[1], 4320, "skipped")]
    for m in msgs:
        body = m.get_body(preferencelist=("plain",)).get_content()
        assert "/appointments/r/" in body

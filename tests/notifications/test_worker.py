"""A real Celery worker (solo pool) with Redis as the broker: the notice task meets an SMTP server that
refuses twice ('451 try again later'), retries with the row's back-off, and the email arrives exactly
once. The subprocess commits a notice (handed to Redis after the commit, as a web request would) and then
becomes the worker; the database is a SQLite file this test reads afterwards. (A subprocess, so the
worker's non-eager Celery settings stay out of this test process.)"""

from __future__ import annotations

import time
import uuid

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.conftest import free_port
from tests.helpers import start_app_script, stop_process
from tests.notifications.conftest import FlakyMailbox

SCRIPT = """
from config import TestingConfig
from portal import create_app
app = create_app(TestingConfig, CELERY_ALWAYS_EAGER=False, CELERY_BROKER_URL={broker!r},
                 SQLALCHEMY_DATABASE_URI={db_url!r}, MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1",
                 MAIL_PORT={smtp_port}, NOTICE_RETRY_BASE_SECONDS=1)
celery = app.extensions["celery"]
celery.conf.task_default_queue = {queue!r}  # this test's own queue: other tests' workers never see it
from flask_migrate import upgrade
from portal.extensions import db
from portal.notifications.kinds import NoticeKind
from portal.notifications.services import notify
from tests.factories import create_user
with app.app_context():
    upgrade(directory="migrations")
with app.test_request_context():
    user = create_user("patient", email="worker-notice@test.example")
    notify(user._patient, NoticeKind.NEW_RESULT, link="http://127.0.0.1:5000/record")
    db.session.commit()  # after commit: handed to Celery through Redis
    db.session.remove()
celery.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING", "--without-heartbeat",
                   "--without-mingle", "--without-gossip", "-Q", {queue!r}])
"""


def test_a_real_worker_retries_and_delivers_exactly_once(redis_url, tmp_path):
    box = FlakyMailbox(refuse=2)
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    db_path = tmp_path / "worker.sqlite3"
    worker = None
    try:
        worker = start_app_script(tmp_path, "notice_worker", SCRIPT.format(
            broker=redis_url, db_url=f"sqlite:///{db_path}", smtp_port=port,
            queue=f"notices-test-{uuid.uuid4().hex[:8]}"))
        msgs = box.wait_for(1, timeout=40)
        assert [m["To"] for m in msgs] == ["worker-notice@test.example"], \
            worker.stdout.read1(4000) if not msgs else msgs
        time.sleep(1.0)  # a duplicate would come within the back-off window
        assert len(box.messages) == 1 and box.refused == 2
    finally:
        stop_process(worker)
        controller.stop()
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        row = conn.execute(text("select status, attempts, last_error, provider_id from notices")).one()
    engine.dispose()
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    assert row.provider_id == msgs[0]["Message-ID"]

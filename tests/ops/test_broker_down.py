"""Redis (the Celery broker) stopped, then started again, with a real broker and a real SMTP server.

A subprocess plays the web request and then becomes the Celery worker (so its non-eager settings stay out of
this test process): while Redis is down it commits a notice (a durable row) and an account email (the kind
sent right after commit, e.g. "verify your address"). The email cannot be queued, so it is sent directly
and arrives at once; the notice stays queued. Redis comes back, the periodic sweep hands the notice over,
the worker delivers it: each message arrives exactly once, and the notice row ends as sent."""

from __future__ import annotations

import time
import uuid

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.conftest import free_port
from tests.helpers import start_app_script, stop_process
from tests.notifications.conftest import FlakyMailbox
from tests.ops.test_scale_out import PrivateRedis

SCRIPT = """
import os, time
from config import TestingConfig
from portal import create_app
app = create_app(TestingConfig, CELERY_ALWAYS_EAGER=False, CELERY_BROKER_URL={broker!r},
                 SQLALCHEMY_DATABASE_URI={db_url!r}, MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1",
                 MAIL_PORT={smtp_port})
celery = app.extensions["celery"]
celery.conf.task_default_queue = {queue!r}
from flask_migrate import upgrade
from portal.core.mail import send_after_commit
from portal.extensions import db
from portal.notifications.kinds import NoticeKind
from portal.notifications.services import notify
from portal.notifications.tasks import sweep_once
from tests.factories import create_user
with app.app_context():
    upgrade(directory="migrations")
with app.test_request_context():
    user = create_user("patient", email="broker-down@test.example")
    notify(user._patient, NoticeKind.NEW_RESULT, link="http://127.0.0.1:5000/record")
    send_after_commit(user.email, "verify_email", "en", link="http://127.0.0.1:5000/verify/x")
    db.session.commit()  # Redis is down: neither can be handed to Celery
    db.session.remove()
print("COMMITTED", flush=True)
while not os.path.exists({marker!r}):
    time.sleep(0.1)
with app.app_context():
    print("SWEEP", sweep_once(), flush=True)
celery.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING", "--without-heartbeat",
                   "--without-mingle", "--without-gossip", "-Q", {queue!r}])
"""


def test_broker_down_mail_goes_directly_and_notices_catch_up_once_it_returns(tmp_path):
    import shutil

    from tests.conftest import unavailable

    if not shutil.which("redis-server"):
        unavailable("redis-server", "not installed (apt-get install redis-server)")
    box = FlakyMailbox(refuse=0)
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    redis = PrivateRedis(tmp_path)  # not started yet: the broker is down
    db_path, marker = tmp_path / "broker.sqlite3", tmp_path / "redis-is-back"
    worker = None
    try:
        worker = start_app_script(tmp_path, "broker_down", SCRIPT.format(
            broker=redis.url, db_url=f"sqlite:///{db_path}", smtp_port=port,
            queue=f"broker-down-{uuid.uuid4().hex[:8]}", marker=str(marker)))
        msgs = box.wait_for(1, timeout=60)
        assert [m["To"] for m in msgs] == ["broker-down@test.example"], worker.stdout.read1(4000)
        assert "verify" in msgs[0].get_body(preferencelist=("plain",)).get_content().lower()
        engine = create_engine(f"sqlite:///{db_path}")
        with engine.connect() as conn:
            assert conn.execute(text("select status from notices")).scalar_one() == "queued"
        redis.start()
        marker.touch()
        msgs = box.wait_for(2, timeout=60)
        assert len(msgs) == 2, worker.stdout.read1(4000)
        time.sleep(1.0)  # a duplicate would come now
        assert len(box.messages) == 2
        with engine.connect() as conn:
            row = conn.execute(text("select status, attempts from notices")).one()
        engine.dispose()
        assert row.status == "sent" and row.attempts == 1
    finally:
        stop_process(worker)
        redis.stop()
        controller.stop()

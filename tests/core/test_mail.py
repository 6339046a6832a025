"""Mail goes through a real SMTP server (aiosmtpd), only after commit, and carries no PHI."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal.core.mail import build_message, deliver, send_after_commit


def test_mail_is_sent_only_after_commit(app, db, mailbox):
    with app.test_request_context():
        send_after_commit("a@example.org", "mfa_enabled", "en")
        assert mailbox.settle(0.2) == []
        db.session.rollback()
    assert mailbox.settle(0.3) == []
    with app.test_request_context():
        send_after_commit("b@example.org", "mfa_enabled", "en")
        db.session.commit()
    msgs = mailbox.wait_for(1)
    assert [m["To"] for m in msgs] == ["b@example.org"]


def test_mail_is_rendered_in_the_recipients_language(app, db, mailbox):
    with app.test_request_context():
        msg = build_message("c@example.org", "password_changed", "es")
    assert "contraseña" in msg["Subject"].lower()


def test_file_backend_writes_eml(app, tmp_path):
    with app.test_request_context():
        app.config.update(MAIL_BACKEND="file", MAIL_FILE_DIR=str(tmp_path))
        try:
            deliver(build_message("d@example.org", "mfa_reset", "en"))
        finally:
            app.config["MAIL_BACKEND"] = "smtp"
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1 and b"d@example.org" in files[0].read_bytes()


@pytest.mark.parametrize("template,ctx", [
    ("verify_email", {"link": "http://x/activate/verify/t"}),
    ("password_reset", {"link": "http://x/password/reset/t"}),
    ("activation", {"code": "ABCD-EFGH-JKLM", "link": "http://x/activate", "days": 14}),
    ("password_changed", {}), ("mfa_enabled", {}), ("mfa_reset", {}), ("staff_welcome", {"link": "http://x"}),
])
def test_no_template_carries_phi(app, template, ctx, make_patient, db):
    patient = make_patient(given_name="Canaryname", family_name="Canaryfamily")
    for lang in ("en", "es"):
        with app.test_request_context():
            msg = build_message("e@example.org", template, lang, patient=patient, **ctx)
        text = msg.get_content() + msg["Subject"]
        assert "Canary" not in text and patient.mrn not in text
        assert "no health information" in text or "información de salud" in text


def test_celery_worker_delivers_mail_through_redis(redis_url, smtp_server, tmp_path):
    """A real Celery worker (solo pool) consumes the send_email task from a Redis broker."""
    smtp_server.clear()
    env = dict(os.environ, PORTAL_ENV="testing", CELERY_BROKER_URL=redis_url, PYTHONPATH=str(Path.cwd()),
               MAIL_BACKEND="smtp")
    script = f"""
import sys
from config import TestingConfig
from portal import create_app
app = create_app(TestingConfig, CELERY_ALWAYS_EAGER=False, CELERY_BROKER_URL={redis_url!r},
                 MAIL_BACKEND='smtp', MAIL_SERVER='127.0.0.1', MAIL_PORT={smtp_server.port},
                 SQLALCHEMY_DATABASE_URI='sqlite://')
celery = app.extensions['celery']
if sys.argv[1] == 'send':
    from portal.core.mail import build_message
    from portal.core.mail import send_email
    with app.test_request_context():
        send_email.delay(build_message('worker@example.org', 'mfa_enabled', 'en').as_string())
else:
    celery.worker_main(['worker', '--pool=solo', '--concurrency=1', '--loglevel=WARNING', '--without-heartbeat',
                        '--without-mingle', '--without-gossip'])
"""
    path = tmp_path / "celery_app.py"
    path.write_text(script)
    worker = subprocess.Popen([sys.executable, str(path), "worker"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        subprocess.run([sys.executable, str(path), "send"], env=env, check=True, timeout=60)
        msgs = smtp_server.wait_for(1, timeout=30)
        assert [m["To"] for m in msgs] == ["worker@example.org"], worker.stdout.read1(4000) if msgs == [] else msgs
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
    time.sleep(0)

"""Celery tasks: deliver one notice (claimed first, so never twice), a one-off text, and the periodic
sweep that re-drives notices from the database (texts held for quiet hours, work lost while Redis or a
worker was down, stale claims).

The tasks are units of work of their own (no request frame around them), so they commit here, between
the services' flush-only steps: the claim is committed before the provider is called (no database
lock is held during the network call), and the outcome after.
"""

from __future__ import annotations

import logging

from portal.core.db import utcnow
from portal.extensions import celery, db
from portal.notifications import channels, services

log = logging.getLogger("portal.notifications")

PERIODIC = {
    "notifications-sweep": {"task": "portal.notifications.sweep", "schedule": 60.0},
}


def deliver(notice_id: int) -> int | None:
    """Claim, send and record one notice. Returns the seconds to wait before retrying, or None (sent,
    failed for good, not due, or someone else has it)."""
    notice = services.claim_notice(notice_id, utcnow())
    db.session.commit()
    if notice is None:
        return None
    try:
        provider_id = services.send_notice(notice)
    except channels.DeliveryError as err:
        retry_in = services.record_failure(notice, err, utcnow())
        db.session.commit()
        log.warning("notice %s attempt %s failed: %s", notice.id, notice.attempts, err.reason)
        return retry_in
    except Exception as exc:  # a bug in a template or a backend: retried like a transient failure
        log.exception("notice %s attempt %s raised", notice_id, notice.attempts)
        retry_in = services.record_failure(notice, channels.TransientError(type(exc).__name__), utcnow())
        db.session.commit()
        return retry_in
    services.record_sent(notice, provider_id, utcnow())
    db.session.commit()
    return None


@celery.task(bind=True, name="portal.notifications.deliver", acks_late=True, max_retries=None)
def deliver_notice(self, notice_id: int) -> None:
    """Deliver one notice; a transient failure retries after the row's back-off (the row counts the
    attempts and ends as failed, so this stops)."""
    retry_in = deliver(notice_id)
    if retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=retry_in)


def deliver_text(to: str, body: str) -> str:
    return channels.send_sms(to, body)


@celery.task(bind=True, name="portal.notifications.send_text", acks_late=True, max_retries=3)
def send_text(self, to: str, body: str) -> None:
    """A one-off text (a verification code): a few quick retries; the patient can ask for a new code."""
    try:
        deliver_text(to, body)
    except channels.TransientError as err:
        raise self.retry(countdown=5 * (self.request.retries + 1)) from err
    except channels.PermanentError as err:
        log.warning("text not sent: %s", err.reason)


def sweep_once() -> dict:
    """Fail stale claims, then hand every due notice to Celery (or deliver it, when eager)."""
    now = utcnow()
    eager = bool(deliver_notice.app.conf.task_always_eager)
    stale = services.fail_stale(now)
    ids = services.due_notice_ids(now, eager=eager)
    db.session.commit()
    sent = 0
    for notice_id in ids:
        if eager:
            deliver(notice_id)
            sent += 1
        else:
            try:
                deliver_notice.delay(notice_id)
                sent += 1
            except Exception as exc:
                log.warning("sweep could not reach the broker (%s)", type(exc).__name__)
                break
    return {"stale": stale, "due": len(ids), "handed_over": sent}


@celery.task(name="portal.notifications.sweep")
def sweep() -> None:
    result = sweep_once()
    if result["due"] or result["stale"]:
        log.info("notifications sweep: %s", result)

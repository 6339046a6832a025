"""Celery tasks of the scheduling domain and their beat schedule (collected by create_app).

Both sweeps work from database state, one appointment / offer per transaction: a crash or a second
worker loses nothing and repeats nothing (the reminder row's unique constraint is the claim)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError, OperationalError

from portal.extensions import celery, db

log = logging.getLogger("portal.scheduling")


@celery.task(name="portal.scheduling.send_reminders", ignore_result=True)
def send_reminders() -> dict:
    """Send every reminder that is due (and catch up after downtime)."""
    from flask import current_app

    from portal.scheduling import reminders

    sent = skipped_races = 0
    with current_app.test_request_context("/"):  # url building and audit rows outside a request
        for appointment_id in reminders.due_ids():
            try:
                if reminders.process(appointment_id) is not None:
                    sent += 1
                db.session.commit()
            except (IntegrityError, OperationalError):  # another sweep got there first
                db.session.rollback()
                skipped_races += 1
    if sent or skipped_races:
        log.info("reminders sent=%s already_claimed=%s", sent, skipped_races)
    return {"sent": sent, "raced": skipped_races}


@celery.task(name="portal.scheduling.expire_offers", ignore_result=True)
def expire_offers() -> int:
    """Close expired waitlist offers and pass the freed times to the next patients in line."""
    from flask import current_app

    from portal.scheduling import waitlist

    with current_app.test_request_context("/"):
        try:
            n = waitlist.expire_offers()
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return n


PERIODIC = {
    "scheduling-reminders": {"task": "portal.scheduling.send_reminders", "schedule": 60.0},
    "scheduling-waitlist-offers": {"task": "portal.scheduling.expire_offers", "schedule": 120.0},
}

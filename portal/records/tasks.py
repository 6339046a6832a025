"""Celery tasks of the records domain: the periodic release of results whose time has come (the
patient's chosen wait ran out, or a clinician's hold expired). Database-driven and idempotent."""

from __future__ import annotations

import logging

from portal.extensions import celery, db

log = logging.getLogger("portal.records")


@celery.task(name="portal.records.release_due_results", ignore_result=True)
def release_due_results() -> int:
    from flask import current_app

    from portal.records import release

    with current_app.test_request_context("/"):  # url building and audit rows outside a request
        try:
            n = release.release_due()
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    if n:
        log.info("results released=%s", n)
    return n


PERIODIC = {
    "records-release-results": {"task": "portal.records.release_due_results", "schedule": 300.0},
}

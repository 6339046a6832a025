"""Audit jobs: the signed checkpoint of the audit chain, written outside the database at intervals."""

import os

from flask import current_app

from portal.extensions import celery


@celery.task(name="portal.audit.checkpoint", ignore_result=True)
def checkpoint():
    from portal.core.audit import write_checkpoint

    if current_app.config.get("AUDIT_CHECKPOINT_FILE"):
        write_checkpoint()


PERIODIC = {
    "audit-checkpoint": {"task": "portal.audit.checkpoint", "schedule": float(os.environ.get("AUDIT_CHECKPOINT_SECONDS") or 300)},
}

"""Billing's Celery tasks: the statement batch (one account per transaction, progress on the run row),
the periodic reconciliation with Stripe (driven by our own payment attempts; idempotent) and the aging
snapshot (computed off the request, shown by the staff pages with its time; idempotent)."""

from __future__ import annotations

import logging
import threading

from portal.extensions import celery, db

log = logging.getLogger("portal.billing")


@celery.task(name="portal.billing.run_statements", ignore_result=True)
def run_statements(run_id: int) -> None:
    from flask import current_app

    from portal.billing import services

    with current_app.test_request_context("/"):
        try:
            services.process_run(run_id, commit=True)
        except Exception:
            db.session.rollback()
            raise


def _start_after_commit(task, *args, name: str) -> None:
    """Run `task(*args)` after this request commits: on a worker, or (the embedded default, eager Celery)
    on a background thread, so the page answers at once (and shows progress)."""
    from flask import current_app
    from sqlalchemy import event

    app = current_app._get_current_object()

    def go(_session):
        if app.config.get("CELERY_ALWAYS_EAGER"):
            def work():
                with app.app_context():
                    task.run(*args)

            threading.Thread(target=work, name=name, daemon=True).start()
        else:
            task.delay(*args)

    event.listen(db.session(), "after_commit", go, once=True)


def dispatch_run(run_id: int) -> None:
    """Start the statement batch after this request commits."""
    _start_after_commit(run_statements, run_id, name="statement-run")


@celery.task(name="portal.billing.reconcile", ignore_result=True)
def reconcile() -> dict:
    from flask import current_app

    from portal.billing import gateway, services

    if not gateway.enabled():
        return {}
    with current_app.test_request_context("/"):
        try:
            report = services.reconcile()
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    if any(report.values()):
        log.info("billing reconciliation %s", report)
    return report


AGING_LOCK = 0x62696C6C  # PostgreSQL advisory lock key ("bill"): one aging computation at a time


@celery.task(name="portal.billing.aging_snapshot", ignore_result=True)
def aging_snapshot(requested_by_id: int | None = None) -> int | None:
    """Compute and store the aging snapshot in its own transaction. On PostgreSQL the computation reads one
    REPEATABLE READ snapshot of the ledger (its totals are of one moment) and takes a transaction-level
    advisory lock: a second run started meanwhile (beat and the staff button) skips, returning None."""
    from flask import current_app
    from sqlalchemy import Engine, text

    from portal.accounts.models import User
    from portal.billing import services

    with current_app.test_request_context("/"):
        try:
            if db.engine.dialect.name == "postgresql":
                if isinstance(db.session.get_bind(), Engine):  # a fresh transaction (not a test's connection)
                    db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                if not db.session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": AGING_LOCK}).scalar():
                    db.session.rollback()
                    return None
            actor = db.session.get(User, requested_by_id) if requested_by_id else None
            snapshot = services.compute_aging_snapshot(actor)
            db.session.commit()
            log.info("billing aging snapshot %s: %s accounts owe %s cents", snapshot.id, snapshot.accounts,
                     snapshot.total)
            return snapshot.id
        except Exception:
            db.session.rollback()
            raise


def dispatch_aging(requested_by_id: int | None) -> None:
    """Recompute the aging after this request commits."""
    _start_after_commit(aging_snapshot, requested_by_id, name="aging-snapshot")


PERIODIC = {
    "billing-reconcile": {"task": "portal.billing.reconcile", "schedule": 600.0},
    "billing-aging-snapshot": {"task": "portal.billing.aging_snapshot", "schedule": 3600.0},
}

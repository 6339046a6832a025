"""record_event() queues the row; it is chained and inserted just before the transaction commits, so the
chain's lock is not held while a page or a PDF renders (two workers rendering statement PDFs used to take
turns). It is kept exactly when the work it describes is: dropped with a rolled-back transaction or
savepoint, and visible to a query of the audit log in the same transaction."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select, text

from portal.core.audit import AuditEvent, EventTag, record_event, verify_chain


def _raw_count(db) -> int:  # plain SQL: not an ORM query of the audit log, which would append the queue first
    return db.session.connection().exec_driver_sql("SELECT count(*) FROM audit_events").scalar()


def test_the_row_is_written_at_commit_and_the_chain_lock_is_free_until_then(app, db, make_user):
    user = make_user("support")
    db.session.commit()
    before = _raw_count(db)
    record_event(EventTag.PATIENT_VIEW, actor=user, category="demographics")
    assert _raw_count(db) == before  # queued, not yet written
    if db.session.get_bind().dialect.name == "postgresql":
        other = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        try:
            with other.connect() as conn:  # another worker could append now: nobody holds the chain's lock
                assert conn.execute(text("SELECT pg_try_advisory_lock(727274)")).scalar() is True
                conn.execute(text("SELECT pg_advisory_unlock(727274)"))
        finally:
            other.dispose()
    db.session.commit()
    assert _raw_count(db) == before + 1
    assert verify_chain()[1] == []


def test_a_rolled_back_transaction_or_savepoint_keeps_none_of_its_events(app, db, make_user):
    user = make_user("support")
    db.session.commit()
    before = _raw_count(db)
    record_event(EventTag.PATIENT_VIEW, actor=user, category="dropped-with-the-transaction")
    db.session.rollback()
    record_event(EventTag.PATIENT_VIEW, actor=user, category="kept")
    savepoint = db.session.begin_nested()
    record_event(EventTag.PATIENT_VIEW, actor=user, category="dropped-with-the-savepoint")
    savepoint.rollback()
    with db.session.begin_nested():
        record_event(EventTag.PATIENT_VIEW, actor=user, category="kept-savepoint")
    db.session.commit()
    kept = db.session.execute(select(AuditEvent.category).where(AuditEvent.actor_id == user.id)
                              .order_by(AuditEvent.id)).scalars().all()
    assert kept == ["kept", "kept-savepoint"] and _raw_count(db) == before + 2


def test_a_query_of_the_audit_log_sees_the_rows_its_transaction_recorded(app, db, make_user):
    user = make_user("support")
    record_event(EventTag.PATIENT_VIEW, actor=user, category="demographics")
    n = db.session.execute(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.actor_id == user.id)).scalar_one()
    assert n == 1
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.actor_id == user.id)).scalar_one() == 1  # once, not twice

"""Finding 3: the audit chain is keyed (HMAC, key from the environment) and checked against signed
checkpoints kept outside the database, so an edit, a re-chain without the key and a cut tail are all
caught; the migration re-keys an intact unkeyed chain and refuses a broken one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text

from portal.core.audit import (GENESIS, AuditEvent, EventTag, compute_hash, hashed_fields, legacy_hash,
                               read_checkpoints, record_event, verify, verify_chain, write_checkpoint)
from tests.security.helpers import dump_text

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = str(ROOT / "migrations")


@pytest.fixture()
def checkpoints(app, tmp_path, monkeypatch):
    path = tmp_path / "audit-checkpoints.jsonl"
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_FILE", str(path))
    return path


def _seed(db, make_user, n=6):
    user = make_user("patient")
    for i in range(n):
        record_event(EventTag.PATIENT_VIEW, actor=user, patient=user._patient, category="demographics",
                     object_type="patient", object_id=f"obj{i}")
    db.session.commit()
    return db.session.execute(select(AuditEvent.id).order_by(AuditEvent.id)).scalars().all()


def _unlock(db):
    """An attacker with SQL access lifts the append-only trigger (the test transaction is rolled back)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    else:
        db.session.execute(text("DROP TRIGGER audit_events_no_update"))
        db.session.execute(text("DROP TRIGGER audit_events_no_delete"))


def _rechain_from(db, first_id, link):
    """Recompute every link from `first_id` on with `link(prev, fields)`, as an attacker would."""
    prev = db.session.execute(select(AuditEvent.row_hash).where(AuditEvent.id < first_id)
                              .order_by(AuditEvent.id.desc()).limit(1)).scalar() or GENESIS
    db.session.expire_all()
    for ev in db.session.execute(select(AuditEvent).where(AuditEvent.id >= first_id)
                                 .order_by(AuditEvent.id)).scalars().all():
        h = link(prev, hashed_fields(ev))
        db.session.execute(text("UPDATE audit_events SET prev_hash = :p, row_hash = :h WHERE id = :id"),
                           {"p": prev, "h": h, "id": ev.id})
        prev = h
    db.session.expire_all()


def test_rows_are_linked_with_the_key_not_plain_sha256(app, db, make_user):
    ids = _seed(db, make_user, n=2)
    ev = db.session.get(AuditEvent, ids[-1])
    key = app.config["AUDIT_HMAC_KEY"].encode()
    assert ev.row_hash == compute_hash(ev.prev_hash, hashed_fields(ev), key)
    assert ev.row_hash != legacy_hash(ev.prev_hash, hashed_fields(ev))
    assert ev.row_hash != compute_hash(ev.prev_hash, hashed_fields(ev), b"another key")
    assert app.config["AUDIT_HMAC_KEY"] not in dump_text(db)  # the key is never in the database


def test_an_edit_recomputed_with_plain_sha256_is_caught(app, db, make_user):
    """Before the fix the chain was sha256(prev + fields): this re-chain verified as intact."""
    ids = _seed(db, make_user)
    _unlock(db)
    db.session.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE id = :id"), {"id": ids[-3]})
    _rechain_from(db, ids[-3], legacy_hash)
    checked, bad = verify_chain()
    assert ids[-3] in bad and not verify().intact
    _rechain_from(db, ids[0], lambda p, f: compute_hash(p, f, b"a guessed key"))
    assert verify_chain()[1][:1] == [ids[0]]


def test_a_cut_tail_is_caught_by_the_signed_checkpoint(app, db, make_user, checkpoints):
    ids = _seed(db, make_user)
    cp = write_checkpoint()
    assert cp["last_id"] == ids[-1] and cp["head"] == db.session.get(AuditEvent, ids[-1]).row_hash
    line = json.loads(checkpoints.read_text().splitlines()[-1])
    assert line == cp and len(line["sig"]) == 64
    assert verify().intact
    _unlock(db)
    db.session.execute(text("DELETE FROM audit_events WHERE id >= :id"), {"id": ids[-2]})
    assert verify_chain()[1] == []  # what is left still chains: only the checkpoint tells
    report = verify()
    assert not report.intact and any("missing" in p for p in report.problems), report
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "rows were cut" in result.output


def test_a_table_rebuilt_with_the_same_row_count_differs_from_the_checkpoint(app, db, make_user, checkpoints):
    ids = _seed(db, make_user, n=3)
    write_checkpoint()
    _unlock(db)
    db.session.execute(text("UPDATE audit_events SET detail = 'x' WHERE id = :id"), {"id": ids[-1]})
    _rechain_from(db, ids[0], legacy_hash)
    report = verify()
    assert ids[-1] in report.bad_rows and any("different hash" in p for p in report.problems)


def test_a_forged_or_edited_checkpoint_line_is_reported(app, db, make_user, checkpoints):
    _seed(db, make_user, n=2)
    cp = write_checkpoint()
    forged = dict(cp, count=cp["count"] - 1)
    with open(checkpoints, "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    good, bad = read_checkpoints()
    assert len(good) == 1 and bad == 1
    assert not verify().intact


def test_cli_verify_and_checkpoint(app, db, make_user, checkpoints):
    _seed(db, make_user, n=2)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0 and "Checkpoint:" in result.output
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "against 1 checkpoints; chain intact" in result.output


@pytest.mark.parametrize("field", ["occurred_at", "actor_id", "actor_role", "action", "category", "patient_id",
                                   "object_type", "object_id", "outcome", "ip", "user_agent", "request_id",
                                   "detail", "prev_hash"])
def test_changing_any_hashed_field_of_one_row_is_detected(app, db, make_user, field):
    ids = _seed(db, make_user, n=3)
    victim = ids[1]
    other = make_user("support")
    db.session.commit()
    values = {"occurred_at": "2001-01-01 00:00:00.000000", "actor_id": other.id, "actor_role": "admin",
              "action": "patient.search", "category": "lab_results", "patient_id": None, "object_type": "user",
              "object_id": "objX", "outcome": "failure", "ip": "10.9.9.9", "user_agent": "Edited/1.0",
              "request_id": "edited-request-id", "detail": '{"x":1}', "prev_hash": "f" * 64}
    assert set(values) == set(hashed_fields(db.session.get(AuditEvent, victim))) | {"prev_hash"}
    value = values[field]
    if field == "occurred_at" and db.session.get_bind().dialect.name == "postgresql":
        value = "2001-01-01 00:00:00+00"
    _unlock(db)
    db.session.execute(text(f"UPDATE audit_events SET {field} = :v WHERE id = :id"), {"v": value, "id": victim})
    db.session.expire_all()
    checked, bad = verify_chain()
    assert bad and bad[0] == victim, (field, bad)


# --- the migration re-keys an intact unkeyed chain ---------------------------------------------------

def _legacy_rows(conn, n, *, break_at=None):
    from portal.core.db import utcnow

    t = AuditEvent.__table__
    prev = GENESIS
    for i in range(n):
        row = {"occurred_at": utcnow(), "actor_id": None, "actor_role": None, "action": "auth.signin.failure",
               "category": None, "patient_id": None, "object_type": None, "object_id": f"o{i}",
               "outcome": "failure", "ip": "127.0.0.1", "user_agent": "UA", "request_id": f"r{i}", "detail": None}
        fields = {**row, "occurred_at": row["occurred_at"].isoformat(timespec="microseconds")}
        h = legacy_hash(prev, fields)
        if i == break_at:
            row["outcome"] = "success"  # edited after hashing
        conn.execute(t.insert().values(**row, prev_hash=prev, row_hash=h))
        prev = h


def _migration_app(url):
    from config import TestingConfig
    from portal import create_app

    return create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)


def _migrate_legacy(url, *, break_at=None):
    from flask_migrate import upgrade

    from portal.extensions import db as _db

    app = _migration_app(url)
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="b1a2c3d4e5f6")
        with _db.engine.begin() as conn:
            _legacy_rows(conn, 5, break_at=break_at)
        try:
            upgrade(directory=MIGRATIONS)
            return verify()
        finally:
            _db.session.remove()
            _db.engine.dispose()


def test_migration_rekeys_an_intact_legacy_chain_sqlite(tmp_path):
    report = _migrate_legacy(f"sqlite:///{tmp_path / 'legacy.sqlite3'}")
    assert report.checked == 5 and report.intact


def test_migration_refuses_a_broken_legacy_chain_sqlite(tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 'broken.sqlite3'}"
    with pytest.raises(SystemExit):  # Flask-Migrate turns the migration's RuntimeError into exit 1
        _migrate_legacy(url, break_at=2)
    assert "audit chain already broken at row 3" in capfd.readouterr().err
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # the re-keying revision did not run (other branches may have)
        versions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        assert "c4e8a1f27b90" not in versions and versions, versions
    engine.dispose()


def test_migration_rekeys_an_intact_legacy_chain_postgresql(pg_admin_url):
    import uuid

    from tests.conftest import create_pg_database, drop_pg_database

    name = f"portal_staff_chain_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(name)
    try:
        report = _migrate_legacy(url)
        assert report.checked == 5 and report.intact
    finally:
        drop_pg_database(name)


def test_the_beat_writes_checkpoints_at_intervals(app, db, make_user, checkpoints):
    from portal.audit import tasks

    assert tasks.PERIODIC["audit-checkpoint"]["task"] == "portal.audit.checkpoint"
    assert 0 < tasks.PERIODIC["audit-checkpoint"]["schedule"] <= 3600
    _seed(db, make_user, n=1)
    tasks.checkpoint.run()
    assert len(read_checkpoints()[0]) == 1

"""Key the audit chain: every existing row's link is recomputed as HMAC-SHA256 under AUDIT_HMAC_KEY.

The unkeyed SHA-256 chain is checked first: if it is already broken the upgrade stops (investigate
with the old code's `flask audit verify` before keying a chain that was tampered with). The append-only
trigger is lifted for the re-chain only, inside this migration's transaction. No schema change.

Revision ID: c4e8a1f27b90
Revises: b1a2c3d4e5f6
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "c4e8a1f27b90"
down_revision = "b1a2c3d4e5f6"
branch_labels = None
depends_on = None

_SQLITE_NO_UPDATE = ("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                     "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")


def _rows(conn):
    from portal.core.audit import AuditEvent

    t = AuditEvent.__table__
    return conn.execute(sa.select(t).order_by(t.c.id)).all()


def _rechain(to_keyed: bool) -> int:
    from portal.core.audit import GENESIS, AuditEvent, chain_key, compute_hash, hashed_fields, legacy_hash

    conn = op.get_bind()
    key = chain_key()
    old = (lambda p, f: legacy_hash(p, f)) if to_keyed else (lambda p, f: compute_hash(p, f, key))
    new = (lambda p, f: compute_hash(p, f, key)) if to_keyed else (lambda p, f: legacy_hash(p, f))
    rows = _rows(conn)
    if not rows:
        return 0
    first = rows[0]
    if first.row_hash == new(GENESIS, hashed_fields(first)) and first.prev_hash == GENESIS:
        return 0  # already in the target form (a re-run)
    prev = GENESIS
    for row in rows:
        if row.prev_hash != prev or row.row_hash != old(row.prev_hash, hashed_fields(row)):
            raise RuntimeError(f"audit chain already broken at row {row.id}: not re-keying it; investigate first")
        prev = row.row_hash
    dialect = conn.dialect.name
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    t = AuditEvent.__table__
    prev = GENESIS
    for row in rows:
        link = new(prev, hashed_fields(row))
        conn.execute(t.update().where(t.c.id == row.id).values(prev_hash=prev, row_hash=link))
        prev = link
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update")
    elif dialect == "sqlite":
        op.execute(_SQLITE_NO_UPDATE)
    return len(rows)


def upgrade():
    _rechain(to_keyed=True)


def downgrade():
    _rechain(to_keyed=False)

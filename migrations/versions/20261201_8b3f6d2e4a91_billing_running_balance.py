"""billing (issue 12, PERFORMANCE.md G6/G8): the accounts' running balance and the aging snapshot.

- billing_accounts.balance_cents: the sum of the patient's ledger entries, kept by services.record_entry in
  the same transaction as every posting; indexed with id so "top balances" and "accounts that owe" read the
  index instead of summing the whole ledger. Backfilled here from the entries, after making the account row
  of any patient with entries but no account (entries inserted outside the services).
- billing_aging_snapshots: the FIFO aging computed off the request (beat job, staff button, demo seed).
- ix_billing_entries_kind_posted_at: the reports page's payments and refunds by day read only those rows
  (not every entry posted in the last 30 days).

Revision ID: 8b3f6d2e4a91
Revises: 5d1e9f3a7c20
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

import portal.core.db

revision = "8b3f6d2e4a91"
down_revision = "5d1e9f3a7c20"
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    with op.batch_alter_table("billing_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("balance_cents", sa.BigInteger(), server_default="0", nullable=False))

    # every patient with entries has an account (the services always made one; direct inserts may not have)
    new_id = "md5(random()::text || clock_timestamp()::text || e.patient_id::text)" if pg \
        else "lower(hex(randomblob(16)))"
    now, true = ("now()", "true") if pg else ("CURRENT_TIMESTAMP", "1")
    op.execute(f"""
        INSERT INTO billing_accounts (public_id, patient_id, paperless, created_at, balance_cents)
        SELECT {new_id}, e.patient_id, {true}, {now}, 0
        FROM (SELECT DISTINCT patient_id FROM billing_entries) e
        WHERE NOT EXISTS (SELECT 1 FROM billing_accounts a WHERE a.patient_id = e.patient_id)""")
    if pg:  # one pass over the ledger, grouped, joined to the accounts
        op.execute("""
            UPDATE billing_accounts a SET balance_cents = s.bal
            FROM (SELECT patient_id, SUM(amount_cents) AS bal FROM billing_entries GROUP BY patient_id) s
            WHERE s.patient_id = a.patient_id AND s.bal <> 0""")
    else:
        op.execute("""
            UPDATE billing_accounts SET balance_cents = (
                SELECT COALESCE(SUM(e.amount_cents), 0) FROM billing_entries e
                WHERE e.patient_id = billing_accounts.patient_id)""")
    with op.batch_alter_table("billing_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_billing_accounts_balance_cents_id", ["balance_cents", "id"], unique=False)

    op.create_table(
        "billing_aging_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("computed_at", portal.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("days_0_30", sa.BigInteger(), nullable=False),
        sa.Column("days_31_60", sa.BigInteger(), nullable=False),
        sa.Column("days_61_90", sa.BigInteger(), nullable=False),
        sa.Column("days_90_plus", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"],
                                name=op.f("fk_billing_aging_snapshots_requested_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_aging_snapshots")),
    )
    op.create_index("ix_billing_entries_kind_posted_at", "billing_entries", ["kind", "posted_at"])
    if pg:
        op.execute("ANALYZE billing_accounts")


def downgrade():
    op.drop_index("ix_billing_entries_kind_posted_at", table_name="billing_entries")
    op.drop_table("billing_aging_snapshots")
    with op.batch_alter_table("billing_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_accounts_balance_cents_id")
        batch_op.drop_column("balance_cents")

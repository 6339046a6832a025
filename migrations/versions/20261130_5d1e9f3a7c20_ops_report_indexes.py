"""Operations (issue 12, PERFORMANCE.md G8: no page reads a large table end to end; tests/ops/test_query_plans.py):
billing_entries.posted_at (payments by day, the accounting export), appointments.starts_at (the staff day
across providers) and waitlist_entries.appointment_id (an appointment's waitlist rows).

Revision ID: 5d1e9f3a7c20
Revises: e7f8a9b0c1d2
Create Date: 2026-11-30
"""

from alembic import op

revision = "5d1e9f3a7c20"
down_revision = "e7f8a9b0c1d2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_billing_entries_posted_at", "billing_entries", ["posted_at"])
    op.create_index("ix_appointments_starts_at", "appointments", ["starts_at"])
    op.create_index("ix_waitlist_entries_appointment_id", "waitlist_entries", ["appointment_id"])


def downgrade():
    op.drop_index("ix_waitlist_entries_appointment_id", table_name="waitlist_entries")
    op.drop_index("ix_appointments_starts_at", table_name="appointments")
    op.drop_index("ix_billing_entries_posted_at", table_name="billing_entries")

"""Merge the second set of branches built side by side: keyed audit chain, passkeys, messaging,
records and billing.

Revision ID: e7f8a9b0c1d2
Revises: c4e8a1f27b90, 9c4e2a7b1d35, c9e4a7b2d1f3, 9c4e7a2b5d13, c4d8e2f1a7b3
Create Date: 2026-11-30
"""

revision = "e7f8a9b0c1d2"
down_revision = ("c4e8a1f27b90", "9c4e2a7b1d35", "c9e4a7b2d1f3", "9c4e7a2b5d13", "c4d8e2f1a7b3")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

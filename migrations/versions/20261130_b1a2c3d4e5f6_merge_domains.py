"""Merge the branches built side by side: accounts hardening, notifications, scheduling.

Revision ID: b1a2c3d4e5f6
Revises: a5c7e2d91f04, 3f6b1c2d9a10, 7d3e5a91c2b4
Create Date: 2026-11-30
"""

revision = "b1a2c3d4e5f6"
down_revision = ("a5c7e2d91f04", "3f6b1c2d9a10", "7d3e5a91c2b4")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

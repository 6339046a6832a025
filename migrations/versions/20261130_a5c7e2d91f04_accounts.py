"""accounts: a secret being set up belongs to one session (user_sessions.totp_pending_*; the shared
users.totp_pending_enc goes: pending secrets are short-lived, a set-up in progress starts again);
failure counters escalate across windows and stop at a cap (login_failures.consecutive, locks,
capped_at) and remembered devices count under their own key (email_key links them to the address).

Revision ID: a5c7e2d91f04
Revises: cecd8a2b471a
Create Date: 2026-11-29 22:29:19.945511

"""
from alembic import op
import sqlalchemy as sa

import portal.core.db


# revision identifiers, used by Alembic.
revision = 'a5c7e2d91f04'
down_revision = 'cecd8a2b471a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('consecutive', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('capped_at', portal.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_login_failures_email_key'), ['email_key'], unique=False)

    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_pending_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_at', portal.core.db.UTCDateTime(timezone=True), nullable=True))

    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place; a batch copy of `users` would trip the foreign keys
        # that reference it.
        op.execute("ALTER TABLE users DROP COLUMN totp_pending_enc")
    else:
        op.drop_column('users', 'totp_pending_enc')


def downgrade():
    op.add_column('users', sa.Column('totp_pending_enc', sa.Text(), nullable=True))

    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_column('totp_pending_at')
        batch_op.drop_column('totp_pending_enc')

    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_email_key'))
        batch_op.drop_column('capped_at')
        batch_op.drop_column('locks')
        batch_op.drop_column('consecutive')
        batch_op.drop_column('email_key')


"""passkeys (WebAuthn): the passkeys table, server-side single-use challenges, and on users the
WebAuthn user handle and since when the account has a passkey.

Revision ID: 9c4e2a7b1d35
Revises: b1a2c3d4e5f6
Create Date: 2026-11-30 01:55:00

"""
from alembic import op
import sqlalchemy as sa

import portal.core.db


# revision identifiers, used by Alembic.
revision = '9c4e2a7b1d35'
down_revision = 'b1a2c3d4e5f6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('passkeys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('credential_id', sa.String(length=1400), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sign_count', sa.BigInteger(), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=True),
    sa.Column('transports', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('device_label', sa.String(length=120), nullable=True),
    sa.Column('backup_eligible', sa.Boolean(), nullable=False),
    sa.Column('backed_up', sa.Boolean(), nullable=False),
    sa.Column('last_used_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('clone_suspected_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_passkeys_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_passkeys')),
    sa.UniqueConstraint('credential_id', name=op.f('uq_passkeys_credential_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_passkeys_public_id'))
    )
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passkeys_user_id'), ['user_id'], unique=False)

    op.create_table('webauthn_challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('challenge', sa.String(length=128), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('binding', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_webauthn_challenges_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webauthn_challenges')),
    sa.UniqueConstraint('challenge', name=op.f('uq_webauthn_challenges_challenge'))
    )
    with op.batch_alter_table('webauthn_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webauthn_challenges_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webauthn_challenges_user_id'), ['user_id'], unique=False)

    # Plain ALTER TABLE ADD COLUMN (no batch copy of `users`, whose foreign keys would trip SQLite);
    # the handle's uniqueness is a unique index, which SQLite can add in place.
    op.add_column('users', sa.Column('webauthn_user_id', sa.String(length=100), nullable=True))
    op.add_column('users', sa.Column('passkeys_enabled_at', portal.core.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_users_webauthn_user_id'), 'users', ['webauthn_user_id'], unique=True)


def downgrade():
    op.drop_index(op.f('ix_users_webauthn_user_id'), table_name='users')
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN passkeys_enabled_at")
        op.execute("ALTER TABLE users DROP COLUMN webauthn_user_id")
    else:
        op.drop_column('users', 'passkeys_enabled_at')
        op.drop_column('users', 'webauthn_user_id')
    with op.batch_alter_table('webauthn_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webauthn_challenges_user_id'))
        batch_op.drop_index(batch_op.f('ix_webauthn_challenges_expires_at'))
    op.drop_table('webauthn_challenges')
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passkeys_user_id'))
    op.drop_table('passkeys')

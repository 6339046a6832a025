"""notifications: per-patient contact settings (channel per kind, confirmed mobile number, consent),
one row per notice and channel (status, attempts, provider id) with its attachments, phone verification
codes (hashed), numbers that replied STOP, and texts patients sent us (unique per Twilio MessageSid).

Revision ID: 3f6b1c2d9a10
Revises: cecd8a2b471a
Create Date: 2026-11-29 22:32:31.875530

"""
from alembic import op
import sqlalchemy as sa

import portal.core.db


# revision identifiers, used by Alembic.
revision = '3f6b1c2d9a10'
down_revision = 'cecd8a2b471a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sms_opt_outs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('keyword', sa.String(length=32), nullable=False),
    sa.Column('opted_out_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_opt_outs')),
    sa.UniqueConstraint('phone_e164', name=op.f('uq_sms_opt_outs_phone_e164'))
    )
    op.create_table('inbound_texts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_sid', sa.String(length=64), nullable=False),
    sa.Column('from_phone', sa.String(length=32), nullable=False),
    sa.Column('to_phone', sa.String(length=32), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('received_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('handled_by', sa.String(length=64), nullable=True),
    sa.Column('routed_to', sa.String(length=64), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('resolved_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_inbound_texts_patient_id_patients')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_inbound_texts_resolved_by_id_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_inbound_texts_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_texts')),
    sa.UniqueConstraint('message_sid', name=op.f('uq_inbound_texts_message_sid')),
    sa.UniqueConstraint('public_id', name=op.f('uq_inbound_texts_public_id'))
    )
    with op.batch_alter_table('inbound_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_texts_from_phone'), ['from_phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_texts_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_inbound_texts_status_received', ['status', 'received_at'], unique=False)

    op.create_table('notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('link', sa.String(length=1000), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_notices_patient_id_patients')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notices_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sa.UniqueConstraint('public_id', name=op.f('uq_notices_public_id'))
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_patient_created', ['patient_id', 'created_at'], unique=False)
        batch_op.create_index('ix_notices_status_next_attempt', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_user_id'), ['user_id'], unique=False)

    op.create_table('notification_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('choices', sa.JSON(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=True),
    sa.Column('phone_verified_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sms_consent_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_notification_settings_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_settings')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_notification_settings_patient_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_notification_settings_public_id'))
    )
    with op.batch_alter_table('notification_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_settings_phone_e164'), ['phone_e164'], unique=False)

    op.create_table('phone_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('phone_e164', sa.String(length=20), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('consent_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_phone_verifications_patient_id_patients')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_phone_verifications_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_verifications'))
    )
    with op.batch_alter_table('phone_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phone_verifications_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_phone_verifications_phone_e164'), ['phone_e164'], unique=False)

    op.create_table('notice_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('mime', sa.String(length=100), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_notice_attachments_notice_id_notices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notice_attachments'))
    )
    with op.batch_alter_table('notice_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notice_attachments_notice_id'), ['notice_id'], unique=False)



def downgrade():
    with op.batch_alter_table('notice_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notice_attachments_notice_id'))

    op.drop_table('notice_attachments')
    with op.batch_alter_table('phone_verifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phone_verifications_phone_e164'))
        batch_op.drop_index(batch_op.f('ix_phone_verifications_patient_id'))

    op.drop_table('phone_verifications')
    with op.batch_alter_table('notification_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_settings_phone_e164'))

    op.drop_table('notification_settings')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notices_user_id'))
        batch_op.drop_index('ix_notices_status_next_attempt')
        batch_op.drop_index('ix_notices_patient_created')

    op.drop_table('notices')
    with op.batch_alter_table('inbound_texts', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_texts_status_received')
        batch_op.drop_index(batch_op.f('ix_inbound_texts_patient_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_texts_from_phone'))

    op.drop_table('inbound_texts')
    op.drop_table('sms_opt_outs')

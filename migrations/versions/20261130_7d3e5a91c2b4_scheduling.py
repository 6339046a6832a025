"""scheduling: locations, providers, visit types, weekly availability and exceptions; appointments
with their slot claims (unique provider + 15-minute cell: no double booking), reminders, one-click link
uses, requests, the waitlist and its offers, eCheck-in with insurance-card images, visit feedback.

Revision ID: 7d3e5a91c2b4
Revises: cecd8a2b471a
Create Date: 2026-11-29 22:34:48.084114

"""
from alembic import op
import sqlalchemy as sa

import portal.core.db


# revision identifiers, used by Alembic.
revision = '7d3e5a91c2b4'
down_revision = 'cecd8a2b471a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sched_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_locations')),
    sa.UniqueConstraint('public_id', name=op.f('uq_sched_locations_public_id'))
    )
    op.create_table('sched_visit_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('name_es', sa.String(length=120), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('description_es', sa.String(length=500), nullable=True),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('booking', sa.String(length=16), nullable=False),
    sa.Column('min_lead_minutes', sa.Integer(), nullable=False),
    sa.Column('max_ahead_days', sa.Integer(), nullable=False),
    sa.Column('cancel_cutoff_hours', sa.Integer(), nullable=False),
    sa.Column('questionnaire', sa.String(length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_visit_types')),
    sa.UniqueConstraint('public_id', name=op.f('uq_sched_visit_types_public_id'))
    )
    op.create_table('sched_providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('display_name', sa.String(length=120), nullable=False),
    sa.Column('credentials', sa.String(length=40), nullable=True),
    sa.Column('speciality', sa.String(length=120), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sched_providers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_providers')),
    sa.UniqueConstraint('public_id', name=op.f('uq_sched_providers_public_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_sched_providers_user_id'))
    )
    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('visit_type_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('booking_key', sa.String(length=64), nullable=True),
    sa.Column('booked_by_id', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('cancel_note', sa.String(length=300), nullable=True),
    sa.Column('arrived_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('no_show_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rescheduled_from_id', sa.Integer(), nullable=True),
    sa.Column('video_room', sa.String(length=40), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booked_by_id'], ['users.id'], name=op.f('fk_appointments_booked_by_id_users')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['users.id'], name=op.f('fk_appointments_cancelled_by_id_users')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_appointments_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointments_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_appointments_provider_id_sched_providers')),
    sa.ForeignKeyConstraint(['rescheduled_from_id'], ['appointments.id'], name=op.f('fk_appointments_rescheduled_from_id_appointments')),
    sa.ForeignKeyConstraint(['visit_type_id'], ['sched_visit_types.id'], name=op.f('fk_appointments_visit_type_id_sched_visit_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('booking_key', name=op.f('uq_appointments_booking_key')),
    sa.UniqueConstraint('public_id', name=op.f('uq_appointments_public_id'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointments_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_appointments_patient_starts', ['patient_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_appointments_provider_starts', ['provider_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_appointments_status_starts', ['status', 'starts_at'], unique=False)

    op.create_table('sched_availability',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_sched_availability_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_sched_availability_provider_id_sched_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_availability')),
    sa.UniqueConstraint('public_id', name=op.f('uq_sched_availability_public_id'))
    )
    with op.batch_alter_table('sched_availability', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sched_availability_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sched_availability_provider_id'), ['provider_id'], unique=False)

    op.create_table('sched_exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('starts_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=120), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_sched_exceptions_created_by_id_users')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_sched_exceptions_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_sched_exceptions_provider_id_sched_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_exceptions')),
    sa.UniqueConstraint('public_id', name=op.f('uq_sched_exceptions_public_id'))
    )
    with op.batch_alter_table('sched_exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sched_exceptions_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sched_exceptions_starts_at'), ['starts_at'], unique=False)

    op.create_table('sched_provider_visit_types',
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('visit_type_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_sched_provider_visit_types_provider_id_sched_providers')),
    sa.ForeignKeyConstraint(['visit_type_id'], ['sched_visit_types.id'], name=op.f('fk_sched_provider_visit_types_visit_type_id_sched_visit_types')),
    sa.PrimaryKeyConstraint('provider_id', 'visit_type_id', name=op.f('pk_sched_provider_visit_types'))
    )
    op.create_table('appointment_checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('address_line', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('state', sa.String(length=50), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('contact_changed', sa.Boolean(), nullable=False),
    sa.Column('contact_done_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('no_insurance', sa.Boolean(), nullable=False),
    sa.Column('insurance_payer', sa.String(length=120), nullable=True),
    sa.Column('insurance_member_id', sa.String(length=64), nullable=True),
    sa.Column('insurance_group', sa.String(length=64), nullable=True),
    sa.Column('insurance_done_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('meds_current', sa.Boolean(), nullable=True),
    sa.Column('meds_changes', sa.Text(), nullable=True),
    sa.Column('meds_done_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('questionnaire_key', sa.String(length=32), nullable=True),
    sa.Column('answers_json', sa.Text(), nullable=True),
    sa.Column('questionnaire_saved_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('questionnaire_done_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_checkins_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointment_checkins_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_checkins')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_appointment_checkins_appointment_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_appointment_checkins_public_id'))
    )
    with op.batch_alter_table('appointment_checkins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_checkins_patient_id'), ['patient_id'], unique=False)

    op.create_table('appointment_link_uses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('jti', sa.String(length=32), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=12), nullable=False),
    sa.Column('used_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_link_uses_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_link_uses')),
    sa.UniqueConstraint('jti', name=op.f('uq_appointment_link_uses_jti'))
    )
    with op.batch_alter_table('appointment_link_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_link_uses_appointment_id'), ['appointment_id'], unique=False)

    op.create_table('appointment_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('offset_minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_reminders_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_reminders')),
    sa.UniqueConstraint('appointment_id', 'offset_minutes', name=op.f('uq_appointment_reminders_appointment_id'))
    )
    op.create_table('appointment_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_type_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('preferred_times', sa.String(length=100), nullable=True),
    sa.Column('preferences_note', sa.String(length=300), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('handled_by_id', sa.Integer(), nullable=True),
    sa.Column('handled_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('staff_note', sa.String(length=300), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_requests_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'], name=op.f('fk_appointment_requests_handled_by_id_users')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_appointment_requests_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointment_requests_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_appointment_requests_provider_id_sched_providers')),
    sa.ForeignKeyConstraint(['visit_type_id'], ['sched_visit_types.id'], name=op.f('fk_appointment_requests_visit_type_id_sched_visit_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_requests')),
    sa.UniqueConstraint('public_id', name=op.f('uq_appointment_requests_public_id'))
    )
    with op.batch_alter_table('appointment_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_requests_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_appointment_requests_status_created', ['status', 'created_at'], unique=False)

    op.create_table('sched_slot_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('hold_key', sa.String(length=64), nullable=True),
    sa.Column('held_by_patient_id', sa.Integer(), nullable=True),
    sa.Column('hold_expires_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_sched_slot_claims_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['held_by_patient_id'], ['patients.id'], name=op.f('fk_sched_slot_claims_held_by_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_sched_slot_claims_provider_id_sched_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_slot_claims')),
    sa.UniqueConstraint('provider_id', 'starts_at', name=op.f('uq_sched_slot_claims_provider_id'))
    )
    with op.batch_alter_table('sched_slot_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sched_slot_claims_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sched_slot_claims_held_by_patient_id'), ['held_by_patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sched_slot_claims_hold_key'), ['hold_key'], unique=False)

    op.create_table('visit_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.String(length=1000), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_visit_feedback_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_visit_feedback_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_visit_feedback_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_visit_feedback_provider_id_sched_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_feedback')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_visit_feedback_appointment_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_visit_feedback_public_id'))
    )
    with op.batch_alter_table('visit_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_feedback_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_visit_feedback_provider_created', ['provider_id', 'created_at'], unique=False)

    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_type_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('not_after', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('closed_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_entries_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_waitlist_entries_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_entries_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_waitlist_entries_provider_id_sched_providers')),
    sa.ForeignKeyConstraint(['visit_type_id'], ['sched_visit_types.id'], name=op.f('fk_waitlist_entries_visit_type_id_sched_visit_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries')),
    sa.UniqueConstraint('public_id', name=op.f('uq_waitlist_entries_public_id'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_entries_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_waitlist_entries_type_status', ['visit_type_id', 'status', 'created_at'], unique=False)

    op.create_table('insurance_card_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkin_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkin_id'], ['appointment_checkins.id'], name=op.f('fk_insurance_card_images_checkin_id_appointment_checkins')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_insurance_card_images_patient_id_patients')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_insurance_card_images_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurance_card_images')),
    sa.UniqueConstraint('public_id', name=op.f('uq_insurance_card_images_public_id')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_insurance_card_images_stored_name'))
    )
    with op.batch_alter_table('insurance_card_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_insurance_card_images_checkin_id'), ['checkin_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_insurance_card_images_patient_id'), ['patient_id'], unique=False)

    op.create_table('waitlist_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('visit_type_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('responded_at', portal.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', portal.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_offers_appointment_id_appointments')),
    sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'], name=op.f('fk_waitlist_offers_entry_id_waitlist_entries')),
    sa.ForeignKeyConstraint(['location_id'], ['sched_locations.id'], name=op.f('fk_waitlist_offers_location_id_sched_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_offers_patient_id_patients')),
    sa.ForeignKeyConstraint(['provider_id'], ['sched_providers.id'], name=op.f('fk_waitlist_offers_provider_id_sched_providers')),
    sa.ForeignKeyConstraint(['visit_type_id'], ['sched_visit_types.id'], name=op.f('fk_waitlist_offers_visit_type_id_sched_visit_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers')),
    sa.UniqueConstraint('entry_id', 'provider_id', 'starts_at', name=op.f('uq_waitlist_offers_entry_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_waitlist_offers_public_id'))
    )
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_offers_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_waitlist_offers_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_waitlist_offers_status_expires', ['status', 'expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_offers_status_expires')
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_patient_id'))
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_entry_id'))

    op.drop_table('waitlist_offers')
    with op.batch_alter_table('insurance_card_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_insurance_card_images_patient_id'))
        batch_op.drop_index(batch_op.f('ix_insurance_card_images_checkin_id'))

    op.drop_table('insurance_card_images')
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_entries_type_status')
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_patient_id'))

    op.drop_table('waitlist_entries')
    with op.batch_alter_table('visit_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_feedback_provider_created')
        batch_op.drop_index(batch_op.f('ix_visit_feedback_patient_id'))

    op.drop_table('visit_feedback')
    with op.batch_alter_table('sched_slot_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sched_slot_claims_hold_key'))
        batch_op.drop_index(batch_op.f('ix_sched_slot_claims_held_by_patient_id'))
        batch_op.drop_index(batch_op.f('ix_sched_slot_claims_appointment_id'))

    op.drop_table('sched_slot_claims')
    with op.batch_alter_table('appointment_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_appointment_requests_status_created')
        batch_op.drop_index(batch_op.f('ix_appointment_requests_patient_id'))

    op.drop_table('appointment_requests')
    op.drop_table('appointment_reminders')
    with op.batch_alter_table('appointment_link_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointment_link_uses_appointment_id'))

    op.drop_table('appointment_link_uses')
    with op.batch_alter_table('appointment_checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appointment_checkins_patient_id'))

    op.drop_table('appointment_checkins')
    op.drop_table('sched_provider_visit_types')
    with op.batch_alter_table('sched_exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sched_exceptions_starts_at'))
        batch_op.drop_index(batch_op.f('ix_sched_exceptions_provider_id'))

    op.drop_table('sched_exceptions')
    with op.batch_alter_table('sched_availability', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sched_availability_provider_id'))
        batch_op.drop_index(batch_op.f('ix_sched_availability_location_id'))

    op.drop_table('sched_availability')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_status_starts')
        batch_op.drop_index('ix_appointments_provider_starts')
        batch_op.drop_index('ix_appointments_patient_starts')
        batch_op.drop_index(batch_op.f('ix_appointments_patient_id'))

    op.drop_table('appointments')
    op.drop_table('sched_providers')
    op.drop_table('sched_visit_types')
    op.drop_table('sched_locations')

"""Demo data: how the demo patients are reached, a history of notices (one that failed), a number that
replied BAJA, and texts waiting for support. Idempotent: `make run` twice changes nothing."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from portal.core.db import utcnow
from portal.core.web import external_url
from portal.extensions import db
from portal.notifications.models import (
    FAILED,
    HANDLED,
    SENT,
    UNHANDLED,
    InboundText,
    Notice,
    NotificationSettings,
    SmsOptOut,
)

ORDER = 90  # after the domains whose pages the notices link to

GLADYS_PHONE = "+13125550123"
YVONE_PHONE = "+13125550188"
UNKNOWN_PHONE = "+13125550142"


def _settings(patient, phone, verified_days_ago, choices):
    row = db.session.execute(select(NotificationSettings)
                             .where(NotificationSettings.patient_id == patient.id)).scalars().first()
    if row is not None:
        return row
    when = utcnow() - timedelta(days=verified_days_ago)
    row = NotificationSettings(patient_id=patient.id, choices=choices, phone_e164=phone, phone_verified_at=when,
                               sms_consent_at=when - timedelta(minutes=2), updated_at=when, created_at=when)
    db.session.add(row)
    return row


def _history(patient, user, phone):
    if db.session.execute(select(Notice.id).where(Notice.patient_id == patient.id)).first() is not None:
        return
    now = utcnow()
    home = external_url("main.dashboard")
    rows = [
        ("new_result", "email", user.email, 6, SENT, 1, None),
        ("appointment_confirmation", "email", user.email, 5, SENT, 1, None),
        ("appointment_confirmation", "sms", phone, 5, SENT, 1, None),
        ("statement_ready", "email", user.email, 3, FAILED, 8, "SMTP 451"),
        ("appointment_reminder", "sms", phone, 1, SENT, 2, None),
    ]
    for kind, channel, to, days, status, attempts, error in rows:
        at = now - timedelta(days=days, hours=2)
        db.session.add(Notice(
            patient_id=patient.id, user_id=user.id, kind=kind, channel=channel, to_address=to,
            language=user.preferred_language or "en", link=home, context={}, status=status, attempts=attempts,
            next_attempt_at=at, claimed_at=at, created_at=at, sent_at=at if status == SENT else None,
            failed_at=at + timedelta(hours=2) if status == FAILED else None, last_error=error,
            provider_id=f"demo-{kind}-{channel}" if status == SENT else None))


def _inbound(sid, phone, body, hours_ago, patient=None, user=None, status=UNHANDLED, handled_by=None, reply=None):
    if db.session.execute(select(InboundText.id).where(InboundText.message_sid == sid)).first() is not None:
        return
    db.session.add(InboundText(
        message_sid=sid, from_phone=phone, to_phone=current_app.config.get("TWILIO_FROM_NUMBER"), body=body,
        received_at=utcnow() - timedelta(hours=hours_ago), patient_id=patient.id if patient else None,
        user_id=user.id if user else None, status=status, handled_by=handled_by, reply=reply,
        routed_to="support_queue" if status == UNHANDLED else None))


def seed(ctx) -> None:
    gladys_user, yvone_user = ctx.user("gladys@patient.example"), ctx.user("yvone@patient.example")
    gladys, yvone = ctx.patient_of("gladys@patient.example"), ctx.patient_of("yvone@patient.example")
    _settings(gladys, GLADYS_PHONE, 20, {
        "new_result": "email", "appointment_confirmation": "both", "appointment_reminder": "sms",
        "appointment_change": "sms", "message_reply": "both", "statement_ready": "email",
        "payment_receipt": "email"})
    _settings(yvone, YVONE_PHONE, 40, {"appointment_reminder": "sms", "message_reply": "email"})
    db.session.flush()
    _history(gladys, gladys_user, GLADYS_PHONE)
    if db.session.execute(select(SmsOptOut.id).where(SmsOptOut.phone_e164 == YVONE_PHONE)).first() is None:
        db.session.add(SmsOptOut(phone_e164=YVONE_PHONE, keyword="BAJA", opted_out_at=utcnow() - timedelta(days=9)))
    _inbound("SMdemo00000000000000000000000001", YVONE_PHONE, "BAJA", 9 * 24, yvone, yvone_user, HANDLED, "stop",
             "Riverside Family Clinic: ya no le enviaremos textos. Responda START para recibirlos de nuevo.")
    _inbound("SMdemo00000000000000000000000002", UNKNOWN_PHONE, "Hi, is this the clinic? I have a new phone number.",
             26)
    _inbound("SMdemo00000000000000000000000003", GLADYS_PHONE,
             "Can I bring my daughter with me to the appointment?", 3, gladys, gladys_user)
    sms_dir = current_app.config.get("SMS_FILE_DIR")
    if current_app.config.get("SMS_BACKEND") == "file":
        ctx.notes.append(f"Texts (SMS) are written to {sms_dir}/*.txt (SMS_BACKEND=file); see the README for Twilio.")
        ctx.notes.append(f"  Gladys gets texts at {GLADYS_PHONE}. Pretend she replies: FLASK_APP=wsgi.py "
                         f".venv/bin/flask notices receive-text {GLADYS_PHONE} HELP")

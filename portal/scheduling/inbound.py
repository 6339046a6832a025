"""Two-way texts: a patient answers a text reminder with "C" (confirm) or "R" (reschedule).

The notifications domain routes inbound texts to registered handlers
(`portal/notifications/inbound.py: register(name, handler, order=100)`); this module registers
`handle_text` there when it is imported (portal/scheduling/routes.py imports it).

`handle_text(ctx)` gets ctx.patient, ctx.user, ctx.phone, ctx.text, ctx.keyword (upper-cased,
stripped), ctx.received_at and returns the reply text, or None when the text is not for it. Replies
carry no health information: no visit type, no provider, no clinic department.
"""

from __future__ import annotations

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal.core.audit import record_event
from portal.core.db import utcnow
from portal.core.web import external_url
from portal.extensions import db
from portal.notifications import inbound as inbound_texts
from portal.scheduling import rules
from portal.scheduling.events import SchedTag
from portal.scheduling.models import Appointment

CONFIRM = {"C", "CONFIRM", "YES", "Y", "SI", "SÍ"}
RESCHEDULE = {"R", "RESCHEDULE", "CAMBIAR"}


def _next_appointment(patient, *, unconfirmed: bool):
    stmt = select(Appointment).where(Appointment.patient_id == patient.id, Appointment.status == rules.BOOKED,
                                     Appointment.starts_at > (utcnow()))
    if unconfirmed:
        stmt = stmt.where(Appointment.confirmed_at.is_(None))
    return db.session.execute(stmt.order_by(Appointment.starts_at).limit(1)).scalars().first()


def handle_text(ctx) -> str | None:
    keyword = (getattr(ctx, "keyword", None) or "").strip().upper()
    if keyword not in CONFIRM | RESCHEDULE or getattr(ctx, "patient", None) is None:
        return None
    user = getattr(ctx, "user", None)
    lang = getattr(user, "preferred_language", None) or getattr(ctx.patient, "preferred_language", None) or "en"
    from flask import current_app

    phone = current_app.config["CLINIC_PHONE"]
    with force_locale(lang):
        if keyword in CONFIRM:
            appointment = _next_appointment(ctx.patient, unconfirmed=True)
            if appointment is None:
                if _next_appointment(ctx.patient, unconfirmed=False) is not None:
                    return _("Your next appointment is already confirmed. Thank you!")
                return _("We found no upcoming appointment to confirm. Questions? Call %(phone)s.", phone=phone)
            from portal.scheduling.services import confirm_attendance

            confirm_attendance(user, appointment, via="text")
            record_event(SchedTag.TEXT_REPLY, actor=user, patient_id=appointment.patient_id,
                         category="appointments", object_type="appointment", object_id=appointment.public_id,
                         detail={"keyword": "C"})
            return _("Thank you, your appointment is confirmed. Reply R for a link to change it.")
        appointment = _next_appointment(ctx.patient, unconfirmed=False)
        if appointment is None:
            return _("We found no upcoming appointment. To book one, sign in: %(link)s",
                     link=external_url("appointments.book"))
        record_event(SchedTag.TEXT_REPLY, actor=user, patient_id=appointment.patient_id, category="appointments",
                     object_type="appointment", object_id=appointment.public_id, detail={"keyword": "R"})
        return _("To choose a new time, sign in here: %(link)s",
                 link=external_url("appointments.book", reschedule=appointment.public_id))


inbound_texts.register("scheduling.reply", handle_text, order=50)

"""Reminders from database state: a beat task sweeps booked appointments and sends, for each, the
reminder due now (SCHEDULING_REMINDER_OFFSETS, default 72 h and 24 h before).

Never twice: the (appointment, offset) row is inserted in the same transaction that queues the notice,
and its unique constraint refuses a second sweep (or a second worker) doing the same. Never lost: the
sweep reads what is due from the appointments themselves, so after downtime the next sweep catches up
(sending the one reminder nearest the visit, never a burst of stale ones). Each reminder carries a
signed link to a page where the patient confirms or cancels without signing in, and one-click confirm
and cancel links for notices that show them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from portal.core.audit import record_event
from portal.core.db import utcnow
from portal.core.web import external_url
from portal.extensions import db
from portal.notifications.kinds import NoticeKind
from portal.notifications.services import notify
from portal.scheduling import links, rules
from portal.scheduling.events import SchedTag
from portal.scheduling.models import Appointment, Reminder
from portal.scheduling.settings import setting


def offsets() -> tuple[int, ...]:
    return rules.parse_offsets(str(setting("SCHEDULING_REMINDER_OFFSETS")))


def due_ids(now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Booked appointments inside the largest reminder window that may still owe a reminder."""
    now = now or utcnow()
    horizon = now + timedelta(minutes=max(offsets()))
    stmt = (select(Appointment.id).where(Appointment.status == rules.BOOKED, Appointment.starts_at > now,
                                         Appointment.starts_at <= horizon)
            .order_by(Appointment.starts_at).limit(limit))
    return list(db.session.execute(stmt).scalars())


def process(appointment_id: int, now: datetime | None = None) -> int | None:
    """Send (or skip) what is due for one appointment; returns the offset sent, if any. Flushes: an
    IntegrityError means another sweep got there first (the caller rolls back and moves on)."""
    now = now or utcnow()
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.status != rules.BOOKED:
        return None
    done = set(db.session.execute(select(Reminder.offset_minutes).where(
        Reminder.appointment_id == appointment.id)).scalars())
    plan = rules.reminder_plan(appointment.starts_at, appointment.created_at or now, offsets(), done, now)
    for offset in plan.skip:
        db.session.add(Reminder(appointment_id=appointment.id, offset_minutes=offset, status="skipped"))
    if plan.send is None:
        db.session.flush()
        return None
    db.session.add(Reminder(appointment_id=appointment.id, offset_minutes=plan.send, status="sent"))
    db.session.flush()  # the claim: a second sweep fails here, before anything is queued
    send_reminder(appointment)
    record_event(SchedTag.REMINDER_SENT, actor=None, patient_id=appointment.patient_id, category="appointments",
                 object_type="appointment", object_id=appointment.public_id, detail={"offset": plan.send})
    return plan.send


def send_reminder(appointment: Appointment) -> bool:
    """The notice: no PHI; a signed page to confirm or cancel, and one-click links for each."""
    # One signed link: its page (no PHI, no sign-in) offers confirm and cancel, each a POST, once.
    # A text reminder also says "Reply C to confirm or R to reschedule" (scheduling/inbound.py).
    return notify(appointment.patient, NoticeKind.APPOINTMENT_REMINDER,
                  link=external_url("appointments.link", token=links.make(appointment, "any")),
                  context={"starts_at": appointment.starts_at, "confirm_by_text": True})


# --- the signed links' page -------------------------------------------------------------------------

def link_state(token: str | None) -> dict:
    """What a signed link allows now (no state change): {"ok", "action", "appointment"}."""
    data = links.read(token)
    if data is None:
        return {"ok": False, "reason": "invalid"}
    appointment = db.session.execute(select(Appointment).where(
        Appointment.public_id == data["a"])).scalars().first()
    from portal.scheduling.models import LinkUse

    used = db.session.execute(select(LinkUse.id).where(LinkUse.jti == data["j"])).first() is not None
    if appointment is None:
        return {"ok": False, "reason": "invalid"}
    if used:
        return {"ok": False, "reason": "used", "appointment": appointment}
    if appointment.status != rules.BOOKED or appointment.starts_at <= utcnow():
        return {"ok": False, "reason": "closed", "appointment": appointment}
    can_cancel = rules.can_change(appointment.starts_at, utcnow(), appointment.visit_type.cancel_cutoff_hours)
    return {"ok": True, "action": data["x"], "appointment": appointment, "jti": data["j"],
            "can_cancel": can_cancel, "confirmed": appointment.confirmed_at is not None}


def use_link(token: str | None, action: str) -> str:
    """Apply a signed link's action ("confirm" or "cancel"); returns the action done. The link is
    spent (a unique row), so a second use, even at the same moment, is refused."""
    from flask_babel import gettext as _
    from sqlalchemy.exc import IntegrityError

    from portal.core.errors import DomainError
    from portal.scheduling import services
    from portal.scheduling.models import LinkUse

    state = link_state(token)
    if not state["ok"] or action not in ("confirm", "cancel") or state["action"] not in (action, "any"):
        record_event(SchedTag.LINK_REFUSED, actor=None, outcome="refused", object_type="appointment_link",
                     detail={"reason": state.get("reason", "action")})
        raise DomainError(_("This link has expired or has already been used. Sign in to see your appointments."))
    appointment = state["appointment"]
    try:
        with db.session.begin_nested():
            db.session.add(LinkUse(jti=state["jti"], appointment_id=appointment.id, action=action))
            db.session.flush()
    except IntegrityError:
        raise DomainError(_("This link has expired or has already been used. Sign in to see your appointments.")) \
            from None
    if action == "confirm":
        services.confirm_attendance(None, appointment, via="link")
    else:
        services.cancel(None, appointment, via="link")
    record_event(SchedTag.LINK_USED, actor=None, patient_id=appointment.patient_id, category="appointments",
                 object_type="appointment", object_id=appointment.public_id, detail={"action": action})
    return action

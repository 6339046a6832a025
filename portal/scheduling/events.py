"""The scheduling domain's audit tags (actions) and data categories, with plain-language labels.
Views of a patient's appointments, check-in or insurance card use core's PATIENT_VIEW tag with these
categories, so the patient's "who viewed my record" says "Viewed: Appointments" in plain words."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l

from portal.core.audit import register_categories, register_tags


class SchedTag(str, enum.Enum):
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_HELD = "appointment.held"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    APPOINTMENT_RESCHEDULED = "appointment.rescheduled"
    APPOINTMENT_CONFIRMED = "appointment.confirmed"
    APPOINTMENT_SLOT_TAKEN = "appointment.slot_taken"
    APPOINTMENT_STATUS = "appointment.status"
    APPOINTMENT_JOINED = "appointment.video_joined"
    APPOINTMENT_ICS = "appointment.calendar_downloaded"
    REMINDER_SENT = "appointment.reminder_sent"
    LINK_USED = "appointment.link_used"
    LINK_REFUSED = "appointment.link_refused"
    TEXT_REPLY = "appointment.text_reply"
    REQUEST_CREATED = "appointment.request_created"
    REQUEST_HANDLED = "appointment.request_handled"
    WAITLIST_JOINED = "waitlist.joined"
    WAITLIST_LEFT = "waitlist.left"
    WAITLIST_OFFERED = "waitlist.offered"
    WAITLIST_ACCEPTED = "waitlist.accepted"
    WAITLIST_DECLINED = "waitlist.declined"
    CHECKIN_STEP = "checkin.step_saved"
    CHECKIN_CARD_UPLOADED = "checkin.card_uploaded"
    FEEDBACK_GIVEN = "feedback.given"
    FEEDBACK_VIEW = "feedback.view"
    SCHEDULE_VIEW = "schedule.view"
    SETUP_CHANGED = "scheduling.setup_changed"


register_tags({
    SchedTag.APPOINTMENT_BOOKED: _l("Booked an appointment"),
    SchedTag.APPOINTMENT_HELD: _l("Held a time while booking"),
    SchedTag.APPOINTMENT_CANCELLED: _l("Cancelled an appointment"),
    SchedTag.APPOINTMENT_RESCHEDULED: _l("Moved an appointment"),
    SchedTag.APPOINTMENT_CONFIRMED: _l("Confirmed attendance"),
    SchedTag.APPOINTMENT_SLOT_TAKEN: _l("Tried to book a time just taken"),
    SchedTag.APPOINTMENT_STATUS: _l("Marked arrival, no-show or completion"),
    SchedTag.APPOINTMENT_JOINED: _l("Joined a video visit"),
    SchedTag.APPOINTMENT_ICS: _l("Downloaded an appointment to a calendar"),
    SchedTag.REMINDER_SENT: _l("Appointment reminder sent"),
    SchedTag.LINK_USED: _l("Used a one-click appointment link"),
    SchedTag.LINK_REFUSED: _l("Refused a one-click appointment link"),
    SchedTag.TEXT_REPLY: _l("Answered a text reminder"),
    SchedTag.REQUEST_CREATED: _l("Asked for an appointment"),
    SchedTag.REQUEST_HANDLED: _l("Handled an appointment request"),
    SchedTag.WAITLIST_JOINED: _l("Joined the waitlist"),
    SchedTag.WAITLIST_LEFT: _l("Left the waitlist"),
    SchedTag.WAITLIST_OFFERED: _l("Offered an earlier time"),
    SchedTag.WAITLIST_ACCEPTED: _l("Accepted an earlier time"),
    SchedTag.WAITLIST_DECLINED: _l("Declined an earlier time"),
    SchedTag.CHECKIN_STEP: _l("Saved a check-in step"),
    SchedTag.CHECKIN_CARD_UPLOADED: _l("Uploaded an insurance card"),
    SchedTag.FEEDBACK_GIVEN: _l("Gave visit feedback"),
    SchedTag.FEEDBACK_VIEW: _l("Viewed visit feedback"),
    SchedTag.SCHEDULE_VIEW: _l("Viewed the schedule"),
    SchedTag.SETUP_CHANGED: _l("Changed the scheduling set-up"),
})
register_categories({
    "appointments": _l("Appointments"),
    "checkin": _l("Check-in details (contact, insurance, medicines, questionnaire)"),
    "insurance": _l("Insurance card"),
    "feedback": _l("Visit feedback"),
})

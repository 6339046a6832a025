"""The kinds of notice a patient can receive. Domains name a kind; only this domain picks channels."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l


class NoticeKind(str, enum.Enum):
    NEW_RESULT = "new_result"
    APPOINTMENT_CONFIRMATION = "appointment_confirmation"
    APPOINTMENT_REMINDER = "appointment_reminder"
    APPOINTMENT_CHANGE = "appointment_change"
    MESSAGE_REPLY = "message_reply"
    STATEMENT_READY = "statement_ready"
    PAYMENT_RECEIPT = "payment_receipt"
    SECURITY = "security"  # always by email, cannot be turned off

    def __str__(self) -> str:
        return self.value

    @property
    def label(self):
        return _LABELS[self]


_LABELS = {
    NoticeKind.NEW_RESULT: _l("New test results"),
    NoticeKind.APPOINTMENT_CONFIRMATION: _l("Appointment confirmations"),
    NoticeKind.APPOINTMENT_REMINDER: _l("Appointment reminders"),
    NoticeKind.APPOINTMENT_CHANGE: _l("Appointment changes"),
    NoticeKind.MESSAGE_REPLY: _l("Replies to your messages"),
    NoticeKind.STATEMENT_READY: _l("New statements"),
    NoticeKind.PAYMENT_RECEIPT: _l("Payment receipts"),
    NoticeKind.SECURITY: _l("Account security"),
}


# Security notices always go by email and cannot be turned off.
ALWAYS_EMAIL = frozenset({NoticeKind.SECURITY})

# The only `context` values a notice's templates may use (anything else a caller passes is dropped):
#   starts_at        an aware datetime (appointment kinds): shown in the clinic's time zone
#   confirm_by_text  True (appointment kinds): the text says "Reply C to confirm or R to reschedule"
#                    (the scheduling domain registers the inbound handler that acts on the reply)
CONTEXT_KEYS = frozenset({"starts_at", "confirm_by_text"})

"""Audit tags and data categories of the notifications domain (plain-language labels)."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l

from portal.core.audit import register_categories, register_tags


class NoticeEvent(str, enum.Enum):
    PREFERENCES_CHANGED = "notifications.preferences.changed"
    PHONE_CODE_SENT = "notifications.phone.code_sent"
    PHONE_CODE_FAILED = "notifications.phone.code_failed"
    PHONE_VERIFIED = "notifications.phone.verified"
    PHONE_REMOVED = "notifications.phone.removed"
    SMS_OPTED_OUT = "notifications.sms.opted_out"
    SMS_OPTED_IN = "notifications.sms.opted_in"
    INBOUND_QUEUE_VIEW = "notifications.inbound.queue_view"
    INBOUND_RESOLVED = "notifications.inbound.resolved"

    def __str__(self) -> str:
        return self.value


register_tags({
    NoticeEvent.PREFERENCES_CHANGED: _l("Notification choices changed"),
    NoticeEvent.PHONE_CODE_SENT: _l("Code texted to confirm a mobile number"),
    NoticeEvent.PHONE_CODE_FAILED: _l("Wrong code for a mobile number"),
    NoticeEvent.PHONE_VERIFIED: _l("Mobile number confirmed for texts"),
    NoticeEvent.PHONE_REMOVED: _l("Mobile number removed; texts stopped"),
    NoticeEvent.SMS_OPTED_OUT: _l("Texts stopped by a STOP reply"),
    NoticeEvent.SMS_OPTED_IN: _l("Texts restarted by a START reply"),
    NoticeEvent.INBOUND_QUEUE_VIEW: _l("Viewed texts from patients"),
    NoticeEvent.INBOUND_RESOLVED: _l("Marked a patient's text as dealt with"),
})
register_categories({
    "notification_settings": _l("Notification settings"),
    "text_messages": _l("Text messages"),
})

"""The messaging domain's audit tags and data category."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l

from portal.core.audit import register_categories, register_tags

CATEGORY = "messages"


class MsgTag(str, enum.Enum):
    THREAD_OPENED = "messaging.thread.opened"
    THREAD_VIEW = "messaging.thread.view"
    MESSAGE_SENT = "messaging.message.sent"
    REPLY_SENT = "messaging.reply.sent"
    NOTE_ADDED = "messaging.note.added"
    CLAIMED = "messaging.thread.claimed"
    RELEASED = "messaging.thread.released"
    ASSIGNED = "messaging.thread.assigned"
    TRANSFERRED = "messaging.thread.transferred"
    STATUS_CHANGED = "messaging.thread.status"
    RATED = "messaging.thread.rated"
    ATTACHMENT_DOWNLOAD = "messaging.attachment.download"
    INBOX_VIEW = "messaging.inbox.view"
    POOL_CHANGED = "messaging.pool.changed"


register_tags({
    MsgTag.THREAD_OPENED: _l("Started a message conversation"),
    MsgTag.THREAD_VIEW: _l("Read a message conversation"),
    MsgTag.MESSAGE_SENT: _l("Sent a message"),
    MsgTag.REPLY_SENT: _l("Replied to a patient's message"),
    MsgTag.NOTE_ADDED: _l("Added an internal note to a conversation"),
    MsgTag.CLAIMED: _l("Took ownership of a conversation"),
    MsgTag.RELEASED: _l("Released a conversation"),
    MsgTag.ASSIGNED: _l("Assigned a conversation"),
    MsgTag.TRANSFERRED: _l("Moved a conversation to another team"),
    MsgTag.STATUS_CHANGED: _l("Changed a conversation's status"),
    MsgTag.RATED: _l("Rated a conversation"),
    MsgTag.ATTACHMENT_DOWNLOAD: _l("Downloaded a message attachment"),
    MsgTag.INBOX_VIEW: _l("Viewed the shared inbox"),
    MsgTag.POOL_CHANGED: _l("Changed an inbox team"),
})
register_categories({CATEGORY: _l("Messages")})

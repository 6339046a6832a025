"""Messaging forms. Bodies are bounded here and sanitised in the service (sanitize.py); file inputs are
checked by content in attachments.py. Each form that sends carries `client_key`, a random value
rendered with the page, so a double submit adds one message."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, HiddenField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.core.forms import PortalForm
from portal.core.i18n import LANGUAGE_NAMES
from portal.messaging.models import TOPICS
from portal.messaging.services import MAX_BODY, MAX_SUBJECT

TOPIC_LABELS = {
    "medical": _l("A medical question"),
    "refill": _l("A prescription refill"),
    "billing": _l("A billing question"),
    "appointment": _l("Scheduling an appointment"),
    "technical": _l("Help with the portal"),
    "records": _l("A records request"),
    "other": _l("Something else"),
}
ATTACH_HINT = _l("Optional: up to 3 files (PDF, JPEG, PNG or HEIC), each at most 10 MB.")


class ComposeForm(PortalForm):
    topic = RadioField(_l("What is your message about?"), choices=[(t, TOPIC_LABELS[t]) for t in TOPICS],
                       validators=[DataRequired(message=_l("Choose what your message is about."))])
    pool = SelectField(_l("Care team (for medical questions and refills)"), choices=[], validate_choice=False,
                       validators=[Optional(), Length(max=32)])
    subject = StringField(_l("Subject"), validators=[DataRequired(message=_l("Give your message a subject.")),
                                                     Length(max=MAX_SUBJECT)])
    body = TextAreaField(_l("Your message"), validators=[DataRequired(message=_l("Write your message.")),
                                                         Length(max=MAX_BODY)])
    attachments = MultipleFileField(_l("Attach files"))
    ref = HiddenField(validators=[Length(max=100)])
    client_key = HiddenField(validators=[Length(max=40)])


class ReplyForm(PortalForm):
    body = TextAreaField(_l("Your reply"), validators=[DataRequired(message=_l("Write your message.")),
                                                       Length(max=MAX_BODY)])
    attachments = MultipleFileField(_l("Attach files"))
    client_key = HiddenField(validators=[Length(max=40)])


class RatingForm(PortalForm):
    rating = RadioField(_l("How well did we answer?"), coerce=int,
                        choices=[(5, _l("5 – excellent")), (4, _l("4 – good")), (3, _l("3 – fair")),
                                 (2, _l("2 – poor")), (1, _l("1 – very poor"))],
                        validators=[DataRequired(message=_l("Choose from 1 to 5."))])
    comment = TextAreaField(_l("Comment (optional)"), validators=[Optional(), Length(max=1000)])


class StaffReplyForm(PortalForm):
    body = TextAreaField(_l("Reply or note"), validators=[DataRequired(message=_l("Write your message.")),
                                                         Length(max=MAX_BODY)])
    internal = BooleanField(_l("Internal note (staff only, the patient never sees it)"))
    then = SelectField(_l("After sending"), choices=[("", _l("Keep the conversation open")),
                                                      ("waiting", _l("Mark as waiting on the patient")),
                                                      ("closed", _l("Close the conversation"))],
                       validators=[Optional()])
    attachments = MultipleFileField(_l("Attach files"))
    seen_id = HiddenField(validators=[Optional(), Length(max=20)])
    client_key = HiddenField(validators=[Length(max=40)])


class AssignForm(PortalForm):
    assignee = SelectField(_l("Assign to"), choices=[], validate_choice=False, validators=[DataRequired()])


class TransferForm(PortalForm):
    pool = SelectField(_l("Move to team"), choices=[], validate_choice=False, validators=[DataRequired()])


class StatusForm(PortalForm):
    status = HiddenField(validators=[DataRequired(), Length(max=16)])


class PoolForm(PortalForm):
    name = StringField(_l("Team name"), validators=[DataRequired(), Length(max=120)])
    name_es = StringField(_l("Team name in Spanish"), validators=[Optional(), Length(max=120)])
    kind = SelectField(_l("Kind"), choices=[("care", _l("Care team")), ("billing", _l("Billing")),
                                            ("support", _l("Front office / support"))])
    topics = StringField(_l("Request types (comma separated)"), validators=[Optional(), Length(max=200)],
                         description=", ".join(TOPICS))
    target_hours = IntegerField(_l("Reply target (hours)"), default=24,
                                validators=[DataRequired(), NumberRange(min=1, max=336)])


class MemberForm(PortalForm):
    user = SelectField(_l("Staff member"), choices=[], validate_choice=False, validators=[DataRequired()])


class CannedForm(PortalForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=120)])
    language = SelectField(_l("Language of the reply"), choices=list(LANGUAGE_NAMES.items()), default="en",
                           validate_choice=True)
    body = TextAreaField(_l("Text ({first_name} becomes the patient's first name)"),
                         validators=[DataRequired(), Length(max=MAX_BODY)])

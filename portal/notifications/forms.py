"""Forms of the preferences page (CSRF on each) and the staff queue's button."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
import re

from wtforms import BooleanField, RadioField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from portal.core.forms import PortalForm
from portal.notifications import rules
from portal.notifications.kinds import ALWAYS_EMAIL, NoticeKind

CHOICE_LABELS = [
    (rules.EMAIL, _l("Email")),
    (rules.SMS, _l("Text message")),
    (rules.BOTH, _l("Both")),
    (rules.OFF, _l("Off")),
]


class _ChoicesBase(PortalForm):
    def kind_fields(self):
        return [getattr(self, k.value) for k in NoticeKind if k not in ALWAYS_EMAIL]

    def choices(self) -> dict[str, str]:
        return {f.name: f.data for f in self.kind_fields()}


def _choices_form():
    attrs = {k.value: RadioField(k.label, choices=CHOICE_LABELS, default=rules.DEFAULT_CHOICE,
                                 validators=[DataRequired()])
             for k in NoticeKind if k not in ALWAYS_EMAIL}
    return type("ChoicesForm", (_ChoicesBase,), attrs)


ChoicesForm = _choices_form()


def _only(pattern: str, message):
    """Refuse anything but the allowed characters (control characters included), with a message
    translated when the form is checked."""
    allowed = re.compile(pattern)

    def check(form, field):
        if field.data and not allowed.fullmatch(field.data):
            raise ValidationError(str(message))

    return check


class PhoneForm(PortalForm):
    phone = StringField(_l("Mobile number"), validators=[
        DataRequired(), Length(max=32),
        _only(r"[0-9+().\- ]+", _l("Use digits only (spaces, dashes, brackets and + are fine)."))])
    consent = BooleanField(_l("I agree to get text messages from the clinic at this number. Message and data "
                              "rates may apply. Reply STOP to end, HELP for help."))


class CodeForm(PortalForm):
    code = StringField(_l("6-digit code from the text"), validators=[
        DataRequired(), Length(min=6, max=12), _only(r"[0-9 \-]+", _l("Enter the 6 digits from the text."))])

"""Scheduling forms: booking, requests, waitlist, check-in steps, feedback, staff and set-up forms.
Every text field is bounded and refuses control characters with a field error."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (BooleanField, DateField, HiddenField, IntegerField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField, TimeField)
from wtforms.validators import AnyOf, DataRequired, Email, InputRequired, Length, NumberRange, Optional, \
    ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal.core.forms import PortalForm
from portal.scheduling.models import BOOKING_MODES, EXCEPTION_KINDS
from portal.scheduling.questionnaires import CHOICES as QUESTIONNAIRE_CHOICES

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")


class NoControlChars:
    """Refuse control characters (NUL and friends); `multiline` allows line breaks and tabs."""

    def __init__(self, multiline: bool = False):
        self.pattern = _CONTROL if multiline else _CONTROL_LINE

    def __call__(self, form, field):
        if isinstance(field.data, str) and self.pattern.search(field.data):
            raise ValidationError(_l("Remove the special (control) characters."))


def text(label, max_length, required=False, **kw):
    validators = [DataRequired() if required else Optional(), Length(max=max_length), NoControlChars()]
    return StringField(label, validators=validators, **kw)


def long_text(label, max_length, required=False, **kw):
    validators = [DataRequired() if required else Optional(), Length(max=max_length), NoControlChars(True)]
    return TextAreaField(label, validators=validators, **kw)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# --- booking ----------------------------------------------------------------------------------------

class ReviewForm(PortalForm):
    """The review page: the chosen time (or, after "just taken", one of the next free times), the
    reason for the visit, and the keys that make a double submit harmless."""

    visit_type = HiddenField(validators=[Length(max=32)])
    slot = StringField(_l("Time"), validators=[DataRequired(), Length(max=120), NoControlChars()])
    reschedule = HiddenField(validators=[Length(max=32)])
    hold_key = HiddenField(validators=[Length(max=64)])
    booking_key = HiddenField(validators=[Length(max=64)])
    reason = long_text(_l("Reason for the visit (optional)"), 500)


class StaffBookForm(ReviewForm):
    patient = HiddenField(validators=[DataRequired(), Length(max=32)])
    request_id = HiddenField(validators=[Length(max=32)])


PREFERRED_TIME_CHOICES = [("mornings", _l("Mornings")), ("afternoons", _l("Afternoons")),
                          ("evenings", _l("Early evenings")), ("any", _l("Any time"))]


class RequestForm(PortalForm):
    provider = SelectField(_l("Who would you like to see?"), validators=[Optional()], choices=[])
    preferred = MultiCheckboxField(_l("When suits you?"), choices=PREFERRED_TIME_CHOICES, validators=[Optional()])
    note = long_text(_l("Anything else about timing (optional)"), 300)
    reason = long_text(_l("Reason for the visit"), 500, required=True)


class CancelForm(PortalForm):
    note = long_text(_l("Note for the patient's record (optional)"), 300)


class LinkActionForm(PortalForm):
    action = StringField(validators=[DataRequired(), AnyOf(["confirm", "cancel"])])


class WaitlistForm(PortalForm):
    any_provider = BooleanField(_l("Any provider is fine"))
    not_after = DateField(_l("Only times up to (optional)"), validators=[Optional()])


class WaitlistJoinForm(WaitlistForm):
    visit_type = HiddenField(validators=[Length(max=32)])
    provider = HiddenField(validators=[Length(max=32)])
    appointment = HiddenField(validators=[Length(max=32)])


# --- check-in -----------------------------------------------------------------------------------------

class ContactForm(PortalForm):
    phone = StringField(_l("Mobile or home phone"), validators=[
        DataRequired(), Length(max=32), NoControlChars(),
        lambda form, field: _phone(field)])
    email = StringField(_l("Email"), validators=[Optional(), Email(check_deliverability=False), Length(max=254)])
    address_line = text(_l("Street address"), 200)
    city = text(_l("City"), 100)
    state = text(_l("State"), 50)
    postal_code = text(_l("ZIP code"), 20)


def _phone(field):
    if field.data and not re.fullmatch(r"[0-9+()\-. ]{7,32}", field.data.strip()):
        raise ValidationError(_l("Use digits, spaces, +, - and brackets."))


class InsuranceForm(PortalForm):
    no_insurance = BooleanField(_l("I have no insurance / I will pay myself"))
    payer = text(_l("Insurance company"), 120)
    member_id = text(_l("Member ID"), 64)
    group = text(_l("Group number (optional)"), 64)
    card_front = FileField(_l("Photo of the front of the card"))
    card_back = FileField(_l("Photo of the back of the card (optional)"))


class MedicationsForm(PortalForm):
    current = RadioField(_l("Are your medicines and allergies on file up to date?"), validators=[InputRequired()],
                         choices=[("yes", _l("Yes, nothing has changed")),
                                  ("no", _l("No, something has changed"))])
    changes = long_text(_l("What has changed? (new, stopped or changed medicines; new allergies)"), 2000)


def questionnaire_form(definition: dict, data: dict | None = None, formdata=None):
    """A form class built from a questionnaire definition (validated by type; required answers are
    enforced only when the patient submits, not when they save to finish later)."""

    class Q(PortalForm):
        pass

    for q in definition["questions"]:
        validators = [Optional()]
        if q.kind in ("text", "long_text"):
            validators += [Length(max=q.max_length), NoControlChars(q.kind == "long_text")]
            if q.key == "callback_phone":
                validators.append(lambda form, field: _phone(field))
            cls = TextAreaField if q.kind == "long_text" else StringField
            setattr(Q, q.key, cls(q.label, validators=validators, description=q.hint or ""))
        else:
            choices = list({"yes_no": YES_NO_CHOICES, "scale": SCALE_CHOICES}.get(q.kind, q.choices))
            setattr(Q, q.key, RadioField(q.label, choices=choices, validators=validators,
                                         description=q.hint or ""))
    return Q(formdata=formdata, data=data or {})


from portal.scheduling.questionnaires import SCALE as SCALE_CHOICES  # noqa: E402
from portal.scheduling.questionnaires import YES_NO as YES_NO_CHOICES  # noqa: E402


class FeedbackForm(PortalForm):
    rating = RadioField(_l("How was your visit? (1 = poor, 5 = excellent)"), validators=[InputRequired()],
                        choices=[("5", _l("5 - Excellent")), ("4", _l("4 - Good")), ("3", _l("3 - OK")),
                                 ("2", _l("2 - Poor")), ("1", _l("1 - Very poor"))])
    comment = long_text(_l("Anything you would like to tell us? (optional)"), 1000)


# --- staff -----------------------------------------------------------------------------------------------

class ScheduleFilterForm(PortalForm):
    class Meta:
        csrf = False  # GET filter: changes nothing

    day = DateField(_l("Day"), validators=[Optional()])
    span = SelectField(_l("Show"), choices=[("day", _l("One day")), ("week", _l("A week"))],
                       validators=[Optional()], default="day")
    provider = SelectField(_l("Provider"), choices=[], validators=[Optional()])
    location = SelectField(_l("Location"), choices=[], validators=[Optional()])


class FeedbackFilterForm(PortalForm):
    class Meta:
        csrf = False

    days = SelectField(_l("Period"), choices=[("30", _l("Last 30 days")), ("90", _l("Last 90 days")),
                                              ("365", _l("Last 12 months"))], default="90",
                       validators=[Optional()])
    provider = SelectField(_l("Provider"), choices=[], validators=[Optional()])
    location = SelectField(_l("Location"), choices=[], validators=[Optional()])


class DeclineForm(PortalForm):
    note = long_text(_l("Message for the patient's record (optional)"), 300)


# --- set-up ----------------------------------------------------------------------------------------------

class LocationForm(PortalForm):
    name = text(_l("Name"), 120, required=True)
    address = text(_l("Address"), 300)
    phone = text(_l("Phone"), 32)
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64), NoControlChars()],
                           default="America/Chicago")
    active = BooleanField(_l("Open for booking"), default=True)


class ProviderForm(PortalForm):
    display_name = text(_l("Name as patients see it"), 120, required=True)
    credentials = text(_l("Credentials (e.g. MD, NP)"), 40)
    speciality = text(_l("Speciality (staff pages only, never in notices)"), 120)
    visit_types = MultiCheckboxField(_l("Visit types offered"), choices=[], validators=[Optional()])
    active = BooleanField(_l("Bookable"), default=True)


BOOKING_LABELS = {"any": _l("Any patient"), "established": _l("Established patients only"),
                  "request": _l("By request only (staff schedule it)")}


class VisitTypeForm(PortalForm):
    name = text(_l("Name"), 120, required=True)
    name_es = text(_l("Name in Spanish (optional)"), 120)
    description = long_text(_l("Description for patients (optional)"), 500)
    description_es = long_text(_l("Description in Spanish (optional)"), 500)
    duration_minutes = IntegerField(_l("Length (minutes)"), validators=[InputRequired(), NumberRange(15, 240)],
                                    default=30)
    modality = SelectField(_l("Kind"), choices=[("in_person", _l("In person")), ("video", _l("Video visit"))])
    booking = SelectField(_l("Who may book it online"), choices=[(m, BOOKING_LABELS[m]) for m in BOOKING_MODES])
    min_lead_minutes = IntegerField(_l("Minimum notice (minutes)"),
                                    validators=[InputRequired(), NumberRange(0, 60 * 24 * 30)], default=120)
    max_ahead_days = IntegerField(_l("Bookable up to (days ahead)"), validators=[InputRequired(),
                                                                                 NumberRange(1, 365)], default=90)
    cancel_cutoff_hours = IntegerField(_l("Online cancel/reschedule until (hours before)"),
                                       validators=[InputRequired(), NumberRange(0, 24 * 14)], default=24)
    questionnaire = SelectField(_l("Pre-visit questionnaire"), choices=QUESTIONNAIRE_CHOICES)
    active = BooleanField(_l("Offered"), default=True)


WEEKDAY_CHOICES = [("0", _l("Monday")), ("1", _l("Tuesday")), ("2", _l("Wednesday")), ("3", _l("Thursday")),
                   ("4", _l("Friday")), ("5", _l("Saturday")), ("6", _l("Sunday"))]


class TemplateForm(PortalForm):
    location = SelectField(_l("Location"), choices=[], validators=[DataRequired()])
    weekdays = MultiCheckboxField(_l("Days"), choices=WEEKDAY_CHOICES, validators=[DataRequired()])
    start = TimeField(_l("From"), validators=[InputRequired()])
    end = TimeField(_l("Until"), validators=[InputRequired()])
    valid_from = DateField(_l("First day (optional)"), validators=[Optional()])
    valid_until = DateField(_l("Last day (optional)"), validators=[Optional()])


EXCEPTION_LABELS = {"holiday": _l("Holiday"), "leave": _l("Leave"), "training": _l("Training"), "other": _l("Other")}


class ExceptionForm(PortalForm):
    label = text(_l("Description"), 120, required=True)
    kind = SelectField(_l("Kind"), choices=[(k, EXCEPTION_LABELS[k]) for k in EXCEPTION_KINDS])
    provider = SelectField(_l("Provider"), choices=[], validators=[Optional()])
    location = SelectField(_l("Location"), choices=[], validators=[Optional()])
    first_day = DateField(_l("First day"), validators=[InputRequired()])
    last_day = DateField(_l("Last day (optional)"), validators=[Optional()])
    start = TimeField(_l("From (optional, for part of a day)"), validators=[Optional()])
    end = TimeField(_l("Until (optional)"), validators=[Optional()])

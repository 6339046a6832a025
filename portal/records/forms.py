"""Records forms: home readings, refill requests, release preferences, the
record download, and the staff forms (hold, comment, import). Every text field is bounded and refuses
control characters."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, DecimalField, HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from portal.core.forms import PortalForm
from portal.records import rules
from portal.scheduling.forms import MultiCheckboxField, NoControlChars, long_text, text

CATEGORY_LABELS = {
    rules.PATHOLOGY: _l("Pathology and cancer-related results"),
    rules.GENETICS: _l("Genetic tests"),
    rules.PREGNANCY: _l("Pregnancy tests"),
    rules.HIV_STI: _l("HIV and sexually transmitted infection tests"),
}
READING_LABELS = {
    rules.BLOOD_PRESSURE: _l("Blood pressure"),
    rules.GLUCOSE: _l("Blood sugar (glucose)"),
    rules.WEIGHT: _l("Weight"),
}
MEDICATION_STATUS_LABELS = {  # MedicationRequest.status and MedicationStatement.status (FHIR R4), in words
    "active": _l("Active"), "on-hold": _l("On hold"), "intended": _l("Planned"), "draft": _l("Planned"),
    "completed": _l("Finished"), "stopped": _l("Stopped"), "cancelled": _l("Cancelled"),
    "not-taken": _l("Not taken"), "entered-in-error": _l("Entered in error"), "unknown": _l("Unknown"),
}


class ReadingNumber(DecimalField):
    """A reading typed with a decimal comma ("81,6", as many Spanish speakers write it) is read as 81.6."""

    def process_formdata(self, valuelist):
        if valuelist and isinstance(valuelist[0], str):
            raw = valuelist[0].strip()
            if raw.count(",") == 1 and "." not in raw:
                raw = raw.replace(",", ".")
            valuelist = [raw, *valuelist[1:]]
        super().process_formdata(valuelist)


class ReadingForm(PortalForm):
    kind = SelectField(_l("What did you measure?"), choices=list(READING_LABELS.items()),
                       validators=[DataRequired()])
    value = ReadingNumber(_l("Reading"), places=None, validators=[DataRequired(), NumberRange(min=0, max=10000)],
                         description=_l("Blood pressure: the top number (systolic). Blood sugar: mg/dL."))
    value2 = ReadingNumber(_l("Bottom number (diastolic), for blood pressure"), places=None,
                          validators=[Optional(), NumberRange(min=0, max=1000)])
    unit = SelectField(_l("Weight unit"), choices=[("kg", _l("kilograms")), ("lb", _l("pounds"))], default="kg")

    def validate_value2(self, field):
        if self.kind.data == rules.BLOOD_PRESSURE and field.data is None:
            raise ValidationError(_l("Enter the bottom number too."))


class RefillForm(PortalForm):
    team = SelectField(_l("Care team"), choices=[], validate_choice=False)  # an unknown team: the default route
    pharmacy = text(_l("Pharmacy (name and town)"), 200, required=True)
    note = long_text(_l("Anything the care team should know (optional)"), 1000)
    client_key = HiddenField(validators=[Length(max=40)])  # a double submit makes one request


class ReleasePrefsForm(PortalForm):
    categories = MultiCheckboxField(_l("Wait for my clinician before showing me:"),
                                    choices=list(CATEGORY_LABELS.items()), validate_choice=True)


class ExportForm(PortalForm):
    start = DateField(_l("From (optional)"), validators=[Optional()])
    end = DateField(_l("To (optional)"), validators=[Optional()])
    format = SelectField(_l("Format"), choices=[("pdf", _l("PDF document to read or print")),
                                                ("json", _l("FHIR file for another health app"))], default="pdf")

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError(_l("The end date must be on or after the start date."))


class HoldForm(PortalForm):
    reason = text(_l("Reason for holding (kept in the audit log)"), 300, required=True)
    until = DateField(_l("Release automatically on"), validators=[DataRequired()])


class CommentForm(PortalForm):
    body = long_text(_l("Comment for the patient"), 4000, required=True)


class ImportForm(PortalForm):
    file = FileField(_l("FHIR file (.json Bundle or .ndjson)"), validators=[FileRequired()])
    source = StringField(_l("Source system"), default="ehr",
                         validators=[DataRequired(), Length(max=64), NoControlChars()])

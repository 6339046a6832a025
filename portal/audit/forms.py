"""Audit report filters."""
from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from portal.core.forms import PortalForm

EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)


def _in_range(form, field):
    if field.data is not None and not (EARLIEST <= field.data <= LATEST):
        raise ValidationError(_l("Enter a date between %(start)s and %(end)s.", start=EARLIEST.year,
                                 end=LATEST.year))


class AuditFilterForm(PortalForm):
    class Meta:
        csrf = False  # GET filter form; changes nothing

    start = DateField(_l("From"), validators=[Optional(), _in_range])
    end = DateField(_l("To"), validators=[Optional(), _in_range])
    actor = StringField(_l("Staff or user email"), validators=[Optional(), Length(max=254)])
    mrn = StringField(_l("Patient MRN"), validators=[Optional(), Length(max=32)])
    action = SelectField(_l("Action"), validators=[Optional()])
    outcome = SelectField(_l("Outcome"), validators=[Optional()])

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError(_l("The end date is before the start date. Swap them, or choose a later end "
                                     "date."))

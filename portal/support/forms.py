"""Support console forms."""

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from portal.accounts.services import IDENTITY_METHOD_CHOICES
from portal.core.forms import PortalForm


class PatientSearchForm(PortalForm):
    class Meta:
        csrf = False  # GET search form: changes nothing

    q = StringField(_l("Name, MRN, date of birth or phone number"), validators=[Optional(), Length(max=100)])


class IdentityCheckForm(PortalForm):
    """How support confirmed a caller's identity before resetting their two-step verification."""

    method = SelectField(_l("How did you check their identity?"), validators=[DataRequired()],
                         choices=[("", _l("Choose one")), *IDENTITY_METHOD_CHOICES])
    birth_date_confirmed = BooleanField(_l("They told me their date of birth and it matches the record"))


class CorrectEmailForm(PortalForm):
    email = EmailField(_l("The correct email address"), validators=[
        DataRequired(message=_l("Enter the email address the patient gave you.")),
        Email(message=_l("Enter an email address like name@example.com."), check_deliverability=False),
        Length(max=254)])

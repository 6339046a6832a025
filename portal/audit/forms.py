from flask_babel import lazy_gettext as _l
from portal.core.forms import PortalForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional


class AuditFilterForm(PortalForm):
    class Meta:
        csrf = False  # GET filter form; changes nothing

    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("To"), validators=[Optional()])
    actor = StringField(_l("Staff or user email"), validators=[Optional(), Length(max=254)])
    mrn = StringField(_l("Patient MRN"), validators=[Optional(), Length(max=32)])
    action = SelectField(_l("Action"), validators=[Optional()])

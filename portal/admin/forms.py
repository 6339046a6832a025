"""Admin forms: staff accounts."""

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length

from portal.accounts.services import IDENTITY_METHOD_CHOICES
from portal.core.forms import PortalForm
from portal.core.roles import staff_role_choices


class StaffForm(PortalForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    display_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=staff_role_choices())


class RoleForm(PortalForm):
    role = SelectField(_l("Role"), choices=staff_role_choices())


class StaffMfaResetForm(PortalForm):
    method = SelectField(_l("How did you check their identity?"), validators=[DataRequired()],
                         choices=[("", _l("Choose one")), *IDENTITY_METHOD_CHOICES])

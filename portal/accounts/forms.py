from __future__ import annotations

from flask_babel import lazy_gettext as _l
from portal.core.forms import PortalForm
from wtforms import BooleanField, DateField, EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from portal.accounts.passwords import MAX_LENGTH

# Length bounds on every field (SECURITY.md §16); password length is checked by the policy itself
# so the message can say why. The max here only stops absurd payloads.
_PW_MAX = MAX_LENGTH * 4


class SignInForm(PortalForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=_PW_MAX)])
    next = HiddenField()


class CodeForm(PortalForm):
    code = StringField(_l("6-digit code"), validators=[DataRequired(), Length(min=6, max=8)])


class RecoveryForm(PortalForm):
    code = StringField(_l("Recovery code"), validators=[DataRequired(), Length(min=12, max=20)])


class EnrolForm(PortalForm):
    code = StringField(_l("6-digit code from your app"), validators=[DataRequired(), Length(min=6, max=8)])


class ActivationForm(PortalForm):
    code = StringField(_l("Activation code"), validators=[DataRequired(), Length(max=20)])
    birth_date = DateField(_l("Date of birth"), validators=[DataRequired()])
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField(_l("Choose a password"), validators=[DataRequired(), Length(max=_PW_MAX)])


class ForgotForm(PortalForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


class ResetForm(PortalForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=_PW_MAX)])


class ChangePasswordForm(PortalForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=_PW_MAX)])
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=_PW_MAX)])


class ConfirmPasswordForm(PortalForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=_PW_MAX)])


class ChangeEmailForm(PortalForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=_PW_MAX)])
    email = EmailField(_l("New email"), validators=[DataRequired(), Email(check_deliverability=False),
                                                    Length(max=254)])


class ChangeAuthenticatorForm(PortalForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=_PW_MAX)])
    code = StringField(_l("6-digit code from your current app"), validators=[DataRequired(), Length(min=6, max=8)])


class EmptyForm(PortalForm):
    """CSRF-only form for buttons that POST."""


class LanguageForm(PortalForm):
    lang = SelectField(_l("Language"), choices=[("en", "English"), ("es", "Español")])
    next = HiddenField()


class StaffForm(PortalForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    display_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[("clinician", _l("Clinician")), ("support", _l("Support")),
                                            ("billing", _l("Billing")), ("admin", _l("Administrator"))])


class RoleForm(PortalForm):
    role = SelectField(_l("Role"), choices=StaffForm.role.kwargs["choices"])


class MfaResetForm(PortalForm):
    method = SelectField(_l("How did you check their identity?"), validators=[DataRequired()],
                         choices=[("", _l("Choose one")),
                                  ("photo_id_in_person", _l("Photo ID, in person")),
                                  ("video_call_with_id", _l("Video call, photo ID shown")),
                                  ("callback_with_verification", _l("Called back on the number on file"))])
    birth_date_confirmed = BooleanField(_l("They told me their date of birth and it matches the record"))


class PatientSearchForm(PortalForm):
    class Meta:
        csrf = False  # GET search form: changes nothing

    q = StringField(_l("Name, MRN or date of birth (YYYY-MM-DD)"), validators=[Optional(), Length(max=100)])

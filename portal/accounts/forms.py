"""Account forms. Every message says what to do, in the page's language (our own `_l` strings, never
WTForms' English defaults)."""

from __future__ import annotations

from datetime import date

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from wtforms import EmailField, Field, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, StopValidation
from wtforms.widgets import PasswordInput

from portal.accounts.passwords import MAX_LENGTH
from portal.core.db import utcnow
from portal.core.forms import PortalForm

# Length bounds on every field (SECURITY.md §16); password length is checked by the policy itself
# so the message can say why. The max here only stops absurd payloads.
_PW_MAX = MAX_LENGTH * 4
_TOO_LONG = _l("That is too long. Use at most %(max)d characters.")


def _required(message):
    return DataRequired(message=message)


def _email_validators():
    return [_required(_l("Enter your email address.")),
            Email(check_deliverability=False, message=_l("Enter an email address like name@example.com.")),
            Length(max=254, message=_TOO_LONG)]


class MemorableDateField(Field):
    """A date typed as three boxes (the USWDS "memorable date" pattern): month (a select with the
    month names in the page's language), day and year, posted as <name>-month, <name>-day, <name>-year.
    Errors say what to fix: a missing part, an impossible date (31 February), a date in the future."""

    type = "MemorableDateField"  # the forms macro renders it as a fieldset
    EARLIEST_YEAR = 1900

    def __init__(self, label=None, validators=None, past_only: bool = True, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.past_only = past_only
        self.parts = {"month": "", "day": "", "year": ""}
        self.invalid_parts: tuple[str, ...] = ()

    def process(self, formdata, data=None, extra_filters=None):
        self.process_errors = []
        self.data = data if isinstance(data, date) else None
        if self.data is not None:
            self.parts = {"month": str(self.data.month), "day": str(self.data.day), "year": str(self.data.year)}
        if formdata is not None:
            self.parts = {part: (formdata.get(f"{self.name}-{part}") or "").strip()[:8]
                          for part in ("month", "day", "year")}
            self.raw_data = [self.parts[p] for p in ("month", "day", "year")]
            self.data = None

    def pre_validate(self, form):
        month, day, year = (self.parts[p] for p in ("month", "day", "year"))
        missing = tuple(p for p in ("month", "day", "year") if not self.parts[p])
        if len(missing) == 3:
            self.invalid_parts = ("month", "day", "year")
            raise StopValidation(_l("Enter your date of birth: month, day and year."))
        if missing:
            self.invalid_parts = missing
            names = {"month": _l("the month"), "day": _l("the day"), "year": _l("the year")}
            raise StopValidation(_l("Enter %(part)s of your date of birth.", part=names[missing[0]]))
        if not (month.isdigit() and day.isdigit() and year.isdigit()):
            self.invalid_parts = tuple(p for p in ("month", "day", "year") if not self.parts[p].isdigit())
            raise StopValidation(_l("Use numbers for the day and the year, for example 14 and 1986."))
        if len(year) != 4:
            self.invalid_parts = ("year",)
            raise StopValidation(_l("Enter the year with 4 digits, for example 1986."))
        m, d, y = int(month), int(day), int(year)
        if not 1 <= m <= 12:
            self.invalid_parts = ("month",)
            raise StopValidation(_l("Choose a month."))
        try:
            value = date(y, m, d)
        except ValueError:
            self.invalid_parts = ("day",)
            raise StopValidation(_l("That date does not exist. Check the day: this month has fewer days."))
        today = utcnow().date()
        if self.past_only and value > today:
            self.invalid_parts = ("year",)
            raise StopValidation(_l("Your date of birth must be in the past. Check the year."))
        if y < self.EARLIEST_YEAR:
            self.invalid_parts = ("year",)
            raise StopValidation(_l("Check the year: enter it with 4 digits, for example 1986."))
        self.data = value

    def _value(self):
        return self.data.isoformat() if self.data else ""

    @property
    def order(self) -> tuple[str, ...]:
        """Month first in English (as US forms do); day first in Spanish."""
        return ("day", "month", "year") if str(get_locale() or "en").startswith("es") else ("month", "day", "year")

    def month_names(self) -> list[tuple[str, str]]:
        from babel.dates import get_month_names

        names = get_month_names("wide", locale=str(get_locale() or "en"))
        return [(str(i), names[i].capitalize()) for i in range(1, 13)]


def _password_field(label, *, keep=False, message=None):
    """A password box; `keep` renders the typed value back (after an error on another field)."""
    widget = PasswordInput(hide_value=not keep)
    return PasswordField(label, widget=widget,
                         validators=[_required(message or _l("Enter your password.")),
                                     Length(max=_PW_MAX, message=_TOO_LONG)])


class SignInForm(PortalForm):
    email = EmailField(_l("Email"), validators=[_required(_l("Enter your email address.")),
                                                Length(max=254, message=_TOO_LONG)])
    password = _password_field(_l("Password"))
    next = HiddenField()


class CodeForm(PortalForm):
    code = StringField(_l("6-digit code"), validators=[
        _required(_l("Enter the 6-digit code from your authenticator app.")),
        Length(min=6, max=8, message=_l("Enter the 6 digits your authenticator app shows."))])


class RecoveryForm(PortalForm):
    code = StringField(_l("Recovery code"), validators=[
        _required(_l("Enter one of your recovery codes, for example ABCD-EFGH-JKLM.")),
        Length(min=12, max=20, message=_l("A recovery code has 12 letters and numbers, for example ABCD-EFGH-JKLM."))])


class EnrolForm(PortalForm):
    code = StringField(_l("6-digit code from your app"), validators=[
        _required(_l("Enter the 6-digit code your authenticator app shows for this portal.")),
        Length(min=6, max=8, message=_l("Enter the 6 digits your authenticator app shows."))])


class ActivationCheckForm(PortalForm):
    """Activation, step 1 of 3."""

    code = StringField(_l("Activation code"), validators=[
        _required(_l("Enter the activation code from the clinic, for example ABCD-EFGH-JKLM.")),
        Length(max=20, message=_l("An activation code has 12 letters and numbers, for example ABCD-EFGH-JKLM."))])
    birth_date = MemorableDateField(_l("Date of birth"))


class ActivationAccountForm(PortalForm):
    """Activation, step 2 of 3."""

    email = EmailField(_l("Email"), validators=_email_validators())
    password = _password_field(_l("Choose a password"), keep=True, message=_l("Choose a password."))


class ForgotForm(PortalForm):
    email = EmailField(_l("Email"), validators=[_required(_l("Enter the email address you use for the portal.")),
                                                Length(max=254, message=_TOO_LONG)])


class ResetForm(PortalForm):
    password = _password_field(_l("New password"), message=_l("Choose a new password."))


class ChangePasswordForm(PortalForm):
    current_password = _password_field(_l("Current password"), message=_l("Enter your current password."))
    password = _password_field(_l("New password"), keep=True, message=_l("Choose a new password."))


class ConfirmPasswordForm(PortalForm):
    current_password = _password_field(_l("Current password"), message=_l("Enter your current password."))


class ChangeEmailForm(PortalForm):
    current_password = _password_field(_l("Current password"), message=_l("Enter your current password."))
    email = EmailField(_l("New email"), validators=[
        _required(_l("Enter your new email address.")),
        Email(check_deliverability=False, message=_l("Enter an email address like name@example.com.")),
        Length(max=254, message=_TOO_LONG)])


class ChangeAuthenticatorForm(PortalForm):
    current_password = _password_field(_l("Current password"), message=_l("Enter your current password."))
    code = StringField(_l("6-digit code from your current app"), validators=[
        _required(_l("Enter the 6-digit code your current authenticator app shows.")),
        Length(min=6, max=8, message=_l("Enter the 6 digits your authenticator app shows."))])


# --- passkeys (the browser fills `credential` with the WebAuthn answer; accounts/passkeys.py checks it) ---

_CREDENTIAL_MAX = 16_000


class PasskeyForm(PortalForm):
    """Sign in with a passkey (alone, or as the second step): the browser's signed answer."""

    credential = HiddenField(validators=[Length(max=_CREDENTIAL_MAX, message=_TOO_LONG)])


class AddPasskeyForm(PortalForm):
    name = StringField(_l("Name for this passkey"), validators=[
        Length(max=64, message=_TOO_LONG)])
    credential = HiddenField(validators=[Length(max=_CREDENTIAL_MAX, message=_TOO_LONG)])


class RemovePasskeyForm(PortalForm):
    current_password = _password_field(_l("Current password"), message=_l("Enter your current password."))
    code = StringField(_l("Code from your authenticator app, or a recovery code"), validators=[
        Length(max=20, message=_TOO_LONG)])


class RenamePasskeyForm(PortalForm):
    name = StringField(_l("Name for this passkey"), validators=[
        _required(_l("Enter a name, for example “My phone”.")), Length(max=64, message=_TOO_LONG)])

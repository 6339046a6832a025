"""Billing forms. Amounts are typed as dollars and cents and parsed to integer cents (money.parse_cents);
the payment form never carries an amount the server trusts: "full" means the amount computed from the
ledger, "other" is checked against it."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, DateField, HiddenField, RadioField, SelectField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, ValidationError

from portal.billing import money
from portal.core.forms import PortalForm

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(form, field):
    if isinstance(field.data, str) and _CONTROL.search(field.data):
        raise ValidationError(_l("Remove the special (control) characters."))


class AmountField(StringField):
    """Dollars and cents → `cents` (int) after validation."""

    def __init__(self, label, allow_negative=False, **kw):
        super().__init__(label, **kw)
        self.allow_negative = allow_negative
        self.cents = None

    def pre_validate(self, form):
        if not (self.data or "").strip():
            return
        try:
            self.cents = money.parse_cents(self.data, allow_negative=self.allow_negative)
        except money.MoneyError:
            raise ValidationError(_l("Enter an amount in dollars and cents, for example 25.00.")) from None


class EntryForm(PortalForm):
    kind = SelectField(_l("Type"), choices=[(money.CHARGE, _l("Charge")),
                                            (money.INSURANCE_PAYMENT, _l("Insurance payment")),
                                            (money.ADJUSTMENT, _l("Adjustment"))],
                       validators=[DataRequired(), AnyOf(money.STAFF_POSTABLE)])
    service_date = DateField(_l("Date of service"), validators=[DataRequired()])
    code = StringField(_l("Code (CPT or internal)"), validators=[Optional(), Length(max=20), _no_control])
    description = StringField(_l("Description"), validators=[DataRequired(), Length(max=200), _no_control])
    amount = AmountField(_l("Amount"), allow_negative=True, validators=[DataRequired(), Length(max=16)],
                         description=_l("Dollars and cents. Adjustments that lower the balance are negative, "
                                        "for example -20.00."))
    reason = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=200), _no_control])


class ImportForm(PortalForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(), FileAllowed(["csv", "txt"], _l("A .csv file"))],
                     description=_l("Columns: mrn, service_date (YYYY-MM-DD), kind (charge, insurance_payment or "
                                    "adjustment), code, description, amount. All lines are imported or none."))


class RunForm(PortalForm):
    confirm = HiddenField(validators=[DataRequired(), AnyOf(["all"])], default="all")


class RefundForm(PortalForm):
    amount = AmountField(_l("Amount to refund"), validators=[DataRequired(), Length(max=16)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=200), _no_control])


class PayForm(PortalForm):
    """Posted by the page's script after Stripe.js confirmed the card (payment_method); without script the
    form cannot be completed (card details only ever go to Stripe)."""

    attempt_key = HiddenField(validators=[DataRequired(), Length(max=64)])
    payment_method = HiddenField(validators=[Optional(), Length(max=64)])
    amount_choice = RadioField(_l("How much would you like to pay?"), choices=[("full", _l("The amount due")),
                                                                          ("other", _l("Another amount"))],
                               default="full", validators=[DataRequired()])
    amount = StringField(_l("Amount"), validators=[Optional(), Length(max=16), _no_control])
    save_card = BooleanField(_l("Save this card for future payments"))


class PaperlessForm(PortalForm):
    paperless = BooleanField(_l("Paperless statements: tell me when a statement is ready instead of mailing it"))


class ExportForm(PortalForm):
    class Meta:
        csrf = False

    start = DateField(_l("From"), validators=[DataRequired()])
    end = DateField(_l("To"), validators=[DataRequired()])

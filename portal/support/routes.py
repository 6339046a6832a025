"""Support console: find a patient, activation codes and their printed handout, unlock, MFA reset after
an identity check, and help with the account's email (confirmation again, a reset link, a typo)."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.core.forms import EmptyForm
from portal.core.i18n import forget_request_translations
from portal.core.registry import for_function, nav
from portal.core.web import button_action, external_url, form_page
from portal.support import services
from portal.support.forms import CorrectEmailForm, IdentityCheckForm, PatientSearchForm

bp = Blueprint("support", __name__, url_prefix="/support")
nav.add("support.index", _l("Patients"), order=60, show=for_function("patient_search"))


@bp.route("")
@access_rule("staff", function="patient_search")
def index():
    form = PatientSearchForm(request.args)
    results = None
    if form.q.data and form.validate():
        results = services.search(current_user, form.q.data, day_first=str(get_locale()) != "en")
    return render_template("support/index.html", form=form, results=results)


@bp.route("/patients/<public_id>")
@access_rule("staff", function="patient_demographics")
def patient(public_id):
    return render_template("support/patient.html", **services.patient_page(current_user, public_id),
                           form=EmptyForm(), mfa_form=IdentityCheckForm())


def _button(public_id, action, message):
    """A button on the patient page: CSRF-checked, one service call, a flash, back to the page."""
    return button_action(EmptyForm(), lambda _f: action(), message, url_for("support.patient", public_id=public_id),
                         invalid=_("That did not work. Reload the page and try again."))


@bp.route("/patients/<public_id>/activation", methods=["POST"])
@access_rule("staff", function="activation")
def issue_activation(public_id):
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("support.patient", public_id=public_id))
    try:
        patient, code, expires = services.issue_activation(current_user, public_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("support.patient", public_id=public_id))
    language = patient.preferred_language if patient.preferred_language in ("en", "es") else "en"
    forget_request_translations()
    with force_locale(language):  # the handout speaks the patient's language
        handout = Markup(render_template("support/_activation_handout.html", patient=patient, code=code, expires=expires,
                                  language=language, activate_url=external_url("auth.activate")))
        forget_request_translations()
    return render_template("support/activation_code.html", patient=patient, code=code, expires=expires,
                           handout=handout, form=EmptyForm())


@bp.route("/patients/<public_id>/unlock", methods=["POST"])
@access_rule("staff", function="account_unlock")
def unlock(public_id):
    return _button(public_id, lambda: services.unlock(current_user, public_id), _("The account is unlocked."))


@bp.route("/patients/<public_id>/mfa-reset", methods=["POST"])
@access_rule("staff", function="mfa_reset")
def mfa_reset(public_id):
    form = IdentityCheckForm()
    if form.validate_on_submit():
        try:
            services.reset_mfa(current_user, public_id, form.method.data, form.birth_date_confirmed.data)
        except DomainError as err:
            flash(err.message, "error")
        else:
            flash(_("Two-step verification was reset. The patient will set it up again at next sign-in."),
                  "success")
    else:
        flash(_("Record how you checked the person's identity."), "error")
    return redirect(url_for("support.patient", public_id=public_id))


@bp.route("/patients/<public_id>/confirmation", methods=["POST"])
@access_rule("staff", function="account_support")
def resend_confirmation(public_id):
    return _button(public_id, lambda: services.resend_confirmation(current_user, public_id),
                   _("We sent the confirmation email again."))


@bp.route("/patients/<public_id>/reset-link", methods=["POST"])
@access_rule("staff", function="account_support")
def reset_link(public_id):
    return _button(public_id, lambda: services.send_reset_link(current_user, public_id),
                   _("We emailed a link to choose a new password. It works for one hour."))


@bp.route("/patients/<public_id>/email", methods=["GET", "POST"])
@access_rule("staff", function="account_support")
def correct_email(public_id):
    page = services.account_page(current_user, public_id)
    if page["account"] is None:
        return redirect(url_for("support.patient", public_id=public_id))
    return form_page(CorrectEmailForm(), "support/correct_email.html",
                     lambda f: services.correct_email(current_user, public_id, f.email.data),
                     success=_("Email address corrected. We sent the confirmation link to it."),
                     redirect_to=url_for("support.patient", public_id=public_id),
                     context={"patient": page["patient"], "account": page["account"]})

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import lockout
from portal.accounts import services as account_services
from portal.accounts.forms import EmptyForm, MfaResetForm, PatientSearchForm
from portal.core.access import access_rule, may_use, patient_for
from portal.core.errors import DomainError
from portal.extensions import db
from portal.patients import services as patient_services
from portal.records import services as record_services

bp = Blueprint("support", __name__, url_prefix="/support")


@bp.route("")
@access_rule("staff", function="patient_search")
def index():
    form = PatientSearchForm(request.args)
    results = None
    if form.q.data and form.validate():
        results = patient_services.search(current_user, form.q.data)
        db.session.commit()
    return render_template("support/index.html", form=form, results=results)


def _account_or_404(patient):
    from flask import abort

    user = account_services.patient_account(patient)
    if user is None:
        abort(404)
    return user


@bp.route("/patients/<public_id>")
@access_rule("staff", function="patient_demographics")
def patient(public_id):
    patient = record_services.view_demographics(current_user, public_id)
    db.session.commit()
    account = account_services.patient_account(patient)
    return render_template("support/patient.html", patient=patient, account=account,
                           locked_until=lockout.lock_status([account]).get(account.id) if account else None,
                           can_activate=may_use(current_user, "activation"),
                           can_unlock=may_use(current_user, "account_unlock"),
                           can_reset=may_use(current_user, "mfa_reset"),
                           form=EmptyForm(), mfa_form=MfaResetForm())


@bp.route("/patients/<public_id>/activation", methods=["POST"])
@access_rule("staff", function="activation")
def issue_activation(public_id):
    patient = patient_for(current_user, public_id)
    form = EmptyForm()
    if not form.validate_on_submit():
        return redirect(url_for("support.patient", public_id=public_id))
    try:
        code = account_services.issue_activation(current_user, patient)
    except DomainError as err:
        db.session.commit()
        flash(err.message, "error")
        return redirect(url_for("support.patient", public_id=public_id))
    db.session.commit()
    return render_template("support/activation_code.html", patient=patient, code=code)


@bp.route("/patients/<public_id>/unlock", methods=["POST"])
@access_rule("staff", function="account_unlock")
def unlock(public_id):
    patient = patient_for(current_user, public_id)
    user = _account_or_404(patient)
    if EmptyForm().validate_on_submit():
        account_services.unlock(current_user, user, patient)
        db.session.commit()
        flash(_("The account is unlocked."), "success")
    return redirect(url_for("support.patient", public_id=public_id))


@bp.route("/patients/<public_id>/mfa-reset", methods=["POST"])
@access_rule("staff", function="mfa_reset")
def mfa_reset(public_id):
    patient = patient_for(current_user, public_id)
    user = _account_or_404(patient)
    form = MfaResetForm()
    if form.validate_on_submit():
        try:
            account_services.reset_mfa(current_user, user, form.method.data, form.birth_date_confirmed.data,
                                       patient=patient)
        except DomainError as err:
            db.session.commit()
            flash(err.message, "error")
        else:
            db.session.commit()
            flash(_("Two-step verification was reset. The patient will set it up again at next sign-in."),
                  "success")
    else:
        flash(_("Record how you checked the person's identity."), "error")
    return redirect(url_for("support.patient", public_id=public_id))

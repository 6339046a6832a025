from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import lockout
from portal.accounts import services as account_services
from portal.accounts.forms import EmptyForm, MfaResetForm, RoleForm, StaffForm
from portal.accounts.models import STAFF_ROLES, User
from portal.core.access import access_rule, deny
from portal.core.errors import DomainError
from portal.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _staff_or_404(public_id: str) -> User:
    user = db.session.execute(select(User).where(User.public_id == public_id[:32],
                                                 User.role.in_(STAFF_ROLES))).scalars().first()
    if user is None:
        deny("user", public_id)
        abort(404)
    return user


@bp.route("/staff")
@access_rule("staff", function="staff_admin")
def staff():
    users = db.session.execute(select(User).where(User.role.in_(STAFF_ROLES))
                               .order_by(User.display_name)).scalars().all()
    return render_template("admin/staff.html", users=users, locks=lockout.lock_status(users),
                           form=EmptyForm(), role_form=RoleForm(),
                           mfa_form=MfaResetForm())


@bp.route("/staff/new", methods=["GET", "POST"])
@access_rule("staff", function="staff_admin")
def staff_new():
    form = StaffForm()
    status = 200
    if form.validate_on_submit():
        try:
            account_services.create_staff(form.email.data, form.role.data, form.display_name.data,
                                          actor=current_user)
        except DomainError as err:
            field = getattr(form, err.field or "", None)
            if field is not None:
                field.errors = [err.message]
            else:
                flash(err.message, "error")
            status = 400
        else:
            db.session.commit()
            flash(_("Account created. We emailed a link to set a password."), "success")
            return redirect(url_for("admin.staff"))
    elif form.is_submitted():
        status = 400
    return render_template("admin/staff_new.html", form=form), status


def _act(public_id, fn, message):
    user = _staff_or_404(public_id)
    if EmptyForm().validate_on_submit():
        try:
            fn(user)
        except DomainError as err:
            flash(err.message, "error")
        else:
            db.session.commit()
            flash(message, "success")
    return redirect(url_for("admin.staff"))


@bp.route("/staff/<public_id>/role", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_role(public_id):
    form = RoleForm()
    if not form.validate_on_submit():
        flash(_("Choose a staff role."), "error")
        return redirect(url_for("admin.staff"))
    return _act(public_id, lambda u: account_services.change_role(current_user, u, form.role.data),
                _("Role changed. Their sessions were ended."))


@bp.route("/staff/<public_id>/disable", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_disable(public_id):
    return _act(public_id, lambda u: account_services.set_disabled(current_user, u, True),
                _("Account disabled. Their sessions were ended."))


@bp.route("/staff/<public_id>/enable", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_enable(public_id):
    return _act(public_id, lambda u: account_services.set_disabled(current_user, u, False), _("Account enabled."))


@bp.route("/staff/<public_id>/unlock", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_unlock(public_id):
    return _act(public_id, lambda u: account_services.unlock(current_user, u), _("The account is unlocked."))


@bp.route("/staff/<public_id>/mfa-reset", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_mfa_reset(public_id):
    form = MfaResetForm()
    user = _staff_or_404(public_id)
    if form.validate_on_submit():
        try:
            account_services.reset_mfa(current_user, user, form.method.data, True)
        except DomainError as err:
            flash(err.message, "error")
        else:
            db.session.commit()
            flash(_("Two-step verification was reset."), "success")
    else:
        flash(_("Record how you checked the person's identity."), "error")
    return redirect(url_for("admin.staff"))

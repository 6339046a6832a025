"""Admin: staff accounts (create, role, disable, unlock, MFA reset). The list links to one page per
staff member with the actions; disabling and changing a role ask for confirmation first."""
from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.admin import services
from portal.admin.forms import RoleForm, StaffForm, StaffMfaResetForm
from portal.core.access import access_rule
from portal.core.forms import EmptyForm
from portal.core.registry import for_function, nav
from portal.core.roles import role_label
from portal.core.web import button_action, form_page

bp = Blueprint("admin", __name__, url_prefix="/admin")
nav.add("admin.staff", _l("Staff"), order=70, show=for_function("staff_admin"))


@bp.route("/staff")
@access_rule("staff", function="staff_admin")
def staff():
    return render_template("admin/staff.html", **services.staff_list(current_user), form=EmptyForm())


@bp.route("/staff/new", methods=["GET", "POST"])
@access_rule("staff", function="staff_admin")
def staff_new():
    return form_page(StaffForm(), "admin/staff_new.html",
                     lambda f: services.create(current_user, f.email.data, f.role.data, f.display_name.data),
                     success=_("Account created. We emailed a link to set a password."),
                     redirect_to=url_for("admin.staff"))


@bp.route("/staff/<public_id>")
@access_rule("staff", function="staff_admin")
def staff_member(public_id):
    page = services.member_page(current_user, public_id)
    role_form = RoleForm(data={"role": page["user"].role})
    return render_template("admin/staff_member.html", **page, form=EmptyForm(), role_form=role_form,
                           mfa_form=StaffMfaResetForm())


def _act(form, public_id, action, message):
    """A button on a staff member's page: CSRF-checked, one service call, a flash, back to the page."""
    return button_action(form, action, message, url_for("admin.staff_member", public_id=public_id),
                         invalid=_("That did not work. Reload the page and try again."))


def _confirm(user, action_url, question, consequence, button, fields=None):
    """The confirmation step: the same POST again with confirmed=1 (no script needed)."""
    return render_template("admin/confirm.html", user=user, action_url=action_url, question=question,
                           consequence=consequence, button=button, fields=fields or {}, form=EmptyForm())


@bp.route("/staff/<public_id>/role", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_role(public_id):
    user = services.staff_member(current_user, public_id)
    form = RoleForm()
    if request.form.get("confirmed") != "1" and form.validate_on_submit() and form.role.data != user.role:
        return _confirm(user, url_for("admin.staff_role", public_id=public_id),
                        _("Change %(name)s's role from %(old)s to %(new)s?", name=user.display_name,
                          old=role_label(user.role), new=role_label(form.role.data)),
                        _("Their sessions end now; they sign in again with the new role's access."),
                        _("Change the role"), {"role": form.role.data})
    return _act(form, public_id, lambda f: services.change_role(current_user, public_id, f.role.data),
                _("Role changed. Their sessions were ended."))


@bp.route("/staff/<public_id>/disable", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_disable(public_id):
    user = services.staff_member(current_user, public_id)
    if request.form.get("confirmed") != "1" and EmptyForm().validate_on_submit():
        return _confirm(user, url_for("admin.staff_disable", public_id=public_id),
                        _("Disable %(name)s's account?", name=user.display_name),
                        _("They are signed out everywhere and cannot sign in until an administrator enables the "
                          "account again."), _("Disable the account"))
    return _act(EmptyForm(), public_id, lambda f: services.set_disabled(current_user, public_id, True),
                _("Account disabled. Their sessions were ended."))


@bp.route("/staff/<public_id>/enable", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_enable(public_id):
    return _act(EmptyForm(), public_id, lambda f: services.set_disabled(current_user, public_id, False),
                _("Account enabled."))


@bp.route("/staff/<public_id>/unlock", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_unlock(public_id):
    return _act(EmptyForm(), public_id, lambda f: services.unlock(current_user, public_id),
                _("The account is unlocked."))


@bp.route("/staff/<public_id>/mfa-reset", methods=["POST"])
@access_rule("staff", function="staff_admin")
def staff_mfa_reset(public_id):
    return _act(StaffMfaResetForm(), public_id, lambda f: services.reset_mfa(current_user, public_id, f.method.data),
                _("Two-step verification was reset."))

"""Staff pages (/inbox): queues and filters, one thread (claim, release, assign, transfer, status, reply,
internal note, canned replies), the pool dashboard, pool administration and attachment downloads.
Every thread a staff member opens is loaded through their pool membership (404 + denied row outside
it) and audit-logged as a view of patient data."""

from __future__ import annotations

import secrets

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.core.forms import EmptyForm
from portal.core.web import button_action, field_error, form_page
from portal.messaging import attachments, services
from portal.messaging.forms import (AssignForm, CannedForm, MemberForm, PoolForm, StaffReplyForm, StatusForm,
                                    TransferForm)
from portal.messaging.models import TOPICS
from portal.messaging.routes import send_attachment

bp = Blueprint("inbox", __name__, url_prefix="/inbox")


def _arg(name: str, n: int = 32) -> str | None:
    return (request.args.get(name) or "").strip()[:n] or None


@bp.route("")
@access_rule("staff", function="inbox")
def index():
    f = services.InboxFilters(queue=_arg("queue", 16) or "unassigned", pool=_arg("pool"), topic=_arg("topic", 16),
                              age=request.args.get("age", type=int), q=_arg("q", 80),
                              page=request.args.get("page", 1, type=int))
    return render_template("messaging/staff/inbox.html", topics=TOPICS, **services.inbox(current_user, f))


def _thread_page(public_id, form=None, status=200, newer_ids=()):
    view = services.staff_thread(current_user, public_id)
    if form is None:
        form = StaffReplyForm()
        filled = services.fill_canned(current_user, view["thread"], _arg("canned"))
        if filled:
            form.body.data = filled
        form.seen_id.data = str(view["latest_id"])
    if not form.client_key.data:
        form.client_key.data = secrets.token_hex(16)
    assign_form, transfer_form = AssignForm(formdata=None), TransferForm(formdata=None)
    assign_form.assignee.choices = [(u.public_id, u.display_name) for u in view["colleagues"]]
    transfer_form.pool.choices = [(p.public_id, p.name) for p in view["pools"]]
    return render_template("messaging/staff/thread.html", form=form, assign_form=assign_form,
                           transfer_form=transfer_form, action_form=EmptyForm(), newer_ids=set(newer_ids),
                           **view), status


@bp.route("/<public_id>")
@access_rule("staff", function="inbox")
def thread(public_id):
    return _thread_page(public_id)


@bp.route("/<public_id>/reply", methods=["POST"])
@access_rule("staff", function="inbox")
def reply(public_id):
    form = StaffReplyForm()
    if not form.validate_on_submit():
        return _thread_page(public_id, form, 400)
    try:
        seen = int(form.seen_id.data) if (form.seen_id.data or "").isdigit() else None
        services.staff_reply(current_user, public_id, body=form.body.data, internal=form.internal.data,
                             seen_id=seen, files=attachments.read_uploads(request.files.getlist("attachments")),
                             client_key=form.client_key.data, then=form.then.data or None)
    except services.Collision as err:
        field_error(form, err)
        form.seen_id.data = str(err.latest_id)  # sending again now posts it
        return _thread_page(public_id, form, 409, err.newer_ids)
    except DomainError as err:
        field_error(form, err, "body")
        return _thread_page(public_id, form, 409 if "claimed" in err.message else 400)
    flash(_("Internal note added.") if form.internal.data else _("Reply sent."), "success")
    return redirect(url_for("inbox.thread", public_id=public_id) + "#latest")


def _action(public_id, fn, success: str):
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            fn()
        except DomainError as err:
            flash(err.message, "error")
            return _thread_page(public_id, None, 409)
        flash(success, "success")
    return redirect(url_for("inbox.thread", public_id=public_id))


@bp.route("/<public_id>/claim", methods=["POST"])
@access_rule("staff", function="inbox")
def claim(public_id):
    services._staff_load(current_user, public_id)
    return _action(public_id, lambda: services.claim(current_user, public_id), _("You own this conversation now."))


@bp.route("/<public_id>/release", methods=["POST"])
@access_rule("staff", function="inbox")
def release(public_id):
    services._staff_load(current_user, public_id)
    return _action(public_id, lambda: services.release(current_user, public_id), _("Conversation released."))


@bp.route("/<public_id>/status", methods=["POST"])
@access_rule("staff", function="inbox")
def status(public_id):
    services._staff_load(current_user, public_id)
    form = StatusForm()
    if not form.validate_on_submit():
        flash(_("That change is not possible now."), "error")
        return redirect(url_for("inbox.thread", public_id=public_id))
    try:
        services.set_status(current_user, public_id, form.status.data)
    except DomainError as err:
        flash(err.message, "error")
    else:
        flash(_("Status changed."), "success")
    return redirect(url_for("inbox.thread", public_id=public_id))


@bp.route("/<public_id>/assign", methods=["POST"])
@access_rule("staff", function="inbox")
def assign(public_id):
    services._staff_load(current_user, public_id)
    form = AssignForm()
    if form.validate_on_submit():
        try:
            services.assign(current_user, public_id, form.assignee.data)
        except DomainError as err:
            flash(err.message, "error")
        else:
            flash(_("Conversation assigned."), "success")
    return redirect(url_for("inbox.thread", public_id=public_id))


@bp.route("/<public_id>/transfer", methods=["POST"])
@access_rule("staff", function="inbox")
def transfer(public_id):
    services._staff_load(current_user, public_id)
    form = TransferForm()
    if form.validate_on_submit():
        try:
            services.transfer(current_user, public_id, form.pool.data)
        except DomainError as err:
            flash(err.message, "error")
            return redirect(url_for("inbox.thread", public_id=public_id))
        flash(_("Conversation moved to another team."), "success")
        return redirect(url_for("inbox.index"))
    return redirect(url_for("inbox.thread", public_id=public_id))


@bp.route("/attachments/<public_id>")
@access_rule("staff", function="inbox")
def attachment(public_id):
    return send_attachment(*services.staff_attachment(current_user, public_id))


@bp.route("/dashboard")
@access_rule("staff", function="inbox")
def dashboard():
    return render_template("messaging/staff/dashboard.html", **services.dashboard(current_user))


# --- pool administration -----------------------------------------------------------------------------

@bp.route("/pools", methods=["GET", "POST"])
@access_rule("staff", function="pools_admin")
def pools():
    form = PoolForm()
    overview = services.pools_overview(current_user)

    def create(f):
        return services.create_pool(current_user, name=f.name.data, name_es=f.name_es.data, kind=f.kind.data,
                                    topics=[t.strip() for t in (f.topics.data or "").split(",")],
                                    target_hours=f.target_hours.data)

    member_form, canned_form = MemberForm(formdata=None), CannedForm(formdata=None)
    member_form.user.choices = [(u.public_id, f"{u.display_name} ({u.email})") for u in overview["staff"]]
    return form_page(form, "messaging/staff/pools.html", create, success=_("Team created."),
                     redirect_to=url_for("inbox.pools"),
                     context={**overview, "member_form": member_form, "canned_form": canned_form,
                              "action_form": EmptyForm(), "topics": TOPICS})


@bp.route("/pools/<public_id>/members", methods=["POST"])
@access_rule("staff", function="pools_admin")
def add_member(public_id):
    services._pool_or_404(current_user, public_id)
    return button_action(MemberForm(), lambda f: services.add_member(current_user, public_id, f.user.data),
                         _("Member added."), url_for("inbox.pools"))


@bp.route("/pools/<public_id>/members/remove", methods=["POST"])
@access_rule("staff", function="pools_admin")
def remove_member(public_id):
    services._pool_or_404(current_user, public_id)
    return button_action(MemberForm(), lambda f: services.remove_member(current_user, public_id, f.user.data),
                         _("Member removed."), url_for("inbox.pools"))


@bp.route("/pools/<public_id>/canned", methods=["POST"])
@access_rule("staff", function="pools_admin")
def add_canned(public_id):
    services._pool_or_404(current_user, public_id)
    return button_action(CannedForm(), lambda f: services.add_canned(current_user, public_id, title=f.title.data,
                                                                     body=f.body.data, language=f.language.data),
                         _("Canned reply added."), url_for("inbox.pools"),
                         invalid=_("A canned reply needs a title and a text."))

"""Patient pages (/messages): the list, compose (request types routed to pools, "ask about this" refs),
one thread with its reply box, rating a closed thread, and attachment downloads through the scope."""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule, patient_for
from portal.core.registry import (PATIENT_HOME, STAFF_HOME, for_function, for_patients, home_cards, nav,
                                  staff_patient_panels)
from portal.core.web import current_lang, form_page
from portal.messaging import attachments, labels, services
from portal.messaging.forms import ComposeForm, RatingForm, ReplyForm

bp = Blueprint("messaging", __name__, url_prefix="/messages")

nav.add("messaging.index", _l("Messages"), order=40, show=for_patients, badge=services.unread_count)
nav.add("inbox.index", _l("Inbox"), order=15, show=for_function("inbox"), badge=services.staff_badge)
nav.add("inbox.pools", _l("Inbox teams"), order=85, show=for_function("pools_admin"))
staff_patient_panels.add("messages", order=30, template="messaging/_panel_patient.html",
                         build=services.patient_panel, show=for_function("inbox"))
home_cards.add("messages", order=8, audience=PATIENT_HOME, template="messaging/_card_home.html",
               scalars=services.patient_card_scalars, build=services.patient_card)
home_cards.add("inbox", order=3, audience=STAFF_HOME, template="messaging/_card_staff.html",
               build=services.staff_card, show=for_function("inbox"))


def _files(form):
    return attachments.read_uploads(request.files.getlist(form.attachments.name))


def _new_key(form) -> None:
    if not form.client_key.data:
        form.client_key.data = secrets.token_hex(16)


@bp.route("")
@access_rule("patient")
def index():
    return render_template("messaging/index.html", **services.my_threads(current_user, request.args.get("page", 1,
                                                                                                       type=int)))


@bp.route("/new", methods=["GET", "POST"])
@access_rule("patient")
def compose():
    patient = patient_for(current_user)
    form = ComposeForm()
    lang = current_lang()
    form.pool.choices = services.care_team_choices(lang)
    if not form.is_submitted():
        form.topic.data = services.normalise_topic(request.args.get("topic") or request.args.get("type")) \
            if (request.args.get("topic") or request.args.get("type")) else None
        form.ref.data = (request.args.get("ref") or "")[:100]
    _new_key(form)
    resolved = services.resolve_ref(form.ref.data, current_user, patient)
    if resolved is None:
        form.ref.data = ""

    def send(f):
        return services.compose(current_user, topic=f.topic.data, subject=f.subject.data, body=f.body.data,
                                pool_id=f.pool.data or None, ref=f.ref.data or None, files=_files(f),
                                client_key=f.client_key.data)

    return form_page(form, "messaging/compose.html", send, success=_("Your message was sent."),
                     redirect_to=lambda t: url_for("messaging.thread", public_id=t.public_id),
                     default_field="body",
                     context=lambda: {"ref": resolved, "routes": services.topic_routes(lang),
                                      "show_pool": len(form.pool.choices) > 1})


@bp.route("/<public_id>")
@access_rule("patient")
def thread(public_id):
    view = services.patient_thread(current_user, public_id)
    form = ReplyForm()
    _new_key(form)
    return render_template("messaging/thread.html", form=form, rating_form=RatingForm(), **view)


@bp.route("/<public_id>/reply", methods=["POST"])
@access_rule("patient")
def reply(public_id):
    form = ReplyForm()

    def send(f):
        return services.patient_reply(current_user, public_id, body=f.body.data, files=_files(f),
                                      client_key=f.client_key.data)

    def context():
        _new_key(form)
        return {**services.patient_thread(current_user, public_id), "rating_form": RatingForm()}

    return form_page(form, "messaging/thread.html", send, success=_("Your message was sent."),
                     redirect_to=lambda t: url_for("messaging.thread", public_id=t.public_id) + "#latest",
                     default_field="body", context=context)


@bp.route("/<public_id>/rate", methods=["POST"])
@access_rule("patient")
def rate(public_id):
    form = RatingForm()

    def context():
        reply_form = ReplyForm()
        _new_key(reply_form)
        return {**services.patient_thread(current_user, public_id), "rating_form": form, "reply_form": reply_form}

    def done(t):
        return redirect(url_for("messaging.thread", public_id=t.public_id))

    return form_page(form, "messaging/thread.html", lambda f: services.rate(current_user, public_id,
                                                                            rating=f.rating.data,
                                                                            comment=f.comment.data),
                     success=_("Thank you for your rating."), on_success=None,
                     redirect_to=lambda t: url_for("messaging.thread", public_id=t.public_id),
                     context=context)


def send_attachment(attachment, data: bytes) -> Response:
    response = Response(data, mimetype=attachment.content_type)
    from werkzeug.http import dump_options_header

    response.headers["Content-Disposition"] = dump_options_header("attachment", {"filename": attachment.filename})
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/attachments/<public_id>")
@access_rule("patient")
def attachment(public_id):
    return send_attachment(*services.patient_attachment(current_user, public_id))


def _raise_upload_limit():
    """Messages may carry up to 3 files of MESSAGING_ATTACHMENT_MAX_BYTES each: raise this request's body
    limit on the messaging form posts only (before CSRF reads the form; everything else keeps the app's
    MAX_CONTENT_LENGTH)."""
    if request.method == "POST" and request.path.startswith(("/messages/", "/inbox/")):
        request.max_content_length = attachments.MAX_FILES * attachments.max_bytes() + 1024 * 1024
    return None


@bp.record_once
def _install(state):
    labels.install(state.app)
    state.app.before_request_funcs.setdefault(None, []).insert(0, _raise_upload_limit)

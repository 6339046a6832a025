"""Notifications: the patient's preferences page, the Twilio inbound-text webhook, the support queue of
texts nobody handled, and the CLI (`flask notices sweep`, `flask notices receive-text`)."""

from __future__ import annotations

import uuid

import click
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.errors import DomainError, Forbidden
from portal.core.forms import EmptyForm
from portal.core.registry import (
    PATIENT_HOME,
    STAFF_HOME,
    for_function,
    for_patients,
    home_cards,
    nav,
    staff_patient_panels,
)
from portal.core.web import form_page
from portal.extensions import csrf, db
from portal.notifications import channels, services
from portal.notifications.forms import ChoicesForm, CodeForm, PhoneForm

bp = Blueprint("notifications", __name__, cli_group="notices")
bp.record_once(lambda state: services.init_app(state.app))

nav.add("notifications.texts", _l("Incoming texts"), order=65, show=for_function("notices_view"),
        badge=lambda user: services.waiting_count(user) or None)
home_cards.add("notifications", order=85, audience=PATIENT_HOME, template="notifications/_card_home.html",
               scalars=lambda user, patient: services.home_card_scalars(patient),
               build=lambda user, patient, values: services.home_card(patient, values), show=for_patients)
home_cards.add("texts_waiting", order=50, audience=STAFF_HOME, template="notifications/_card_staff.html",
               build=lambda user, patient: {"waiting": services.waiting_count(user)},
               show=for_function("notices_view"))
staff_patient_panels.add("notifications", order=30, template="notifications/_staff_panel.html",
                         build=lambda user, patient: services.staff_panel(user, patient),
                         show=for_function("notices_view"))

PAGE = "notifications/preferences.html"


def _page(**forms):
    """The preferences page's data and its three forms (the submitted one keeps its values/errors)."""
    def context():
        data = services.preferences_page(current_user)
        choices_form = forms.get("choices_form") or ChoicesForm(formdata=None, data=data["choices"])
        return dict(data, choices_form=choices_form, phone_form=forms.get("phone_form") or PhoneForm(formdata=None),
                    code_form=forms.get("code_form") or CodeForm(formdata=None), empty_form=EmptyForm())
    return context


@bp.route("/account/notifications", methods=["GET", "POST"])
@access_rule("patient")
def preferences():
    form = ChoicesForm()
    return form_page(form, PAGE, lambda f: services.save_choices(current_user, f.choices()),
                     success=_("Your choices are saved."), redirect_to=url_for("notifications.preferences"),
                     context=_page(choices_form=form if form.is_submitted() else None))


@bp.route("/account/notifications/phone", methods=["POST"])
@access_rule("patient")
def add_phone():
    form = PhoneForm()
    return form_page(form, PAGE, lambda f: services.start_phone_verification(current_user, f.phone.data,
                                                                             f.consent.data),
                     success=_("We texted you a 6-digit code. Enter it below to confirm your number."),
                     redirect_to=url_for("notifications.preferences", _anchor="phone-h"),
                     context=_page(phone_form=form))


@bp.route("/account/notifications/phone/verify", methods=["POST"])
@access_rule("patient")
def verify_phone():
    form = CodeForm()
    return form_page(form, PAGE, lambda f: services.confirm_phone(current_user, f.code.data),
                     success=_("Your mobile number is confirmed. Choose below what we text you."),
                     redirect_to=url_for("notifications.preferences", _anchor="choices-h"),
                     context=_page(code_form=form))


@bp.route("/account/notifications/phone/cancel", methods=["POST"])
@access_rule("patient")
def cancel_phone():
    if EmptyForm().validate_on_submit():
        services.cancel_phone_verification(current_user)
    return redirect(url_for("notifications.preferences", _anchor="phone-h"))


@bp.route("/account/notifications/phone/remove", methods=["POST"])
@access_rule("patient")
def remove_phone():
    if EmptyForm().validate_on_submit():
        services.remove_phone(current_user)
        flash(_("We will not text you any more. Everything we would have texted now comes by email."), "success")
    return redirect(url_for("notifications.preferences"))


@bp.route("/sms/inbound", methods=["POST"])
@csrf.exempt  # a webhook: Twilio signs it (X-Twilio-Signature), it carries no session or CSRF token
@access_rule("public")
def sms_inbound():
    if not channels.valid_twilio_request():
        current_app.logger.warning("inbound text refused: missing or wrong X-Twilio-Signature")
        raise Forbidden()
    form = request.form
    if not form.get("MessageSid") or not form.get("From"):
        return Response(channels.twiml(None), status=400, mimetype="text/xml")
    reply = services.receive_text(message_sid=form["MessageSid"], from_phone=form["From"], to_phone=form.get("To"),
                                  body=form.get("Body"))
    return Response(channels.twiml(reply), mimetype="text/xml")


@bp.route("/notices/texts")
@access_rule("staff", function="notices_view")
def texts():
    return render_template("notifications/texts.html", **services.inbound_queue(current_user), form=EmptyForm())


@bp.route("/notices/texts/<public_id>/resolve", methods=["POST"])
@access_rule("staff", function="notices_view")
def resolve_text(public_id):
    if EmptyForm().validate_on_submit():
        services.resolve_inbound(current_user, public_id)
        flash(_("Marked as dealt with."), "success")
    return redirect(url_for("notifications.texts"))


# --- command line --------------------------------------------------------------------------------

@bp.cli.command("sweep")
def sweep_command():
    """Send notices that are due (texts held for quiet hours, retries); what the periodic task does."""
    from portal.notifications.tasks import sweep_once

    with current_app.test_request_context():
        result = sweep_once()
    click.echo(f"{result['due']} notice(s) due, {result['handed_over']} sent or handed to Celery, "
               f"{result['stale']} stale claim(s) marked failed.")


@bp.cli.command("receive-text")
@click.argument("sender")
@click.argument("body")
def receive_text_command(sender, body):
    """Pretend SENDER texted BODY to the clinic (file backend only): the reply goes to SMS_FILE_DIR."""
    if current_app.config.get("SMS_BACKEND") != "file":
        raise click.ClickException("only with SMS_BACKEND=file; with Twilio, text the clinic's number")
    with current_app.test_request_context():
        try:
            reply = services.receive_text(message_sid=f"SMlocal{uuid.uuid4().hex}", from_phone=sender,
                                          to_phone=channels.sender_label(), body=body)
        except DomainError as err:
            raise click.ClickException(err.message) from None
        db.session.commit()
        if reply:
            channels.send_sms(services.sender_phone(sender), reply)
    click.echo(f"Reply: {reply}" if reply else "No reply (the number is opted out); the text was kept.")

"""Patient pages (/appointments): list, booking, one appointment, cancel, reschedule, calendar file,
video join, waitlist and offers, requests, eCheck-in, feedback; and the public pages reached by the
signed links in reminders. Routes parse, load through the scope (inside the services) and call one
service."""

from __future__ import annotations

import secrets
from datetime import date

from flask import Blueprint, Response, flash, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.errors import DomainError, NotFound
from portal.core.forms import EmptyForm
from portal.core.registry import PATIENT_HOME, STAFF_HOME, for_function, for_patients, home_cards, nav, \
    staff_patient_panels
from portal.core.web import current_lang, field_error, form_page
from portal.scheduling import checkin, feedback, inbound, reminders, services, waitlist  # noqa: F401 (inbound: registers the C/R text handler)
from portal.scheduling.forms import (ContactForm, FeedbackForm, InsuranceForm, LinkActionForm, MedicationsForm,
                                     RequestForm, ReviewForm, WaitlistForm, WaitlistJoinForm, questionnaire_form)
from portal.scheduling.timefmt import install_filters

bp = Blueprint("appointments", __name__, url_prefix="/appointments")
install_filters(bp)

nav.add("appointments.index", _l("Appointments"), order=30, show=for_patients)
home_cards.add("appointments", order=5, audience=PATIENT_HOME, template="scheduling/_card_upcoming.html",
               build=services.upcoming_card)
home_cards.add("schedule_today", order=5, audience=STAFF_HOME, template="scheduling/_card_today.html",
               build=services.staff_today_card, show=for_function("schedule"))
staff_patient_panels.add("appointments", order=20, template="scheduling/_panel_patient.html",
                         build=services.patient_panel, show=for_function("schedule"))


def _week_arg() -> date | None:
    raw = (request.args.get("week") or "")[:10]
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _arg(name: str) -> str | None:
    value = (request.args.get(name) or "").strip()
    return value[:32] or None


# --- list and booking ------------------------------------------------------------------------------

@bp.route("")
@access_rule("patient")
def index():
    return render_template("scheduling/index.html", **services.my_appointments(current_user), form=EmptyForm())


@bp.route("/book")
@access_rule("patient")
def book():
    from portal.patients.services import own_patient

    choice = services.booking_choice(current_user, own_patient(current_user), type_id=_arg("type"),
                                     provider_id=_arg("provider"), location_id=_arg("location"), week=_week_arg(),
                                     reschedule_id=_arg("reschedule"))
    return render_template("scheduling/book.html", c=choice, form=EmptyForm(), waitlist_form=WaitlistJoinForm(),
                           endpoint="appointments.book", review_endpoint="appointments.review", staff=False)


def _review_page(form, status=200, alternatives=None, held=None):
    try:
        ctx = held or services.review_context(current_user, form.visit_type.data, form.slot.data,
                                              form.reschedule.data or None)
    except NotFound:
        flash(_("Choose a time from the list."), "error")
        return redirect(url_for("appointments.book"))
    return render_template("scheduling/review.html", form=form, s=ctx, alternatives=alternatives or [],
                           confirm_endpoint="appointments.confirm", staff=False), status


@bp.route("/book/review", methods=["POST"])
@access_rule("patient")
def review():
    """A time was chosen: hold it for a few minutes and show the review page."""
    form = ReviewForm()
    if not form.validate_on_submit():
        return redirect(url_for("appointments.book"))
    try:
        held = services.patient_hold(current_user, form.visit_type.data, form.slot.data, form.reschedule.data or None)
    except services.SlotTaken as err:
        field_error(form, err)
        return _review_page(form, 409, err.alternatives)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("appointments.book", type=form.visit_type.data or None))
    form.hold_key.data = held["hold_key"]
    form.booking_key.data = secrets.token_hex(16)
    return _review_page(form, held=held)


@bp.route("/book/confirm", methods=["POST"])
@access_rule("patient")
def confirm():
    form = ReviewForm()
    if not form.validate_on_submit():
        return _review_page(form, 400) if form.is_submitted() else redirect(url_for("appointments.book"))
    try:
        appointment = services.patient_book(current_user, form.visit_type.data, form.slot.data, form.reason.data,
                                            form.booking_key.data or None, form.hold_key.data or None,
                                            form.reschedule.data or None)
    except services.SlotTaken as err:
        field_error(form, err)
        form.booking_key.data = secrets.token_hex(16)  # the next attempt is a new booking
        return _review_page(form, 409, err.alternatives)
    except DomainError as err:
        field_error(form, err)
        return _review_page(form, 400)
    if form.reschedule.data:
        flash(_("Your appointment has been moved. We sent you the new details."), "success")
    else:
        flash(_("You are booked. We sent you a confirmation with a calendar file."), "success")
    return redirect(url_for("appointments.detail", public_id=appointment.public_id))


@bp.route("/request", methods=["GET", "POST"])
@access_rule("patient")
def request_visit():
    vt = services.visit_type_by_public_id(_arg("type"))
    if vt is None:
        return redirect(url_for("appointments.book"))
    form = RequestForm()
    form.provider.choices = [("any", _("Anyone available"))] + [(p.public_id, p.label)
                                                                  for p in services.slots.providers_for(vt)]
    return form_page(form, "scheduling/request.html",
                     lambda f: services.create_request(current_user, vt.public_id, provider_id=f.provider.data,
                                                       location_id=None, preferred=f.preferred.data or [],
                                                       note=f.note.data, reason=f.reason.data),
                     success=_("Your request has been sent. The clinic will contact you with a time."),
                     redirect_to=url_for("appointments.index"), context={"visit_type": vt})


@bp.route("/requests/<public_id>/withdraw", methods=["POST"])
@access_rule("patient")
def withdraw_request(public_id):
    if EmptyForm().validate_on_submit():
        try:
            services.withdraw_request(current_user, public_id)
            flash(_("Your request has been withdrawn."), "success")
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("appointments.index"))


# --- one appointment ---------------------------------------------------------------------------------

@bp.route("/<public_id>")
@access_rule("patient")
def detail(public_id):
    return render_template("scheduling/detail.html", **services.appointment_page(current_user, public_id),
                           form=EmptyForm(), waitlist_form=WaitlistForm())


@bp.route("/<public_id>/cancel", methods=["GET", "POST"])
@access_rule("patient")
def cancel(public_id):
    return form_page(EmptyForm(), "scheduling/cancel.html", lambda f: services.patient_cancel(current_user, public_id),
                     success=_("Your appointment is cancelled. We sent you a note for your calendar."),
                     redirect_to=url_for("appointments.index"),
                     context=lambda: services.appointment_page(current_user, public_id))


@bp.route("/<public_id>/confirm", methods=["POST"])
@access_rule("patient")
def confirm_attendance(public_id):
    if EmptyForm().validate_on_submit():
        try:
            services.patient_confirm(current_user, public_id)
            flash(_("Thank you, your appointment is confirmed."), "success")
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("appointments.detail", public_id=public_id))


@bp.route("/<public_id>/calendar.ics")
@access_rule("patient")
def calendar(public_id):
    data, _appointment = services.calendar_file(current_user, public_id)
    return Response(data, mimetype="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="appointment.ics"'})


@bp.route("/<public_id>/join")
@access_rule("patient")
def join(public_id):
    try:
        return redirect(services.video_url(current_user, public_id))
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("appointments.detail", public_id=public_id))


@bp.route("/<public_id>/waitlist", methods=["POST"])
@access_rule("patient")
def join_waitlist(public_id):
    form = WaitlistForm()
    if form.validate_on_submit():
        try:
            waitlist.join(current_user, appointment_id=public_id, any_provider=form.any_provider.data,
                          not_after=form.not_after.data)
            flash(_("You are on the waitlist. We will tell you if an earlier time opens."), "success")
        except DomainError as err:
            flash(err.message, "error")
    else:
        flash(_("Check the date and try again."), "error")
    return redirect(url_for("appointments.detail", public_id=public_id))


@bp.route("/<public_id>/feedback", methods=["GET", "POST"])
@access_rule("patient")
def give_feedback(public_id):
    try:
        appointment = feedback.feedback_target(current_user, public_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("appointments.detail", public_id=public_id))
    return form_page(FeedbackForm(), "scheduling/feedback.html",
                     lambda f: feedback.give(current_user, public_id, int(f.rating.data), f.comment.data),
                     success=_("Thank you for your feedback. It helps the clinic improve."),
                     redirect_to=url_for("appointments.index"), context={"appointment": appointment})


# --- waitlist and offers --------------------------------------------------------------------------------

@bp.route("/waitlist", methods=["POST"])
@access_rule("patient")
def waitlist_join():
    form = WaitlistJoinForm()
    if form.validate_on_submit():
        try:
            waitlist.join(current_user, visit_type_id=form.visit_type.data, provider_id=form.provider.data or None,
                          any_provider=form.any_provider.data or not form.provider.data,
                          not_after=form.not_after.data)
            flash(_("You are on the waitlist. We will tell you if a time opens."), "success")
            return redirect(url_for("appointments.index"))
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("appointments.book", type=form.visit_type.data or None))


@bp.route("/waitlist/<public_id>/leave", methods=["POST"])
@access_rule("patient")
def waitlist_leave(public_id):
    if EmptyForm().validate_on_submit():
        waitlist.leave(current_user, public_id)
        flash(_("You have left the waitlist."), "success")
    return redirect(url_for("appointments.index"))


@bp.route("/offers/<public_id>")
@access_rule("patient")
def offer(public_id):
    return render_template("scheduling/offer.html", **waitlist.offer_page(current_user, public_id), form=EmptyForm())


@bp.route("/offers/<public_id>/accept", methods=["POST"])
@access_rule("patient")
def offer_accept(public_id):
    def done(appointment):
        flash(_("The earlier time is yours. We sent you the new details."), "success")
        return redirect(url_for("appointments.detail", public_id=appointment.public_id))

    response = form_page(EmptyForm(), "scheduling/offer.html", lambda f: waitlist.accept(current_user, public_id),
                         on_success=done, failure_status=409,
                         context=lambda: waitlist.offer_page(current_user, public_id))
    return response


@bp.route("/offers/<public_id>/decline", methods=["POST"])
@access_rule("patient")
def offer_decline(public_id):
    if EmptyForm().validate_on_submit():
        try:
            waitlist.decline(current_user, public_id)
            flash(_("No problem. You stay on the waitlist."), "success")
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("appointments.index"))


# --- eCheck-in -------------------------------------------------------------------------------------------

@bp.route("/<public_id>/checkin")
@access_rule("patient")
def checkin_overview(public_id):
    return render_template("scheduling/checkin.html", **checkin.page(current_user, public_id))


def _step_page(public_id, form_cls, template, save, defaults=None):
    try:
        state = checkin.step_state(current_user, public_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("appointments.detail", public_id=public_id))
    form = form_cls() if request.method == "POST" else form_cls(data=defaults(state) if defaults else None)
    return form_page(form, template, save, success=_("Saved."),
                     redirect_to=url_for("appointments.checkin_overview", public_id=public_id),
                     context=lambda: state)


@bp.route("/<public_id>/checkin/contact", methods=["GET", "POST"])
@access_rule("patient")
def checkin_contact(public_id):
    def defaults(state):
        src = state["checkin"] if state["checkin"] and state["checkin"].contact_done_at else state["patient"]
        return {k: getattr(src, k, None) for k in ("phone", "email", "address_line", "city", "state", "postal_code")}

    return _step_page(public_id, ContactForm, "scheduling/checkin_contact.html",
                      lambda f: checkin.save_contact(current_user, public_id, phone=f.phone.data, email=f.email.data,
                                                     address_line=f.address_line.data, city=f.city.data,
                                                     state=f.state.data, postal_code=f.postal_code.data), defaults)


@bp.route("/<public_id>/checkin/insurance", methods=["GET", "POST"])
@access_rule("patient")
def checkin_insurance(public_id):
    def defaults(state):
        c = state["checkin"]
        return {"payer": c.insurance_payer, "member_id": c.insurance_member_id, "group": c.insurance_group,
                "no_insurance": c.no_insurance} if c else {}

    def save(f):
        front = f.card_front.data.read() if f.card_front.data else None
        back = f.card_back.data.read() if f.card_back.data else None
        return checkin.save_insurance(current_user, public_id, no_insurance=f.no_insurance.data, payer=f.payer.data,
                                      member_id=f.member_id.data, group=f.group.data, front=front, back=back)

    return _step_page(public_id, InsuranceForm, "scheduling/checkin_insurance.html", save, defaults)


@bp.route("/<public_id>/checkin/medications", methods=["GET", "POST"])
@access_rule("patient")
def checkin_medications(public_id):
    def defaults(state):
        c = state["checkin"]
        if c is None or c.meds_current is None:
            return {}
        return {"current": "yes" if c.meds_current else "no", "changes": c.meds_changes}

    return _step_page(public_id, MedicationsForm, "scheduling/checkin_medications.html",
                      lambda f: checkin.save_medications(current_user, public_id, current=f.current.data == "yes",
                                                         changes=f.changes.data), defaults)


@bp.route("/<public_id>/checkin/questionnaire", methods=["GET", "POST"])
@access_rule("patient")
def checkin_questionnaire(public_id):
    try:
        state = checkin.questionnaire_state(current_user, public_id)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for("appointments.detail", public_id=public_id))
    definition = state["questionnaire"]
    form = questionnaire_form(definition, data=state["answers"],
                              formdata=request.form if request.method == "POST" else None)
    final = request.form.get("submit_final") == "1"

    def save(f):
        answers = {q.key: f[q.key].data for q in definition["questions"]}
        if final:
            missing = [q for q in definition["questions"] if q.required and not answers.get(q.key)]
            for q in missing:
                f[q.key].errors = list(f[q.key].errors) + [_("Please answer this question.")]
            if missing:
                raise DomainError(_("Some answers are missing. You can also save and finish later."))
        return checkin.save_questionnaire(current_user, public_id, answers, final=final)

    response = form_page(form, "scheduling/checkin_questionnaire.html", save,
                         success=_("Your answers are saved.") if final
                         else _("Saved. You can come back and finish later."),
                         redirect_to=url_for("appointments.checkin_overview", public_id=public_id),
                         context=lambda: state)
    return response


@bp.route("/cards/<public_id>")
@access_rule("patient")
def card(public_id):
    return _send_card(public_id)


def _send_card(public_id):
    card_row, path = checkin.card_file(current_user, public_id)
    try:
        response = send_file(path, mimetype=card_row.content_type, as_attachment=True,
                             download_name=f"insurance-card-{card_row.side}.{path.suffix.lstrip('.')}",
                             max_age=0)
    except FileNotFoundError:
        raise NotFound() from None
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- signed one-click links (public: reminders work without signing in) -----------------------------------

@bp.route("/r/<token>")
@access_rule("public")
def link(token):
    """Move the link's token out of the URL into the session, then show the clean page (the token
    is never logged twice, never in a Referer); nothing changes until the patient presses a button
    (so mail scanners that open links cannot cancel a visit)."""
    session["appointment_link"] = token[:400]
    return redirect(url_for("appointments.respond"))


@bp.route("/respond", methods=["GET", "POST"])
@access_rule("public")
def respond():
    token = session.get("appointment_link")
    form = LinkActionForm()
    state = reminders.link_state(token)

    def done(action):
        session.pop("appointment_link", None)
        return render_template("scheduling/respond.html", state=state, done=action, form=form)

    return form_page(form, "scheduling/respond.html", lambda f: reminders.use_link(token, f.action.data),
                     on_success=done, failure_status=409, context=lambda: {"state": state, "done": None})


@bp.record_once
def _template_globals(state):
    """Label helpers as Jinja globals (imported macros see globals, not the request context)."""
    from portal.scheduling.labels import template_globals

    state.app.jinja_env.globals.update(template_globals(), sched_lang=current_lang)

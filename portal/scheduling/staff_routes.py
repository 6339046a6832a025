"""Staff pages (/schedule): the day/week schedule, one appointment (check-in status, arrival,
no-show, cancel), booking for a patient, requests, visit feedback, and the admin set-up."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.errors import DomainError, NotFound
from portal.core.forms import EmptyForm
from portal.core.registry import for_function, nav
from portal.core.web import field_error, form_page
from portal.scheduling import feedback, services, setup
from portal.scheduling.forms import (CancelForm, DeclineForm, ExceptionForm, FeedbackFilterForm, LocationForm,
                                     ProviderForm, ScheduleFilterForm, StaffBookForm, TemplateForm, VisitTypeForm)
from portal.scheduling.routes import _send_card

bp = Blueprint("schedule", __name__, url_prefix="/schedule")
nav.add("schedule.index", _l("Schedule"), order=40, show=for_function("schedule"))
nav.add("schedule.setup_overview", _l("Scheduling set-up"), order=45, show=for_function("scheduling_setup"))
nav.add("schedule.feedback_report", _l("Visit feedback"), order=46, show=for_function("feedback_view"))


def _arg(name: str) -> str | None:
    value = (request.args.get(name) or "").strip()
    return value[:32] or None


# --- the schedule --------------------------------------------------------------------------------

@bp.route("")
@access_rule("staff", function="schedule")
def index():
    form = ScheduleFilterForm(request.args)
    valid = form.validate()
    day = form.day.data if valid and form.day.data else services.clinic_today()
    span = 7 if valid and form.span.data == "week" else 1
    if span == 7:
        day = day - timedelta(days=day.weekday())
    ctx = services.schedule(current_user, day=day, days=span, provider_id=form.provider.data if valid else None,
                            location_id=form.location.data if valid else None)
    form.provider.choices = [("", _("All providers"))] + [(p.public_id, p.label) for p in ctx["providers"]]
    form.location.choices = [("", _("All locations"))] + [(loc.public_id, loc.name) for loc in ctx["locations"]]
    return render_template("scheduling/staff/schedule.html", form=form, **ctx,
                           prev_day=day - timedelta(days=span), next_day=day + timedelta(days=span))


@bp.route("/appointments/<public_id>")
@access_rule("staff", function="schedule")
def appointment(public_id):
    return render_template("scheduling/staff/appointment.html", **services.staff_appointment(current_user, public_id),
                           form=EmptyForm(), cancel_form=CancelForm())


@bp.route("/appointments/<public_id>/cancel", methods=["POST"])
@access_rule("staff", function="schedule")
def cancel(public_id):
    form = CancelForm()
    if form.validate_on_submit():
        try:
            services.staff_cancel(current_user, public_id, form.note.data)
            flash(_("The appointment is cancelled and the patient has been told."), "success")
        except DomainError as err:
            flash(err.message, "error")
    else:
        flash(_("Check the note and try again."), "error")
    return redirect(url_for("schedule.appointment", public_id=public_id))


@bp.route("/appointments/<public_id>/status", methods=["POST"])
@access_rule("staff", function="schedule")
def mark(public_id):
    if EmptyForm().validate_on_submit():
        try:
            services.mark_status(current_user, public_id, (request.form.get("mark") or "")[:16])
            flash(_("Saved."), "success")
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("schedule.appointment", public_id=public_id))


@bp.route("/cards/<public_id>")
@access_rule("staff", function="schedule")
def card(public_id):
    return _send_card(public_id)


# --- booking for a patient -----------------------------------------------------------------------

@bp.route("/book")
@access_rule("staff", function="schedule")
def book():
    patient_id = _arg("patient")
    if not patient_id:
        return render_template("scheduling/staff/book_start.html")
    week = None
    raw = (request.args.get("week") or "")[:10]
    if raw:
        try:
            week = date.fromisoformat(raw)
        except ValueError:
            week = None
    patient, choice = services.staff_booking_choice(current_user, patient_id, type_id=_arg("type"),
                                                    provider_id=_arg("provider"), location_id=_arg("location"),
                                                    week=week, reschedule_id=_arg("reschedule"))
    req = services.request_for_staff(current_user, _arg("request")) if _arg("request") else None
    return render_template("scheduling/book.html", c=choice, patient=patient, request_row=req, form=EmptyForm(),
                           endpoint="schedule.book", review_endpoint="schedule.review", staff=True)


def _staff_review(form, status=200, alternatives=None):
    from portal.core.access import patient_for

    try:
        ctx = services.review_context(current_user, form.visit_type.data, form.slot.data,
                                      form.reschedule.data or None)
        patient = patient_for(current_user, form.patient.data)
    except NotFound:
        flash(_("Choose a time from the list."), "error")
        return redirect(url_for("schedule.book"))
    return render_template("scheduling/review.html", form=form, s=ctx, alternatives=alternatives or [],
                           confirm_endpoint="schedule.confirm", staff=True, patient=patient), status


@bp.route("/book/review", methods=["POST"])
@access_rule("staff", function="schedule")
def review():
    form = StaffBookForm()
    if not form.validate_on_submit():
        return redirect(url_for("schedule.book"))
    form.booking_key.data = secrets.token_hex(16)
    return _staff_review(form)


@bp.route("/book/confirm", methods=["POST"])
@access_rule("staff", function="schedule")
def confirm():
    form = StaffBookForm()
    if not form.validate_on_submit():
        return _staff_review(form, 400) if form.is_submitted() else redirect(url_for("schedule.book"))
    try:
        if form.reschedule.data:
            from portal.core.access import owned_or_404
            from portal.scheduling.models import Appointment

            appointment = services.reschedule(current_user, owned_or_404(Appointment, form.reschedule.data,
                                                                         current_user), form.slot.data, staff=True)
        else:
            appointment = services.staff_book(current_user, form.patient.data, form.visit_type.data, form.slot.data,
                                              reason=form.reason.data, booking_key=form.booking_key.data or None,
                                              request_id=form.request_id.data or None)
    except services.SlotTaken as err:
        field_error(form, err)
        form.booking_key.data = secrets.token_hex(16)
        return _staff_review(form, 409, err.alternatives)
    except DomainError as err:
        field_error(form, err)
        return _staff_review(form, 400)
    flash(_("Booked. The patient has been sent a confirmation."), "success")
    return redirect(url_for("schedule.appointment", public_id=appointment.public_id))


# --- requests --------------------------------------------------------------------------------------

@bp.route("/requests")
@access_rule("staff", function="schedule")
def requests():
    return render_template("scheduling/staff/requests.html", requests=services.open_requests(current_user),
                           form=DeclineForm())


@bp.route("/requests/<public_id>/decline", methods=["POST"])
@access_rule("staff", function="schedule")
def decline_request(public_id):
    form = DeclineForm()
    if form.validate_on_submit():
        try:
            services.decline_request(current_user, public_id, form.note.data)
            flash(_("The request is closed and the patient has been told."), "success")
        except DomainError as err:
            flash(err.message, "error")
    return redirect(url_for("schedule.requests"))


# --- feedback ------------------------------------------------------------------------------------

@bp.route("/feedback")
@access_rule("staff", function="feedback_view")
def feedback_report():
    form = FeedbackFilterForm(request.args)
    valid = form.validate()
    ctx = feedback.report(current_user, days=int(form.days.data or 90) if valid else 90,
                          provider_id=form.provider.data if valid else None,
                          location_id=form.location.data if valid else None)
    form.provider.choices = [("", _("All providers"))] + [(p.public_id, p.label) for p in ctx["providers"]]
    form.location.choices = [("", _("All locations"))] + [(loc.public_id, loc.name) for loc in ctx["locations"]]
    return render_template("scheduling/staff/feedback.html", form=form, **ctx)


# --- set-up (admin) ------------------------------------------------------------------------------

@bp.route("/setup")
@access_rule("staff", function="scheduling_setup")
def setup_overview():
    return render_template("scheduling/setup/index.html", **setup.overview(current_user), form=EmptyForm())



@bp.route("/setup/locations/new", methods=["GET", "POST"], defaults={"public_id": None})
@bp.route("/setup/locations/<public_id>", methods=["GET", "POST"])
@access_rule("staff", function="scheduling_setup")
def location_edit(public_id):
    row = setup.get_location(current_user, public_id) if public_id else None
    form = LocationForm(obj=row) if request.method == "GET" and row else LocationForm()
    return form_page(form, "scheduling/setup/location.html",
                     lambda f: setup.save_location(current_user, public_id, name=f.name.data, address=f.address.data,
                                                   phone=f.phone.data, timezone=f.timezone.data.strip(),
                                                   active=f.active.data),
                     success=_("Saved."), redirect_to=url_for("schedule.setup_overview"),
                     context=lambda: {"row": row, "timezones": setup.timezone_choices()})


@bp.route("/setup/providers/new", methods=["GET", "POST"], defaults={"public_id": None})
@bp.route("/setup/providers/<public_id>", methods=["GET", "POST"])
@access_rule("staff", function="scheduling_setup")
def provider_edit(public_id):
    row = setup.get_provider(current_user, public_id) if public_id else None
    form = ProviderForm(obj=row) if request.method == "GET" and row else ProviderForm()
    form.visit_types.choices = [(t.public_id, t.name) for t in setup.all_visit_types(current_user)]
    if request.method == "GET" and row:
        form.visit_types.data = [t.public_id for t in row.visit_types]
    return form_page(form, "scheduling/setup/provider.html",
                     lambda f: setup.save_provider(current_user, public_id, display_name=f.display_name.data,
                                                   credentials=f.credentials.data, speciality=f.speciality.data,
                                                   visit_type_ids=f.visit_types.data or [], active=f.active.data),
                     success=_("Saved."), redirect_to=url_for("schedule.setup_overview"), context={"row": row})


@bp.route("/setup/visit-types/new", methods=["GET", "POST"], defaults={"public_id": None})
@bp.route("/setup/visit-types/<public_id>", methods=["GET", "POST"])
@access_rule("staff", function="scheduling_setup")
def visit_type_edit(public_id):
    row = setup.get_visit_type(current_user, public_id) if public_id else None
    form = VisitTypeForm(obj=row) if request.method == "GET" and row else VisitTypeForm()
    fields = ("name", "name_es", "description", "description_es", "duration_minutes", "modality", "booking",
              "min_lead_minutes", "max_ahead_days", "cancel_cutoff_hours", "questionnaire", "active")
    return form_page(form, "scheduling/setup/visit_type.html",
                     lambda f: setup.save_visit_type(current_user, public_id, **{k: f[k].data for k in fields}),
                     success=_("Saved."), redirect_to=url_for("schedule.setup_overview"), context={"row": row})


@bp.route("/setup/providers/<public_id>/hours", methods=["GET", "POST"])
@access_rule("staff", function="scheduling_setup")
def hours(public_id):
    ctx = setup.provider_templates(current_user, public_id)
    form = TemplateForm()
    form.location.choices = [(loc.public_id, f"{loc.name} ({loc.timezone})") for loc in ctx["locations"]]
    return form_page(form, "scheduling/setup/hours.html",
                     lambda f: setup.add_templates(current_user, public_id, location_id=f.location.data,
                                                   weekdays=[int(d) for d in f.weekdays.data], start=f.start.data,
                                                   end=f.end.data, valid_from=f.valid_from.data,
                                                   valid_until=f.valid_until.data),
                     success=_("Hours added."), redirect_to=url_for("schedule.hours", public_id=public_id),
                     context=lambda: dict(ctx, delete_form=EmptyForm()))


@bp.route("/setup/hours/<public_id>/delete", methods=["POST"])
@access_rule("staff", function="scheduling_setup")
def hours_delete(public_id):
    if EmptyForm().validate_on_submit():
        row = setup.delete_template(current_user, public_id)
        flash(_("Hours removed. Booked appointments are not changed."), "success")
        return redirect(url_for("schedule.hours", public_id=row.provider.public_id))
    return redirect(url_for("schedule.setup_overview"))


@bp.route("/setup/exceptions/new", methods=["GET", "POST"])
@access_rule("staff", function="scheduling_setup")
def exception_new():
    ctx = setup.overview(current_user)
    form = ExceptionForm()
    form.provider.choices = [("", _("Everyone"))] + [(p.public_id, p.label) for p in ctx["providers"]]
    form.location.choices = [("", _("All locations"))] + [(loc.public_id, loc.name) for loc in ctx["locations"]]
    return form_page(form, "scheduling/setup/exception.html",
                     lambda f: setup.add_exception(current_user, provider_id=f.provider.data or None,
                                                   location_id=f.location.data or None, kind=f.kind.data,
                                                   label=f.label.data, first_day=f.first_day.data,
                                                   last_day=f.last_day.data, start=f.start.data, end=f.end.data),
                     success=_("Exception added. Booked appointments in that time are not moved: see the list."),
                     redirect_to=url_for("schedule.setup_overview"))


@bp.route("/setup/exceptions/<public_id>/delete", methods=["POST"])
@access_rule("staff", function="scheduling_setup")
def exception_delete(public_id):
    if EmptyForm().validate_on_submit():
        setup.delete_exception(current_user, public_id)
        flash(_("Exception removed."), "success")
    return redirect(url_for("schedule.setup_overview"))

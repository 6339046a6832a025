"""Staff pages of the records domain (/staff/records): the results queue and one result (hold, release,
review, comment: `results_review`), a patient's clinical record (`clinical_record`), and the FHIR import
upload (`records_import`). Billing and support have none of these functions, so they never see results.
Refill requests and questions about a result are inbox threads (the messaging domain), not a queue here."""

from __future__ import annotations

from datetime import datetime, time, timezone

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.forms import EmptyForm
from portal.core.i18n import clinic_tz
from portal.core.registry import STAFF_HOME, for_function, home_cards, nav, staff_patient_panels
from portal.core.web import form_page
from portal.records import services
from portal.records.forms import CommentForm, HoldForm, ImportForm

bp = Blueprint("records_staff", __name__, url_prefix="/staff/records")
nav.add("records_staff.queue", _l("Results to review"), order=40, show=for_function("results_review"))
nav.add("records_staff.import_page", _l("Import records"), order=60, show=for_function("records_import"))
staff_patient_panels.add("records", order=10, template="records/_panel_patient.html", build=services.patient_panel,
                         show=for_function("clinical_record"))
home_cards.add("results_queue", order=4, audience=STAFF_HOME, template="records/_card_queue.html",
               build=services.queue_card, show=for_function("results_review"))


@bp.route("/results")
@access_rule("staff", function="results_review")
def queue():
    return render_template("records/staff/queue.html", **services.review_queue(current_user), form=EmptyForm())


def _result_page(public_id, hold_form=None, comment_form=None, status=200):
    data = services.staff_result(current_user, public_id)
    return render_template("records/staff/result.html", **data, hold_form=hold_form or HoldForm(formdata=None),
                           comment_form=comment_form or CommentForm(formdata=None), form=EmptyForm()), status


@bp.route("/results/<public_id>")
@access_rule("staff", function="results_review")
def result(public_id):
    return _result_page(public_id)


@bp.route("/results/<public_id>/hold", methods=["POST"])
@access_rule("staff", function="results_review")
def hold(public_id):
    form = HoldForm()

    def act(f):
        until = datetime.combine(f.until.data, time(8, 0), tzinfo=clinic_tz()).astimezone(timezone.utc)
        return services.hold_result(current_user, public_id, f.reason.data, until)

    if form.validate_on_submit():
        from portal.core.errors import DomainError
        from portal.core.web import field_error

        try:
            act(form)
        except DomainError as err:
            field_error(form, err)
            return _result_page(public_id, hold_form=form, status=400)
        flash(_("Result held. The patient will not see it until you release it or the hold ends."), "success")
        return redirect(url_for("records_staff.result", public_id=public_id))
    return _result_page(public_id, hold_form=form, status=400)


@bp.route("/results/<public_id>/release", methods=["POST"])
@access_rule("staff", function="results_review")
def release(public_id):
    form = EmptyForm()
    if form.validate_on_submit():
        if services.release_result(current_user, public_id):
            flash(_("Result released. The patient has been told a new result is ready."), "success")
        else:
            flash(_("This result was already released."), "info")
    return redirect(url_for("records_staff.result", public_id=public_id))


@bp.route("/results/reviewed", methods=["POST"])
@access_rule("staff", function="results_review")
def reviewed_normal():
    """The queue's "mark the normal results reviewed" button."""
    if EmptyForm().validate_on_submit():
        n = services.mark_normal_reviewed(current_user, request.form.getlist("result"))
        flash(ngettext("%(num)d normal result marked as reviewed.", "%(num)d normal results marked as reviewed.", n),
              "success")
    return redirect(url_for("records_staff.queue"))


@bp.route("/results/<public_id>/reviewed", methods=["POST"])
@access_rule("staff", function="results_review")
def reviewed(public_id):
    if EmptyForm().validate_on_submit():
        services.mark_reviewed(current_user, public_id)
        flash(_("Marked as reviewed."), "success")
    return redirect(url_for("records_staff.queue"))


@bp.route("/results/<public_id>/comment", methods=["POST"])
@access_rule("staff", function="results_review")
def comment(public_id):
    form = CommentForm()
    if form.validate_on_submit():
        services.comment_result(current_user, public_id, form.body.data)
        flash(_("Comment added. The patient sees it with the result."), "success")
        return redirect(url_for("records_staff.result", public_id=public_id))
    return _result_page(public_id, comment_form=form, status=400)


@bp.route("/patients/<public_id>")
@access_rule("staff", function="clinical_record")
def patient_record(public_id):
    return render_template("records/staff/record.html", **services.staff_record(current_user, public_id))


@bp.route("/import", methods=["GET", "POST"])
@access_rule("staff", function="records_import")
def import_page():
    form = ImportForm()

    def act(f):
        upload = f.file.data
        data = upload.read(50 * 1024 * 1024 + 1)
        if len(data) > 50 * 1024 * 1024:
            from portal.core.errors import DomainError

            raise DomainError(_("The file is larger than 50 MB: import it with `flask records import`."),
                              field="file")
        return services.import_upload(current_user, data, upload.filename or "upload.json", f.source.data)

    def done(result):
        flash(_("Imported %(n)d resources (%(new)d new, %(changed)d changed, %(same)d unchanged).",
                n=result.total, new=result.created, changed=result.updated, same=result.unchanged), "success")
        return redirect(url_for("records_staff.import_page"))

    return form_page(form, "records/staff/import.html", act, on_success=done, failure_status=422)

"""Billing staff pages (/billing/staff): accounts with balances and aging, one account's ledger (post a
charge or adjustment, issue a statement, refund a payment), CSV import, statement batch runs with their
progress, statements online and as PDF (either language), payments and refunds by day, CSV export."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.billing import services
from portal.billing.forms import EntryForm, ExportForm, ImportForm, RefundForm, RunForm
from portal.billing.routes import pdf_response
from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.core.forms import EmptyForm
from portal.core.registry import for_function, nav
from portal.core.web import current_lang, field_error, form_page

bp = Blueprint("billing_staff", __name__, url_prefix="/billing/staff")
nav.add("billing_staff.index", _l("Billing"), order=60, show=for_function("billing_ledger"))
nav.add("billing_staff.reports", _l("Billing reports"), order=62, show=for_function("billing_reports"))


@bp.route("")
@access_rule("staff", function="billing_ledger")
def index():
    q = (request.args.get("q") or "").strip()[:64]
    found = services.find_patients(current_user, q) if q else []
    return render_template("billing/staff/index.html", q=q, found=found,
                           accounts=services.accounts_with_balances(current_user, limit=50),
                           aging=services.aging_report(current_user), aging_form=EmptyForm(), run_form=RunForm())


@bp.route("/aging", methods=["POST"])
@access_rule("staff", function="billing_reports")
def recompute_aging():
    """Billing staff recompute the aging now (audited): on a worker, or inline where statement runs are."""
    back = url_for("billing_staff.reports" if request.form.get("back") == "reports" else "billing_staff.index")
    if not EmptyForm().validate_on_submit():
        flash(_("Please try again."), "error")
        return redirect(back), 303
    services.request_aging(current_user)
    if current_app.config.get("BILLING_RUN_INLINE"):
        services.compute_aging_snapshot(current_user)
        flash(_("The aging has been recomputed."), "success")
    else:
        from portal.billing.tasks import dispatch_aging

        dispatch_aging(current_user.id)
        flash(_("The aging is being recomputed. Reload the page in a minute to see the new figures."), "info")
    return redirect(back), 303


def _account_page(public_id, entry_form=None, status=200):
    ctx = services.staff_patient(current_user, public_id)
    return render_template("billing/staff/account.html", entry_form=entry_form or EntryForm(
        service_date=services.today_local()), issue_form=EmptyForm(), **ctx), status


@bp.route("/patients/<public_id>")
@access_rule("staff", function="billing_ledger")
def account(public_id):
    return _account_page(public_id)


@bp.route("/patients/<public_id>/entries", methods=["POST"])
@access_rule("staff", function="billing_ledger")
def post_entry(public_id):
    from portal.core.access import patient_for

    form = EntryForm()
    if form.validate():
        patient = patient_for(current_user, public_id)
        try:
            services.post_entry(current_user, patient, kind=form.kind.data, amount_cents=form.amount.cents,
                                service_date=form.service_date.data, description=form.description.data,
                                code=form.code.data, reason=form.reason.data)
        except DomainError as err:
            field_error(form, err)
        else:
            flash(_("Entry posted."), "success")
            return redirect(url_for("billing_staff.account", public_id=public_id))
    return _account_page(public_id, form, 400)


@bp.route("/patients/<public_id>/statement", methods=["POST"])
@access_rule("staff", function="billing_statements")
def issue(public_id):
    from portal.core.access import patient_for

    if not EmptyForm().validate_on_submit():
        return redirect(url_for("billing_staff.account", public_id=public_id))
    patient = patient_for(current_user, public_id)
    statement = services.issue_statement(current_user, patient)
    if statement is None:
        flash(_("Nothing new since the last statement: no statement issued."), "info")
        return redirect(url_for("billing_staff.account", public_id=public_id))
    flash(_("Statement %(number)s issued.", number=statement.label), "success")
    return redirect(url_for("billing_staff.statement", public_id=statement.public_id))


@bp.route("/import", methods=["GET", "POST"])
@access_rule("staff", function="billing_ledger")
def import_entries():
    form = ImportForm()
    errors = []

    def action(f):
        raw = f.file.data.read(2 * 1024 * 1024 + 1)
        if len(raw) > 2 * 1024 * 1024:
            raise DomainError(_("The file is larger than 2 MB."), field="file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DomainError(_("The file must be UTF-8 text."), field="file") from None
        try:
            return services.import_entries(current_user, text)
        except services.ImportError_ as exc:
            errors.extend(exc.errors)
            raise

    def done(n):
        flash(_("%(n)s lines imported.", n=n), "success")
        return redirect(url_for("billing_staff.index"))

    return form_page(form, "billing/staff/import.html", action, on_success=done,
                     context=lambda: {"line_errors": errors})


@bp.route("/runs", methods=["POST"])
@access_rule("staff", function="billing_statements")
def start_run():
    form = RunForm()
    if not form.validate_on_submit():
        flash(_("Please try again."), "error")
        return redirect(url_for("billing_staff.index")), 303
    run = services.start_run(current_user)
    if current_app.config.get("BILLING_RUN_INLINE"):
        services.process_run(run.id, commit=False)
    else:
        from portal.billing.tasks import dispatch_run

        dispatch_run(run.id)
    return redirect(url_for("billing_staff.run", public_id=run.public_id))


@bp.route("/runs/<public_id>")
@access_rule("staff", function="billing_statements")
def run(public_id):
    return render_template("billing/staff/run.html", run=services.load_run(current_user, public_id))


@bp.route("/statements/<public_id>")
@access_rule("staff", function="billing_statements")
def statement(public_id):
    return render_template("billing/statement.html", staff=True, **services.view_statement(current_user, public_id))


@bp.route("/statements/<public_id>.pdf")
@access_rule("staff", function="billing_statements")
def statement_pdf(public_id):
    lang = request.args.get("lang") if request.args.get("lang") in current_app.config["LANGUAGES"] else None
    ctx = services.view_statement(current_user, public_id, pdf=True)
    return pdf_response(ctx, lang or ctx["patient"].preferred_language or current_lang())


@bp.route("/payments/<public_id>/refund", methods=["GET", "POST"])
@access_rule("staff", function="billing_refunds")
def refund(public_id):
    payment = services.load_payment(current_user, public_id)
    left = -payment.amount_cents - services.refunded_cents(payment)
    form = RefundForm()

    def action(f):
        return services.refund_payment(current_user, public_id, amount_cents=f.amount.cents, reason=f.reason.data)

    return form_page(form, "billing/staff/refund.html", action, success=_("Refund posted."),
                     redirect_to=url_for("billing_staff.account", public_id=payment_patient(payment)),
                     context={"payment": payment, "left": left})


def payment_patient(payment) -> str:
    from portal.patients.models import Patient
    from portal.extensions import db

    return db.session.get(Patient, payment.patient_id).public_id


@bp.route("/reports")
@access_rule("staff", function="billing_reports")
def reports():
    today = services.today_local()
    form = ExportForm(start=today - timedelta(days=30), end=today)
    return render_template("billing/staff/reports.html", form=form, aging=services.aging_report(current_user),
                           aging_form=EmptyForm(),
                           days=services.payments_by_day(current_user),
                           accounts=services.accounts_with_balances(current_user, limit=100))


@bp.route("/export.csv")
@access_rule("staff", function="billing_reports")
def export():
    form = ExportForm(request.args)
    today = services.today_local()
    start, end = (form.start.data, form.end.data) if form.validate() else (today - timedelta(days=30), today)
    if end < start:
        start, end = end, start
    body = services.export_csv(current_user, start, end)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="billing-{start.isoformat()}-{end.isoformat()}.csv"'})

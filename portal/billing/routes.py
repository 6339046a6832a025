"""Patient pages (/billing): balance and statements, one statement online and as PDF, the card payment
(Stripe.js → SetupIntent → our server confirms a PaymentIntent), the receipt, paperless statements; and
Stripe's webhook (/billing/stripe/webhook: no session, no CSRF token, signature-checked instead)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, \
    url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.billing import gateway, pdf, services
from portal.billing.forms import PaperlessForm, PayForm
from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.core.headers import extend_csp
from portal.core.registry import PATIENT_HOME, for_function, for_patients, home_cards, nav, refs, \
    staff_patient_panels
from portal.core.web import current_lang
from portal.extensions import csrf, db

bp = Blueprint("billing", __name__, url_prefix="/billing")

nav.add("billing.index", _l("Billing"), order=60, show=for_patients)
home_cards.add("billing", order=30, audience=PATIENT_HOME, template="billing/_card.html", build=services.home_card,
               scalars=services.home_card_scalars, show=for_patients)
staff_patient_panels.add("billing", order=40, template="billing/_panel_patient.html", build=services.patient_panel,
                         show=for_function("billing_ledger"))
refs.add("statement", services.statement_ref)


@bp.app_template_filter("money")
def money_filter(cents) -> str:
    return services.format_money(int(cents or 0))


@bp.app_template_filter("bdate")
def billing_date(value, fmt: str = "medium") -> str:
    from portal.core.i18n import local_date

    return local_date(value, fmt)


@bp.app_template_global("billing_kind")
def billing_kind(kind: str, staff: bool = False) -> str:
    return services.kind_label(kind, staff)


@bp.route("")
@access_rule("patient")
def index():
    from portal.patients.services import own_patient

    ctx = services.overview(current_user, own_patient(current_user))
    form = PaperlessForm(paperless=ctx["account"].paperless if ctx["account"] else True)
    return render_template("billing/index.html", form=form, **ctx)


@bp.route("/paperless", methods=["POST"])
@access_rule("patient")
def paperless():
    form = PaperlessForm()
    if form.validate_on_submit():
        account = services.set_paperless(current_user, form.paperless.data)
        flash(_("Paperless statements are on.") if account.paperless else
              _("We will mail your statements on paper too."), "success")
    return redirect(url_for("billing.index"))


@bp.route("/statements/<public_id>")
@access_rule("patient")
def statement(public_id):
    ctx = services.view_statement(current_user, public_id)
    return render_template("billing/statement.html", staff=False, **ctx)


@bp.route("/statements/<public_id>.pdf")
@access_rule("patient")
def statement_pdf(public_id):
    ctx = services.view_statement(current_user, public_id, pdf=True)
    return pdf_response(ctx, current_lang())


def pdf_response(ctx: dict, lang: str) -> Response:
    from flask_babel import force_locale

    with force_locale(lang):
        body = pdf.render_statement(ctx, lang)
    name = f"statement-{ctx['statement'].label}.pdf"
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


# --- paying -------------------------------------------------------------------------------------

def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With") == "fetch"


def _pay_page(public_id, form=None, status=200):
    ctx = services.pay_context(current_user, public_id)
    if form is None:
        form = PayForm(attempt_key=ctx["attempt_key"])
    else:
        form.attempt_key.data = ctx["attempt_key"]
    resp = current_app.make_response((render_template(
        "billing/pay.html", form=form, stripe_js=gateway.js_url(), stripe_key=gateway.publishable_key()
        if gateway.enabled() else "", **ctx), status))
    if ctx.get("client_secret"):
        origins = gateway.csp_origins()
        extend_csp(resp, script_src=origins, frame_src=origins, connect_src=origins)
    return resp


@bp.route("/statements/<public_id>/pay", methods=["GET", "POST"])
@access_rule("patient")
def pay(public_id):
    if request.method == "GET":
        return _pay_page(public_id)
    form = PayForm()
    if not form.validate():
        if _wants_json():
            return jsonify(status="error", message=_("Please check the form and try again.")), 400
        return _pay_page(public_id, form, 400)
    if not form.payment_method.data:
        msg = _("Please enter your card details (this page needs JavaScript to reach our card processor).")
        if _wants_json():
            return jsonify(status="error", message=msg), 400
        flash(msg, "error")
        return _pay_page(public_id, form, 400)
    try:
        attempt = services.start_payment(current_user, public_id, attempt_key=form.attempt_key.data,
                                         payment_method=form.payment_method.data,
                                         amount_choice=form.amount_choice.data, amount_text=form.amount.data,
                                         save_card=form.save_card.data)
    except DomainError as err:
        if _wants_json():
            return jsonify(status="error", message=err.message, field=err.field), 400
        flash(err.message, "error")
        return _pay_page(public_id, form, 400)
    return _attempt_answer(attempt)


def _attempt_answer(attempt):
    if attempt.status == "succeeded":
        target = url_for("billing.receipt", public_id=attempt.public_id)
        return jsonify(status="succeeded", redirect=target) if _wants_json() else redirect(target)
    if attempt.status == "requires_action":
        secret = services.client_secret_for(attempt)
        finish = url_for("billing.finish", public_id=attempt.public_id)
        if _wants_json():
            return jsonify(status="requires_action", client_secret=secret, finish=finish)
        flash(_("Your bank asks you to confirm this payment. Please try again with JavaScript turned on."), "error")
        return redirect(url_for("billing.index"))
    if attempt.status in ("unknown", "created"):  # the charge's answer never reached us: never say charged or not
        message = _("We did not get an answer from our card processor, so we are checking whether your payment "
                    "went through. Please do not pay again: your billing page will show the result within a few "
                    "minutes.")
        if _wants_json():
            return jsonify(status="pending", message=message, redirect=url_for("billing.index"))
        flash(message, "warning")
        return redirect(url_for("billing.index"))
    message = attempt.failure_message or _("The payment did not go through. You were not charged.")
    if attempt.status == "flagged":
        message = _("We could not confirm this payment. Our billing office will check it; please do not pay again.")
    if _wants_json():
        nxt = services.pay_context(current_user, attempt.statement.public_id)  # a fresh try: new key, new SetupIntent
        return jsonify(status="failed", message=message, attempt_key=nxt["attempt_key"],
                       client_secret_next=nxt["client_secret"])
    flash(message, "error")
    return redirect(url_for("billing.statement", public_id=attempt.statement.public_id))


@bp.route("/payments/<public_id>/finish", methods=["POST"])
@access_rule("patient")
def finish(public_id):
    from portal.core.forms import EmptyForm

    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        attempt = services.finish_payment(current_user, public_id)
    except DomainError as err:
        if _wants_json():
            return jsonify(status="error", message=err.message), 400
        flash(err.message, "error")
        return redirect(url_for("billing.index"))
    return _attempt_answer(attempt)


@bp.route("/payments/<public_id>")
@access_rule("patient")
def receipt(public_id):
    return render_template("billing/receipt.html", **services.receipt(current_user, public_id))


# --- Stripe's webhook ----------------------------------------------------------------------------

@bp.route("/stripe/webhook", methods=["POST"])
@csrf.exempt  # Stripe signs it (Stripe-Signature over the raw body); it carries no session or CSRF token
@access_rule("public")
def stripe_webhook():
    payload = request.get_data(cache=False)
    if len(payload) > 512 * 1024:
        return jsonify(ok=False), 400
    try:
        event = gateway.verify_webhook(payload, request.headers.get("Stripe-Signature"),
                                       current_app.config.get("STRIPE_WEBHOOK_SECRET") or "")
    except gateway.BadSignature as exc:
        current_app.logger.warning("stripe webhook refused: %s", exc)
        return jsonify(ok=False), 400
    outcome = services.handle_event(event)
    db.session.flush()
    return jsonify(ok=True, outcome=outcome)

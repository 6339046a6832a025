"""Sign-in, second factor, enrolment, activation, reset (auth_bp) and the account pages (account_bp)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import mfa, services, sessions
from portal.accounts.forms import (
    ActivationForm,
    ChangeAuthenticatorForm,
    ChangeEmailForm,
    ChangePasswordForm,
    CodeForm,
    ConfirmPasswordForm,
    EmptyForm,
    EnrolForm,
    ForgotForm,
    RecoveryForm,
    ResetForm,
    SignInForm,
)
from portal.audit.services import staff_views_of_own_record
from portal.core.access import access_rule, deny
from portal.core.errors import DomainError
from portal.extensions import db, limiter

auth_bp = Blueprint("auth", __name__)
account_bp = Blueprint("account", __name__, url_prefix="/account")

AUTH_POST_LIMIT = "60 per minute"


def safe_next(target: str | None) -> str | None:
    """Only same-site absolute paths (SECURITY.md §21): no scheme, no host, no '//' or '\\'."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def home_for(user) -> str:
    return url_for("main.dashboard") if user.role == "patient" else url_for("main.staff_home")


def _field_error(form, err: DomainError, default_field: str | None = None) -> None:
    """Show a refused rule next to its field (or as a flash when it has none)."""
    name = err.field or default_field
    field = getattr(form, name, None) if name else None
    if field is not None:
        field.errors = list(field.errors) + [err.message]
    else:
        flash(err.message, "error")


# --- sign-in -------------------------------------------------------------------------------

@auth_bp.route("/signin", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def signin():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    if request.args.get("reason", "").startswith("signed_out") and request.args.get("lang") in current_app.config["LANGUAGES"]:
        # Sign-out's Clear-Site-Data wiped the cookie that kept the language; set it before the form
        # (building the form fixes this request's locale).
        session["lang"] = request.args["lang"]
    form = SignInForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
        reason = request.args.get("reason")
        if reason == "timeout" or g.get("session_expired") == "idle":
            flash(_("You were signed out after a period of inactivity, to protect your information."), "info")
        elif reason == "signed_out":
            flash(_("You have signed out."), "info")
        elif reason == "signed_out_everywhere":
            flash(_("You have been signed out on all devices."), "info")
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data, request.remote_addr)
        except services.EmailNotVerified as err:
            db.session.commit()
            flash(err.message, "info")
            return redirect(url_for("auth.signin"))
        except DomainError as err:
            db.session.commit()  # keep the failure count and audit row
            flash(err.message, "error")
            status = 401
        else:
            sessions.start(user)
            db.session.commit()
            nxt = safe_next(form.next.data)
            if nxt:
                session["next"] = nxt
            if not user.mfa_enabled:
                return redirect(url_for("auth.mfa_setup"))
            return redirect(url_for("auth.signin_mfa"))
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    return render_template("accounts/signin.html", form=form), status


def _finish_sign_in():
    record = sessions.current_record()
    nxt = session.get("next")
    sessions.complete_mfa(record)
    db.session.commit()
    return redirect(safe_next(nxt) or home_for(record.user))


def _second_factor(form, template: str, recovery: bool):
    user = g.pending_user
    status = 200
    if form.validate_on_submit():
        try:
            services.verify_second_factor(user, form.code.data, request.remote_addr, recovery=recovery)
        except DomainError as err:
            db.session.commit()
            _field_error(form, err, "code")
            status = 401
        else:
            response = _finish_sign_in()  # renews the session, so flash afterwards
            if recovery:
                flash(_("You used a recovery code. You have %(n)d left.", n=mfa.unused_recovery_count(user)),
                      "warning")
            return response
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return render_template(template, form=form), status


@auth_bp.route("/signin/verify", methods=["GET", "POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def signin_mfa():
    if not g.pending_user.mfa_enabled:
        return redirect(url_for("auth.mfa_setup"))
    return _second_factor(CodeForm(), "accounts/signin_mfa.html", recovery=False)


@auth_bp.route("/signin/recovery", methods=["GET", "POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def signin_recovery():
    if not g.pending_user.mfa_enabled:
        return redirect(url_for("auth.mfa_setup"))
    return _second_factor(RecoveryForm(), "accounts/signin_recovery.html", recovery=True)


@auth_bp.route("/signin/setup", methods=["GET", "POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def mfa_setup():
    """Enrolment is required before the first full sign-in (every account has a second factor)."""
    user = g.pending_user
    if user.mfa_enabled:
        return redirect(url_for("auth.signin_mfa"))
    form = EnrolForm()
    secret = mfa.begin_enrolment(user)
    db.session.commit()
    status = 200
    if form.validate_on_submit():
        try:
            codes = services.finish_enrolment(user, form.code.data, request.remote_addr)
        except DomainError as err:
            db.session.commit()
            _field_error(form, err, "code")
            status = 400
        else:
            record = sessions.current_record()
            sessions.complete_mfa(record)
            db.session.commit()
            return render_template("accounts/recovery_codes.html", codes=codes, first_time=True)
    elif request.method == "POST":
        status = 400
    uri = mfa.provisioning_uri(secret, user.email, _("Clinic portal"))
    form.code.data = ""
    return render_template("accounts/mfa_setup.html", form=form, secret=secret,
                           qr=mfa.qr_svg(uri, _("QR code for your authenticator app")),
                           secret_groups=[secret[i:i + 4] for i in range(0, len(secret), 4)]), status


@auth_bp.route("/signout", methods=["POST"])
@access_rule("public")
def signout():
    if EmptyForm().validate_on_submit():
        services.sign_out()
        db.session.commit()
    return _signed_out_redirect("signed_out")


def _signed_out_redirect(reason: str):
    """To the sign-in page, clearing the browser's copy of everything (ONC (d)(7)). Clear-Site-Data
    wipes cookies, and so any flash and the language: both ride on the URL instead."""
    response = redirect(url_for("auth.signin", reason=reason, lang=_current_lang()))
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


# --- activation and email verification ---------------------------------------------------

@auth_bp.route("/activate", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def activate():
    form = ActivationForm()
    status = 200
    if form.validate_on_submit():
        try:
            services.activate(form.code.data, form.birth_date.data, form.email.data, form.password.data,
                              request.remote_addr, language=_current_lang())
        except DomainError as err:
            db.session.commit()  # keep failure counts and audit rows
            _field_error(form, err)
            status = 400
        else:
            db.session.commit()
            return render_template("accounts/check_email.html", purpose="activation")
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    return render_template("accounts/activate.html", form=form), status


def _current_lang() -> str:
    return str(get_locale() or "en")


@auth_bp.route("/activate/verify/<token>")
@access_rule("public")
def verify_email(token):
    user = services.verify_email(token)
    db.session.commit()
    if user is None:
        flash(_("That link is not valid or has expired. Sign in and we will send a new one."), "error")
    else:
        flash(_("Your email is confirmed. Sign in to set up two-step verification."), "success")
    return redirect(url_for("auth.signin"))


# --- password reset ------------------------------------------------------------------------

@auth_bp.route("/password/forgot", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def forgot_password():
    form = ForgotForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data, request.remote_addr)
        db.session.commit()
        return render_template("accounts/check_email.html", purpose="reset")
    return render_template("accounts/forgot.html", form=form), (400 if request.method == "POST" else 200)


@auth_bp.route("/password/reset/<token>", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def reset_password(token):
    user = services.user_for_reset_token(token)
    if user is None:
        flash(_("That reset link is not valid, has expired or was already used. Ask for a new one."), "error")
        return redirect(url_for("auth.forgot_password"))
    form = ResetForm()
    status = 200
    if form.validate_on_submit():
        try:
            services.reset_password(user, form.password.data)
        except DomainError as err:
            _field_error(form, err)
            status = 400
        else:
            sessions.end_current("password_reset")
            db.session.commit()
            flash(_("Your password has been changed. Sign in with your new password."), "success")
            return redirect(url_for("auth.signin"))
    elif request.method == "POST":
        status = 400
    return render_template("accounts/reset.html", form=form), status


# --- account pages -------------------------------------------------------------------------

@account_bp.route("")
@access_rule("signed_in")
def overview():
    views = staff_views_of_own_record(current_user) if current_user.role == "patient" else []
    return render_template("accounts/overview.html", recovery_left=mfa.unused_recovery_count(current_user),
                           views=views, record=sessions.current_record())


@account_bp.route("/sessions")
@access_rule("signed_in")
def session_list():
    return render_template("accounts/sessions.html", sessions=sessions.active_sessions(current_user),
                           current=sessions.current_record(), form=EmptyForm())


@account_bp.route("/sessions/<public_id>/revoke", methods=["POST"])
@access_rule("signed_in")
def revoke_session(public_id):
    if EmptyForm().validate_on_submit():
        if sessions.current_record().public_id == public_id:
            return signout()
        if not services.revoke_session(current_user, public_id):
            deny("session", public_id)
            abort(404)
        db.session.commit()
        flash(_("That device has been signed out."), "success")
    return redirect(url_for("account.session_list"))


@account_bp.route("/sessions/revoke-all", methods=["POST"])
@access_rule("signed_in")
def revoke_all_sessions():
    if EmptyForm().validate_on_submit():
        services.sign_out_everywhere(current_user)
        db.session.commit()
        return _signed_out_redirect("signed_out_everywhere")
    return redirect(url_for("account.session_list"))


@account_bp.route("/password", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_password():
    return _render_form_page(
        ChangePasswordForm(), "accounts/change_password.html",
        lambda f: services.change_password(current_user, sessions.current_record(), f.current_password.data,
                                           f.password.data, request.remote_addr),
        _("Your password has been changed. Other devices have been signed out."))


@account_bp.route("/recovery-codes", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def recovery_codes():
    form = ConfirmPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = services.regenerate_recovery_codes(current_user, sessions.current_record(),
                                                       form.current_password.data, request.remote_addr)
        except DomainError as err:
            db.session.commit()  # keep failure counts and audit rows
            _field_error(form, err)
            status = 400
        else:
            db.session.commit()
            return render_template("accounts/recovery_codes.html", codes=codes, first_time=False)
    elif request.method == "POST":
        status = 400
    return render_template("accounts/regenerate_codes.html", form=form,
                           left=mfa.unused_recovery_count(current_user)), status


@account_bp.route("/keepalive", methods=["POST"])
@access_rule("signed_in")
def keepalive():
    """The idle-timeout dialog's "Stay signed in" (CSRF header from the page's meta tag)."""
    sessions.touch(sessions.current_record(), force=True)
    return jsonify(ok=True, idle_seconds=sessions.timeout_context()["idle_seconds"])


def _render_form_page(form, template: str, action, success_message: str, redirect_to: str | None = None, **ctx):
    """The account pages' shared POST handling: run `action`, show a refused rule on the form (a
    Throttled goes on to the app's 429 page)."""
    status = 200
    if form.validate_on_submit():
        try:
            action(form)
        except DomainError as err:
            db.session.commit()  # keep failure counts and audit rows
            _field_error(form, err)
            status = 400
        else:
            db.session.commit()
            flash(success_message, "success")
            return redirect(redirect_to or url_for("account.overview"))
    elif request.method == "POST":
        status = 400
    return render_template(template, form=form, **ctx), status


@account_bp.route("/email", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_email():
    return _render_form_page(
        ChangeEmailForm(), "accounts/change_email.html",
        lambda f: services.request_email_change(current_user, sessions.current_record(), f.current_password.data,
                                                f.email.data, request.remote_addr),
        _("We sent a link to the new address. Your email changes when you open it."))


@account_bp.route("/email/confirm/<token>")
@access_rule("public")
def confirm_email_change(token):
    user = services.confirm_email_change(token)
    db.session.commit()
    if user is None:
        flash(_("That link is not valid or has expired."), "error")
    else:
        flash(_("Your email address has been changed."), "success")
    return redirect(url_for("account.overview") if current_user.is_authenticated else url_for("auth.signin"))


@account_bp.route("/authenticator", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_authenticator():
    return _render_form_page(
        ChangeAuthenticatorForm(), "accounts/change_authenticator.html",
        lambda f: services.start_authenticator_change(current_user, sessions.current_record(),
                                                      f.current_password.data, f.code.data, request.remote_addr),
        _("Now set up your new authenticator app."), redirect_to=url_for("auth.mfa_setup"))

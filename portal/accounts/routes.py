"""Sign-in, second factor, enrolment, activation, reset (auth_bp) and the account pages (account_bp).

Routes parse the form, call one service and answer; the request frame (core.web) commits once when
the view returns and rolls back when it raises."""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.accounts import devices, lockout, mfa, services, sessions
from portal.core.forms import EmptyForm
from portal.core.i18n import remember_language
from portal.accounts.forms import (
    ActivationAccountForm,
    ActivationCheckForm,
    ChangeAuthenticatorForm,
    ChangeEmailForm,
    ChangePasswordForm,
    CodeForm,
    ConfirmPasswordForm,
    EnrolForm,
    ForgotForm,
    RecoveryForm,
    ResetForm,
    SignInForm,
)
from portal.audit.services import access_label, staff_views_of_own_record
from portal.core.access import access_rule
from portal.core.registry import PATIENT_HOME, for_anonymous, for_signed_in, home_cards, nav
from portal.core.roles import Role
from portal.core.web import current_lang, form_page, home_for, safe_next
from portal.core.page_cache import anonymous_page
from portal.extensions import limiter

auth_bp = Blueprint("auth", __name__)
account_bp = Blueprint("account", __name__, url_prefix="/account")
nav.add("account.overview", _l("Account"), order=800, show=for_signed_in)
nav.add("auth.signin", _l("Sign in"), order=950, show=for_anonymous)
home_cards.add("account", order=90, audience=PATIENT_HOME, template="accounts/_card_account.html",
               build=lambda user, patient: {})

AUTH_POST_LIMIT = "60 per minute"
ACTIVATION_SESSION_KEY = "activation"
RESET_SESSION_KEY = "reset_token"


# --- tokens never in logged URLs ---------------------------------------------------------------

TOKEN_PATHS = re.compile(r"(/password/reset/|/activate/verify/|/account/email/confirm/)[^\s?\"]+")
TOKEN_QUERY = re.compile(r"([?&][^=\s&\"]*token[^=\s&\"]*=)[^&\s\"]+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Request-log lines (the development server's, gunicorn's access log) never carry a token: the
    emailed links' paths and any *token* query value are replaced by [redacted]."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = TOKEN_QUERY.sub(r"\1[redacted]", TOKEN_PATHS.sub(r"\1[redacted]", message))
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


@auth_bp.record_once
def _install_log_redaction(_state):
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


# --- sign-in -------------------------------------------------------------------------------

@auth_bp.route("/signin", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
@anonymous_page
def signin():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    if request.args.get("reason", "").startswith("signed_out") and request.args.get("lang") in current_app.config["LANGUAGES"]:
        # Sign-out's Clear-Site-Data wiped the cookie that kept the language; set it before the form
        # (building the form fixes this request's locale).
        remember_language(request.args["lang"])
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

    def password_step(f):
        user = services.authenticate(f.email.data, f.password.data, request.remote_addr, devices.cookie_value())
        sessions.start(user)
        return user

    def after(user):
        nxt = safe_next(form.next.data)
        if nxt:
            session["next"] = nxt
        return redirect(url_for("auth.signin_mfa") if user.mfa_enabled else url_for("auth.mfa_setup"))

    return form_page(form, "accounts/signin.html", password_step, on_success=after, failure_status=401,
                     default_field="password")


def _finish_sign_in(record):
    nxt = session.get("next")
    sessions.complete_mfa(record)
    return devices.remember(redirect(safe_next(nxt) or home_for(record.user)), record.user)


def _second_factor(form, template: str, recovery: bool):
    user = g.pending_user

    def after(_result):
        response = _finish_sign_in(sessions.current_record())  # renews the session, so flash afterwards
        if recovery:
            flash(_("You used a recovery code. You have %(n)d left.", n=mfa.unused_recovery_count(user)), "warning")
        return response

    def blank_code():
        form.code.data = ""  # never echo a code back
        return {}

    return form_page(
        form, template,
        lambda f: services.verify_second_factor(user, f.code.data, request.remote_addr, recovery=recovery,
                                                device_cookie=devices.cookie_value()),
        on_success=after, failure_status=401, default_field="code", context=blank_code)


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


def _setup_context(form, secret: str, user) -> dict:
    uri = mfa.provisioning_uri(secret, user.email, current_app.config["CLINIC_NAME"])
    form.code.data = ""
    return {"secret": secret, "otpauth_uri": uri, "qr": mfa.qr_svg(uri, _("QR code for your authenticator app")),
            "secret_groups": [secret[i:i + 4] for i in range(0, len(secret), 4)]}


def _recovery_codes_page(codes, first_time: bool, finish_url: str):
    return render_template("accounts/recovery_codes.html", codes=codes, first_time=first_time,
                           finish_url=finish_url, clinic_name=current_app.config["CLINIC_NAME"])


@auth_bp.route("/signin/setup", methods=["GET", "POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def mfa_setup():
    """First enrolment, required before the first full sign-in (every account has a second factor).
    Only for an account with no factor: a password-only session never replaces one."""
    user = g.pending_user
    if user.mfa_enabled:
        return redirect(url_for("auth.signin_mfa"))
    record = sessions.current_record()
    form = EnrolForm()
    secret = mfa.begin_enrolment(record)

    def enrol(f):
        codes = services.finish_enrolment(user, record, f.code.data, request.remote_addr)
        sessions.complete_mfa(record)
        return codes

    def done(codes):
        response = _recovery_codes_page(codes, True, home_for(user))
        return devices.remember(current_app.make_response(response), user)

    activation = user.email_verified_at is None and user.role == Role.PATIENT
    return form_page(form, "accounts/mfa_setup.html", enrol, default_field="code",
                     context=lambda: dict(_setup_context(form, secret, user), activation=activation,
                                          action=url_for("auth.mfa_setup")),
                     on_success=done)


@auth_bp.route("/signout", methods=["POST"])
@access_rule("public")
def signout():
    if EmptyForm().validate_on_submit():
        services.sign_out(sessions.current_record())
    return _signed_out_redirect("signed_out")


def _signed_out_redirect(reason: str):
    """To the sign-in page, clearing the browser's copy of everything (ONC (d)(7)). Clear-Site-Data
    wipes cookies, and so any flash and the language: both ride on the URL instead."""
    response = redirect(url_for("auth.signin", reason=reason, lang=current_lang()))
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


# --- activation (3 steps: code + birth date → email + password → authenticator) ------------

def _activation_code_id() -> int | None:
    state = session.get(ACTIVATION_SESSION_KEY)
    if not isinstance(state, dict) or not isinstance(state.get("id"), int):
        return None
    if time.time() - float(state.get("at", 0)) > services.ACTIVATION_STEP_SECONDS:
        session.pop(ACTIVATION_SESSION_KEY, None)
        return None
    return state["id"]


@auth_bp.route("/activate", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def activate():
    """Step 1 of 3: the clinic's code and the birth date on the record."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))

    def checked(code_id):
        session[ACTIVATION_SESSION_KEY] = {"id": code_id, "at": time.time()}
        return redirect(url_for("auth.activate_account"))

    return form_page(ActivationCheckForm(), "accounts/activate.html",
                     lambda f: services.check_activation(f.code.data, f.birth_date.data, request.remote_addr),
                     on_success=checked, default_field="code")


@auth_bp.route("/activate/account", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def activate_account():
    """Step 2 of 3: email and password (typed once, with a show-password button). The new account's
    password-only session goes straight to step 3, setting up the authenticator; the confirmation
    email can be opened any time later."""
    code_id = _activation_code_id()
    if code_id is None:
        flash(_("Start with your activation code and date of birth."), "info")
        return redirect(url_for("auth.activate"))
    form = ActivationAccountForm()

    def open_account(f):
        user = services.activate(code_id, f.email.data, f.password.data, request.remote_addr,
                                 language=current_lang())
        session.pop(ACTIVATION_SESSION_KEY, None)
        sessions.start(user)
        return user

    def context():
        if form.password.errors:
            form.password.data = ""  # a refused password is typed again; any other error keeps it
        return {}

    return form_page(form, "accounts/activate_account.html", open_account, keep=("password",), context=context,
                     on_success=lambda _user: redirect(url_for("auth.mfa_setup")))


@auth_bp.route("/activate/verify/<token>")
@access_rule("public")
def verify_email(token):
    """The emailed link: confirms the address and lands on a clean URL (the token is in this one
    request only, which the request log redacts)."""
    user = services.verify_email(token)
    if user is None:
        flash(_("That link is not valid or has expired. Sign in and use “Send the link again” on your "
                "account page."), "error")
    else:
        flash(_("Your email address is confirmed."), "success")
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.signin"))


# --- password reset ------------------------------------------------------------------------

@auth_bp.route("/password/forgot", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def forgot_password():
    return form_page(ForgotForm(), "accounts/forgot.html",
                     lambda f: services.request_password_reset(f.email.data, request.remote_addr,
                                                               language=current_lang()),
                     on_success=lambda _r: render_template("accounts/check_email.html", purpose="reset"))


@auth_bp.route("/password/reset/<token>")
@access_rule("public")
def reset_link(token):
    """The emailed link moves its token into the session and redirects to a clean URL, so the token
    is not in the form page's address, its history entry, a Referer, or the form's own request."""
    session[RESET_SESSION_KEY] = token[:512]
    return redirect(url_for("auth.reset_password"))


@auth_bp.route("/password/reset", methods=["GET", "POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def reset_password():
    user = services.user_for_reset_token(session.get(RESET_SESSION_KEY))
    if user is None:
        session.pop(RESET_SESSION_KEY, None)
        flash(_("That reset link is not valid, has expired or was already used. Ask for a new one."), "error")
        return redirect(url_for("auth.forgot_password"))

    def reset(f):
        services.reset_password(user, f.password.data)
        sessions.end_current("password_reset")  # clears the session, and the token with it

    return form_page(ResetForm(), "accounts/reset.html", reset,
                     success=_("Your password has been changed. Sign in with your new password."),
                     redirect_to=url_for("auth.signin"))


@auth_bp.app_errorhandler(lockout.CapReached)
def cap_reached(_err):
    """At the cap of consecutive failures: the 429 page asks for the emailed reset (or a call)."""
    return render_template("errors/429.html", capped=True, request_id=g.get("request_id")), 429


# --- account pages -------------------------------------------------------------------------

@account_bp.route("")
@access_rule("signed_in")
def overview():
    record = sessions.current_record()
    views = staff_views_of_own_record(current_user) if current_user.role == Role.PATIENT else []
    return render_template("accounts/overview.html", recovery_left=mfa.unused_recovery_count(current_user),
                           views=views, views_label=access_label, record=record,
                           previous=services.last_sign_in(current_user, record), form=EmptyForm())


@account_bp.route("/email/resend", methods=["POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def resend_confirmation():
    if EmptyForm().validate_on_submit() and current_user.email_verified_at is None:
        services.resend_own_confirmation(current_user)
        flash(_("We sent the link again to %(email)s.", email=current_user.email), "success")
    return redirect(url_for("account.overview"))


@account_bp.route("/sessions")
@access_rule("signed_in")
def session_list():
    return render_template("accounts/sessions.html", sessions=sessions.active_sessions(current_user),
                           current=sessions.current_record(), form=EmptyForm(), describe=devices.describe)


@account_bp.route("/sessions/<public_id>/revoke", methods=["POST"])
@access_rule("signed_in")
def revoke_session(public_id):
    if EmptyForm().validate_on_submit():
        current = sessions.current_record()
        if current.public_id == public_id:
            services.sign_out(current)
            return _signed_out_redirect("signed_out")
        services.revoke_session(current_user, public_id)
        flash(_("That device has been signed out."), "success")
    return redirect(url_for("account.session_list"))


@account_bp.route("/sessions/revoke-all", methods=["POST"])
@access_rule("signed_in")
def revoke_all_sessions():
    if EmptyForm().validate_on_submit():
        services.sign_out_everywhere(current_user)
        return _signed_out_redirect("signed_out_everywhere")
    return redirect(url_for("account.session_list"))


@account_bp.route("/password", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_password():
    form = ChangePasswordForm()

    def context():
        if form.password.errors:
            form.password.data = ""
        return {}

    return form_page(
        form, "accounts/change_password.html",
        lambda f: services.change_password(current_user, sessions.current_record(), f.current_password.data,
                                           f.password.data, request.remote_addr),
        success=_("Your password has been changed. Other devices have been signed out."),
        redirect_to=url_for("account.overview"), keep=("password",), context=context)


@account_bp.route("/recovery-codes", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def recovery_codes():
    return form_page(
        ConfirmPasswordForm(), "accounts/regenerate_codes.html",
        lambda f: services.regenerate_recovery_codes(current_user, sessions.current_record(),
                                                     f.current_password.data, request.remote_addr),
        on_success=lambda codes: _recovery_codes_page(codes, False, url_for("account.overview")),
        context=lambda: {"left": mfa.unused_recovery_count(current_user)})


@account_bp.route("/keepalive", methods=["POST"])
@access_rule("signed_in")
def keepalive():
    """The idle-timeout dialog's "Stay signed in" (CSRF header from the page's meta tag)."""
    sessions.touch(sessions.current_record(), force=True)
    return jsonify(ok=True, idle_seconds=sessions.timeout_context()["idle_seconds"])


@account_bp.route("/email", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_email():
    return form_page(
        ChangeEmailForm(), "accounts/change_email.html",
        lambda f: services.request_email_change(current_user, sessions.current_record(), f.current_password.data,
                                                f.email.data, request.remote_addr),
        success=_("We sent a link to the new address. Your email changes when you open it."),
        redirect_to=url_for("account.overview"))


@account_bp.route("/email/confirm/<token>")
@access_rule("public")
def confirm_email_change(token):
    """The emailed link: applies the change and lands on a clean URL (the request log redacts it)."""
    user = services.confirm_email_change(token, sessions.current_record())
    if user is None:
        flash(_("That link is not valid or has expired."), "error")
    else:
        flash(_("Your email address has been changed."), "success")
    return redirect(url_for("account.overview") if current_user.is_authenticated else url_for("auth.signin"))


@account_bp.route("/authenticator", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def change_authenticator():
    """Replace the authenticator, step 1: password and a current code. The old app keeps working until
    the new one is confirmed. An account that signs in with passkeys only adds its first app here
    (the password is the re-authentication; the session is already fully signed in)."""
    if not current_user.totp_enabled:
        return form_page(
            ConfirmPasswordForm(), "accounts/change_authenticator.html",
            lambda f: services.start_authenticator_change(current_user, sessions.current_record(),
                                                          f.current_password.data, None, request.remote_addr),
            redirect_to=url_for("account.new_authenticator"))
    return form_page(
        ChangeAuthenticatorForm(), "accounts/change_authenticator.html",
        lambda f: services.start_authenticator_change(current_user, sessions.current_record(),
                                                      f.current_password.data, f.code.data, request.remote_addr),
        redirect_to=url_for("account.new_authenticator"))


@account_bp.route("/authenticator/new", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def new_authenticator():
    """Step 2: scan the new secret (this session's own) and confirm a code from the new app."""
    record = sessions.current_record()
    secret = mfa.pending_secret(record)
    if secret is None:
        flash(_("Confirm it is you first: enter your password and a code from your current app."), "info")
        return redirect(url_for("account.change_authenticator"))
    form = EnrolForm()
    return form_page(
        form, "accounts/mfa_setup.html",
        lambda f: services.finish_authenticator_change(current_user, record, f.code.data, request.remote_addr),
        default_field="code",
        context=lambda: dict(_setup_context(form, secret, current_user), replacing=True,
                             action=url_for("account.new_authenticator")),
        on_success=lambda codes: _recovery_codes_page(codes, False, url_for("account.overview")))


from portal.accounts import passkey_routes  # noqa: E402,F401  (passkey routes on the two blueprints above)

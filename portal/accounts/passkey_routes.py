"""Passkey routes, on accounts' own blueprints (auth_bp: sign-in steps; account_bp: the account page).

Each ceremony is two requests: a JSON POST (CSRF header) that issues a server-side challenge and the
browser's options, then an ordinary form POST (CSRF field) carrying the browser's signed answer, so
errors come back as translated form errors and success goes through the same session start as the
password + code path. The script is static/js/passkeys.js (no inline script)."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import devices, mfa, passkeys, services, sessions
from portal.accounts.forms import (AddPasskeyForm, CodeForm, ConfirmPasswordForm, PasskeyForm, RemovePasskeyForm,
                                   RenamePasskeyForm, SignInForm)
from portal.accounts.models import User
from portal.accounts.passkeys import Purpose
from portal.accounts.routes import (AUTH_POST_LIMIT, _finish_sign_in, _recovery_codes_page, account_bp, auth_bp)
from portal.core.access import access_rule
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.web import field_error, form_page, home_for, safe_next
from portal.extensions import db, limiter

REAUTH_SECONDS = 5 * 60  # SECURITY.md §8: a password (or a sign-in) within the last 5 minutes


def _json(text: str):
    response = current_app.response_class(text, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_available():
    if not passkeys.available():
        abort(404)


def _fresh(record) -> bool:
    return record is not None and record.reauth_at is not None and \
        utcnow() - record.reauth_at <= timedelta(seconds=REAUTH_SECONDS)


# --- sign in with a passkey alone ---------------------------------------------------------------

@auth_bp.route("/signin/passkey/options", methods=["POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_signin_options():
    _require_available()
    if current_user.is_authenticated:
        abort(409)
    return _json(passkeys.authentication_options(passkeys.session_binding(), Purpose.SIGNIN))


@auth_bp.route("/signin/passkey", methods=["POST"])
@access_rule("public")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_signin():
    """The discoverable-credential sign-in: no email, no password. Success starts the server-side
    session exactly like the password step, then completes it like the code step (new token, idle and
    absolute limits, remembered device, audit rows)."""
    _require_available()
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = PasskeyForm()
    if form.validate_on_submit():
        try:
            user = passkeys.sign_in(form.credential.data, passkeys.session_binding(create=False),
                                    request.remote_addr)
        except DomainError as err:
            field_error(form, err, "credential")
        else:
            nxt = safe_next(request.form.get("next"))
            sessions.start(user)
            if nxt:
                session["next"] = nxt
            return _finish_sign_in(sessions.current_record())
    signin_form = SignInForm(formdata=None)
    signin_form.next.data = safe_next(request.form.get("next"))
    return render_template("accounts/signin.html", form=signin_form, passkey_form=form), 401


# --- a passkey as the second step after the password ---------------------------------------------

@auth_bp.route("/signin/verify/passkey/options", methods=["POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_mfa_options():
    _require_available()
    user = g.pending_user
    if user.passkeys_enabled_at is None:
        abort(404)
    return _json(passkeys.authentication_options(passkeys.session_binding(), Purpose.SECOND_FACTOR, user))


@auth_bp.route("/signin/verify/passkey", methods=["POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_mfa():
    _require_available()
    user = g.pending_user
    form = PasskeyForm()
    if form.validate_on_submit():
        try:
            passkeys.second_factor(user, form.credential.data, passkeys.session_binding(create=False),
                                   request.remote_addr)
        except DomainError as err:
            field_error(form, err, "credential")
        else:
            return _finish_sign_in(sessions.current_record())
    return render_template("accounts/signin_mfa.html", form=CodeForm(formdata=None), passkey_form=form), 401


# --- a passkey as the first second factor (set-up after the password, or at activation) ---------

@auth_bp.route("/signin/setup/passkey/options", methods=["POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_setup_options():
    _require_available()
    user = g.pending_user
    if user.mfa_enabled:
        abort(409)
    return _json(passkeys.registration_options(user, passkeys.session_binding(), Purpose.SETUP))


@auth_bp.route("/signin/setup/passkey", methods=["GET", "POST"])
@access_rule("pending")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_setup():
    """The first choice at set-up: a passkey instead of an authenticator app. Only for an account with
    no second factor yet (a password-only session never adds to one that has a factor)."""
    _require_available()
    user = g.pending_user
    if user.mfa_enabled:
        return redirect(url_for("auth.signin_mfa"))
    record = sessions.current_record()
    form = AddPasskeyForm()
    if request.method == "GET":
        form.name.data = passkeys.default_name(request.user_agent.string)
    elif form.validate_on_submit():
        try:
            codes = _enrol_first_passkey(user, record, form)
        except DomainError as err:
            field_error(form, err, "credential")
        else:
            response = current_app.make_response(_recovery_codes_page(codes, True, home_for(user)))
            return devices.remember(response, user)
    activation = user.email_verified_at is None and user.role == "patient"
    return render_template("accounts/passkey_add.html", form=form, setup=True, activation=activation,
                           action=url_for("auth.passkey_setup"),
                           options_url=url_for("auth.passkey_setup_options")), 400 if form.errors else 200


def _enrol_first_passkey(user: User, record, form) -> list[str]:
    # Serialise with any other session enrolling this account: of two, only the first adds a factor.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    db.session.refresh(user, ["totp_secret_enc", "totp_enabled_at", "passkeys_enabled_at"])
    if user.mfa_enabled:
        raise DomainError(_("Two-step verification was just set up from another device. Sign in again with it."))
    passkeys.register(user, form.credential.data, form.name.data, passkeys.session_binding(create=False),
                      purpose=Purpose.SETUP, user_agent=request.user_agent.string)
    sessions.complete_mfa(record)
    record_event(EventTag.MFA_ENROLLED, actor=user, detail={"method": "passkey"})
    return mfa.new_recovery_codes(user)


# --- the account page: list, add (after re-authentication), remove -------------------------------

@account_bp.route("/passkeys", endpoint="passkeys")
@access_rule("signed_in")
def passkeys_list():
    return render_template("accounts/passkeys.html", rows=passkeys.list_for(current_user),
                           available=passkeys.available(), max_passkeys=passkeys.MAX_PASSKEYS)


@account_bp.route("/passkeys/confirm", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_reauth():
    """Before adding a passkey: the current password, unless the sign-in was within 5 minutes."""
    _require_available()
    form = ConfirmPasswordForm()
    if form.validate_on_submit():
        try:
            services.reauthenticate(current_user, sessions.current_record(), form.current_password.data,
                                    request.remote_addr)
        except DomainError as err:
            field_error(form, err, "current_password")
        else:
            return redirect(url_for("account.passkey_add"))
    form.current_password.data = ""
    return render_template("accounts/passkey_reauth.html", form=form), 400 if form.errors else 200


@account_bp.route("/passkeys/confirm/options", methods=["POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_reauth_options():
    _require_available()
    if current_user.passkeys_enabled_at is None:
        abort(404)
    return _json(passkeys.authentication_options(passkeys.session_binding(), Purpose.REAUTH, current_user))


@account_bp.route("/passkeys/confirm/passkey", methods=["POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_reauth_passkey():
    """Confirm it is you with a passkey instead of the password."""
    _require_available()
    form = PasskeyForm()
    if form.validate_on_submit():
        try:
            passkeys.reauthenticate(current_user, sessions.current_record(), form.credential.data,
                                    passkeys.session_binding(create=False), request.remote_addr)
        except DomainError as err:
            field_error(form, err, "credential")
        else:
            return redirect(url_for("account.passkey_add"))
    return render_template("accounts/passkey_reauth.html", form=ConfirmPasswordForm(formdata=None),
                           passkey_form=form), 401


@account_bp.route("/passkeys/options", methods=["POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_add_options():
    _require_available()
    if not _fresh(sessions.current_record()):
        abort(403)
    return _json(passkeys.registration_options(current_user, passkeys.session_binding(), Purpose.REGISTER))


@account_bp.route("/passkeys/add", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_add():
    _require_available()
    record = sessions.current_record()
    if not _fresh(record):
        flash(_("Confirm it is you first: enter your password."), "info")
        return redirect(url_for("account.passkey_reauth"))
    form = AddPasskeyForm()
    if request.method == "GET":
        form.name.data = passkeys.default_name(request.user_agent.string)
    elif form.validate_on_submit():
        try:
            passkey = passkeys.register(current_user, form.credential.data, form.name.data,
                                        passkeys.session_binding(create=False), purpose=Purpose.REGISTER,
                                        user_agent=request.user_agent.string)
        except DomainError as err:
            field_error(form, err, "credential")
        else:
            flash(_("Passkey “%(name)s” added. Next time, choose “Sign in with a passkey”.", name=passkey.name),
                  "success")
            return redirect(url_for("account.passkeys"))
    return render_template("accounts/passkey_add.html", form=form, setup=False, action=url_for("account.passkey_add"),
                           options_url=url_for("account.passkey_add_options")), 400 if form.errors else 200


@account_bp.route("/passkeys/<public_id>/rename", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_rename(public_id):
    passkey = passkeys.own_passkey(current_user, public_id)
    form = RenamePasskeyForm()
    if request.method == "GET":
        form.name.data = passkey.name
    return form_page(form, "accounts/passkey_rename.html",
                     lambda f: passkeys.rename(current_user, public_id, f.name.data),
                     success=_("Passkey renamed."), redirect_to=url_for("account.passkeys"),
                     default_field="name", context={"passkey": passkey})


@account_bp.route("/passkeys/<public_id>/remove", methods=["GET", "POST"])
@access_rule("signed_in")
@limiter.limit(AUTH_POST_LIMIT, methods=["POST"])
def passkey_remove(public_id):
    passkey = passkeys.own_passkey(current_user, public_id)
    last = passkeys.count_for(current_user) <= 1
    form = RemovePasskeyForm()
    if form.validate_on_submit():
        try:
            passkeys.remove(current_user, sessions.current_record(), public_id, form.current_password.data,
                            form.code.data, request.remote_addr)
        except DomainError as err:
            field_error(form, err, "current_password")
        else:
            flash(_("Passkey “%(name)s” removed. It can no longer sign in to your account.", name=passkey.name),
                  "success")
            return redirect(url_for("account.passkeys"))
    form.current_password.data = ""
    form.code.data = ""
    return render_template("accounts/passkey_remove.html", form=form, passkey=passkey, last=last), \
        400 if form.errors else 200


@auth_bp.app_template_global("passkeys_available")
def _passkeys_available() -> bool:
    return passkeys.available()


@auth_bp.app_template_global("passkey_summary")
def _passkey_summary(user) -> dict:
    return passkeys.support_summary(user)

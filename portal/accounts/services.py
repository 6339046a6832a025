"""Account rules: sign-in with throttling and lock, second factor, activation, email verification,
password reset/change, staff accounts, support actions. Services flush, never commit; the request
frame commits."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from portal.accounts import devices, lockout, mfa, sessions
from portal.accounts.lockout import normalise_email
from portal.accounts.models import ActivationCode, SupportIdentityCheck, User
from portal.accounts.passwords import (hash_password, needs_rehash, personal_inputs, policy_errors, quick_errors,
                                       verify_password)
from portal.core.access import deny, require_function
from portal.core.audit import EventTag, record_event, register_tags
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.core.errors import DomainError, Forbidden, NotFound
from portal.core.mail import send_after_commit
from portal.core.roles import STAFF_ROLE_VALUES, Role
from portal.core.web import external_url
from portal.extensions import db, throttle
from portal.patients.models import AccessGrant, Patient

ACTIVATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ACTIVATION_STEP_SECONDS = 30 * 60  # between "code + birth date" and "email + password"
IDENTITY_METHOD_CHOICES = (
    ("photo_id_in_person", _l("Photo ID, in person")),
    ("video_call_with_id", _l("Video call, photo ID shown")),
    ("callback_with_verification", _l("Called back on the number on file")),
)
IDENTITY_METHODS = tuple(value for value, _label in IDENTITY_METHOD_CHOICES)


class AccountEvent(str, enum.Enum):
    """The accounts domain's own audit tags (core's EventTag holds the older ones)."""

    MFA_CHANGE_STARTED = "auth.mfa.change_started"
    MFA_REPLACED = "auth.mfa.replaced"
    ACTIVATION_CHECKED = "account.activation.checked"
    ACTIVATION_CODES_REVOKED = "account.activation.revoked"
    RESET_MAIL_CAPPED = "account.password.reset_capped"
    CONFIRMATION_RESENT = "account.email.confirmation_resent"


register_tags({
    AccountEvent.MFA_CHANGE_STARTED: _l("Started moving two-step verification to a new app"),
    AccountEvent.MFA_REPLACED: _l("Two-step verification moved to a new app"),
    AccountEvent.ACTIVATION_CHECKED: _l("Activation code and birth date accepted"),
    AccountEvent.ACTIVATION_CODES_REVOKED: _l("Open activation codes withdrawn"),
    AccountEvent.RESET_MAIL_CAPPED: _l("Password reset email not sent (hourly limit)"),
    AccountEvent.CONFIRMATION_RESENT: _l("Email confirmation link sent again"),
})


class AuthFailed(DomainError):
    pass


def _lock_warning(message: str, result: lockout.Failure) -> str:
    """Add "2 tries left before sign-in pauses for 15 minutes" to a failure message. Counted per email
    (known or not), like the lock itself, so the warning reveals nothing about the account."""
    if result.capped:
        return _("Too many failed attempts. Choose a new password with the link we can email you, or call the "
                 "clinic.")
    if result.locked:
        return _("Too many failed attempts. Sign-in with this email is paused for a while.")
    if result.tries_left <= 2:
        wait = format_timedelta(timedelta(seconds=result.next_lock_seconds), threshold=1)
        return message + " " + ngettext("%(num)d try left before sign-in pauses for %(wait)s.",
                                        "%(num)d tries left before sign-in pauses for %(wait)s.",
                                        result.tries_left, wait=wait)
    return message


def _keys(email: str, user: User | None, device_cookie: str | None) -> tuple[str, str | None]:
    """The failure counter to use: a remembered device's own (when the cookie is this account's),
    else the address's."""
    device_id = devices.device_for(user, device_cookie)
    if device_id:
        return lockout.device_key(email, device_id), lockout.account_key(email)
    return lockout.account_key(email), None


def authenticate(email: str, password: str, ip: str | None, device_cookie: str | None = None) -> User:
    """Password step. Raises Throttled (CapReached at the cap) or AuthFailed (generic)."""
    user = user_by_email(email)
    key, email_key = _keys(email, user, device_cookie)
    lockout.check(key, ip)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled_at is not None:
        result = lockout.record_failure(key, ip, user, EventTag.SIGNIN_FAILURE,
                                        "password" if user else "unknown_account", email_key=email_key)
        raise AuthFailed(_lock_warning(_("That email and password do not match our records."), result))
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    lockout.clear(key)
    record_event(EventTag.SIGNIN_SUCCESS, actor=user, detail={"step": "password", "device": bool(email_key)})
    db.session.flush()
    return user


def verify_second_factor(user: User, code: str, ip: str | None, *, recovery: bool = False,
                         device_cookie: str | None = None, record=None) -> None:
    """The code step of sign-in (or, with the signed-in session's `record`, a re-check of the factor,
    counted under that session's own key)."""
    key, email_key = _session_key(user, record) if record is not None else _keys(user.email, user, device_cookie)
    lockout.check(key, ip)
    ok = mfa.use_recovery_code(user, code) if recovery else mfa.verify_totp(user, code)
    if not ok:
        result = lockout.record_failure(key, ip, user, EventTag.MFA_FAILURE, "recovery" if recovery else "totp",
                                        email_key=email_key)
        if recovery:
            message = _("That recovery code is not valid or was already used. Each code works once: try another "
                        "one from your list.")
        else:
            message = _("That code is not valid. Check your authenticator app and enter the newest code.")
        raise AuthFailed(_lock_warning(message, result), field="code")
    lockout.clear(key)
    record_event(EventTag.MFA_RECOVERY_USED if recovery else EventTag.MFA_SUCCESS, actor=user)
    db.session.flush()


def reauthenticate(user: User, record, password: str, ip: str | None) -> None:
    """Sensitive changes ask for the current password (or accept a sign-in within 5 minutes). Failures
    count under this signed-in session's own key (with the same escalation and cap), so strangers who
    lock the address out cannot stop its owner from changing the password."""
    key, email_key = _session_key(user, record)
    lockout.check(key, ip)
    if not verify_password(user.password_hash, password):
        result = lockout.record_failure(key, ip, user, EventTag.SIGNIN_FAILURE, "reauth", email_key=email_key)
        raise AuthFailed(_lock_warning(_("Your current password is not correct."), result), field="current_password")
    lockout.clear(key)
    sessions.mark_reauthenticated(record)
    record_event(EventTag.REAUTH, actor=user)


def _session_key(user: User, record) -> tuple[str, str | None]:
    if record is None:
        return lockout.account_key(user.email), None
    return lockout.device_key(user.email, f"session:{record.public_id}"), lockout.account_key(user.email)


def user_by_email(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == normalise_email(email))).scalars().first()


def own_patient(user: User) -> Patient | None:
    """The patient record a patient user holds as "self" (None for staff)."""
    if user.role != Role.PATIENT:
        return None
    return db.session.execute(
        select(Patient).join(AccessGrant, AccessGrant.patient_id == Patient.id)
        .where(AccessGrant.user_id == user.id, AccessGrant.relationship_kind == "self",
               AccessGrant.revoked_at.is_(None))
    ).scalars().first()


def password_inputs(email: str, display_name: str | None = None, patient: Patient | None = None) -> list[str]:
    """What this person's password must not be built from (zxcvbn user_inputs and our own check)."""
    names = [display_name]
    if patient is not None:
        names += [patient.given_name, patient.family_name]
    return personal_inputs(*names, current_app.config["CLINIC_NAME"], "portal", emails=(email,),
                           birth_date=patient.birth_date if patient is not None else None)


def last_sign_in(user: User, current) -> dict | None:
    """The sign-in before this one (time, device in words, network address), so a patient can notice
    someone else. A place is not shown: that would need an IP-location database, which a self-hosted
    portal does not have offline."""
    from portal.accounts.models import UserSession

    stmt = (select(UserSession).where(UserSession.user_id == user.id, UserSession.mfa_verified_at.is_not(None))
            .order_by(UserSession.mfa_verified_at.desc()).limit(1))
    if current is not None:
        stmt = stmt.where(UserSession.id != current.id)
    previous = db.session.execute(stmt).scalars().first()
    if previous is None:
        return None
    return {"at": previous.mfa_verified_at, "device": devices.describe(previous.user_agent), "ip": previous.ip,
            "live": previous.revoked_at is None}


# --- signing out ---------------------------------------------------------------------------

def sign_out(record) -> None:
    if record is not None:
        record_event(EventTag.SIGNOUT, actor=record.user, object_type="session", object_id=record.public_id)
    sessions.end_current("signout")


def sign_out_everywhere(user: User) -> None:
    n = sessions.revoke_all(user, "signout_everywhere")
    record_event(EventTag.SESSION_REVOKED, actor=user, object_type="session", object_id="all", detail={"count": n})
    sessions.end_current("signout_everywhere")


def revoke_session(user: User, public_id: str) -> None:
    """Sign out one of the user's own live sessions; anything else is a 404 with a 'denied' row."""
    if not sessions.revoke_one(user, public_id):
        deny("session", public_id, actor=user)
        raise NotFound()
    record_event(EventTag.SESSION_REVOKED, actor=user, object_type="session", object_id=public_id)


# --- signed tokens -------------------------------------------------------------------------

def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:24]


def make_reset_token(user: User) -> str:
    return _serializer("password-reset").dumps({"u": user.public_id, "p": _password_fingerprint(user)})


def user_for_reset_token(token: str | None) -> User | None:
    if not token or not isinstance(token, str):
        return None
    try:
        data = _serializer("password-reset").loads(token, max_age=current_app.config["PASSWORD_RESET_SECONDS"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.execute(select(User).where(User.public_id == str(data.get("u")))).scalars().first()
    if user is None or user.disabled_at is not None or data.get("p") != _password_fingerprint(user):
        return None  # bound to the password hash: dies when the password changes (single use)
    return user


def make_verify_token(user: User) -> str:
    return _serializer("verify-email").dumps({"u": user.public_id, "e": user.email})


def send_verification_email(user: User) -> None:
    link = external_url("auth.verify_email", token=make_verify_token(user))
    send_after_commit(user.email, "verify_email", user.preferred_language or "en", link=link)


def resend_own_confirmation(user: User) -> None:
    """"Send the link again" on the account page (capped per recipient like reset emails)."""
    if user.email_verified_at is None and _reset_mail_allowed(user.email):
        send_verification_email(user)
        record_event(AccountEvent.CONFIRMATION_RESENT, actor=user)


def _revoke_open_codes(patient: Patient, actor: User | None, reason: str) -> int:
    n = db.session.execute(
        update(ActivationCode).where(ActivationCode.patient_id == patient.id, ActivationCode.used_at.is_(None),
                                     ActivationCode.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if n:
        record_event(AccountEvent.ACTIVATION_CODES_REVOKED, actor=actor, patient=patient, object_type="patient",
                     object_id=patient.public_id, detail={"count": n, "reason": reason})
    return n


def verify_email(token: str) -> User | None:
    """The emailed link confirms the address (nothing else: it signs no one in), and withdraws every
    open activation code of the patient, so no second code can rewrite a confirmed account."""
    try:
        data = _serializer("verify-email").loads(token, max_age=current_app.config["EMAIL_VERIFY_SECONDS"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.execute(select(User).where(User.public_id == str(data.get("u")))).scalars().first()
    if user is None or user.email != data.get("e"):
        return None
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        record_event(EventTag.EMAIL_VERIFIED, actor=user)
    patient = own_patient(user)
    if patient is not None:
        _revoke_open_codes(patient, user, "email_verified")
    db.session.flush()
    return user


# --- password reset and change -----------------------------------------------------------

def _reset_mail_allowed(email_n: str) -> bool:
    """At most RESET_MAILS_PER_HOUR reset emails per recipient (known or not): counts this one."""
    per_hour = int(current_app.config.get("RESET_MAILS_PER_HOUR", 3))
    key = hashlib.sha256(email_n.encode()).hexdigest()
    if throttle.retry_after("reset-mail", key, per_hour, 3600):
        return False
    throttle.record_failure("reset-mail", key, per_hour, 3600)
    return True


def request_password_reset(email: str, ip: str | None, language: str = "en") -> None:
    """Same answer and the same work whatever the email: one message is queued either way. An active
    account with a confirmed address gets the link; any other address gets a notice that no link was
    sent (so a mistyped, unconfirmed address can never receive a way in) with the clinic's number."""
    lockout.check_ip("reset-ip", ip)
    lockout.count_ip("reset-ip", ip)  # every request counts: each one can send a mail
    email_n = normalise_email(email)
    user = user_by_email(email_n)
    eligible = (user is not None and user.disabled_at is None
                and (user.email_verified_at is not None or user.role != Role.PATIENT))
    if not _reset_mail_allowed(email_n):
        record_event(AccountEvent.RESET_MAIL_CAPPED, actor=user if eligible else None, outcome="failure")
        return
    if eligible:
        link = external_url("auth.reset_link", token=make_reset_token(user))
        send_after_commit(user.email, "password_reset", user.preferred_language or language, link=link)
        record_event(EventTag.PASSWORD_RESET_REQUESTED, actor=user)
    else:
        send_after_commit(email_n, "password_reset_no_account", language, link=external_url("main.help"))
        record_event(EventTag.PASSWORD_RESET_REQUESTED, outcome="unknown_account")


def _set_password(user: User, new_password: str) -> None:
    errors = quick_errors(new_password) or policy_errors(new_password, password_inputs(user.email, user.display_name,
                                                                                      own_patient(user)))
    if errors:
        raise DomainError(errors[0], field="password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()


def reset_password(user: User, new_password: str) -> None:
    """The emailed reset also lifts every lock on the address, the cap included."""
    _set_password(user, new_password)
    lockout.clear_all(user.email)
    sessions.revoke_all(user, "password_reset")
    record_event(EventTag.PASSWORD_RESET, actor=user)
    send_after_commit(user.email, "password_changed", user.preferred_language or "en")
    db.session.flush()


def change_password(user: User, record, current_password: str, new_password: str, ip: str | None) -> None:
    reauthenticate(user, record, current_password, ip)
    _set_password(user, new_password)
    revoked = sessions.revoke_all(user, "password_changed", keep=record)
    record_event(EventTag.PASSWORD_CHANGED, actor=user, detail={"sessions_ended": revoked})
    send_after_commit(user.email, "password_changed", user.preferred_language or "en")
    db.session.flush()


def regenerate_recovery_codes(user: User, record, current_password: str, ip: str | None) -> list[str]:
    reauthenticate(user, record, current_password, ip)
    codes = mfa.new_recovery_codes(user)
    record_event(EventTag.RECOVERY_REGENERATED, actor=user)
    return codes


# --- second factor: first enrolment and replacement ---------------------------------------

def finish_enrolment(user: User, record, code: str, ip: str | None) -> list[str]:
    """First enrolment, from a password-only session, on an account that has no factor. The claim
    refuses if a factor appeared meanwhile (another session enrolled first): a password-only session
    never replaces a factor."""
    if user.totp_secret_enc is not None:
        raise DomainError(_("Two-step verification is already set up on this account. Sign in with a code "
                            "from your app."), field="code")
    key = lockout.account_key(user.email)
    lockout.check(key, ip)
    if not mfa.confirm_enrolment(user, record, code):
        db.session.refresh(user, ["totp_secret_enc"])
        if user.totp_secret_enc is not None:
            raise DomainError(_("Two-step verification was just set up from another device. Sign in again with "
                                "a code from that app."), field="code")
        result = lockout.record_failure(key, ip, user, EventTag.MFA_FAILURE, "enrolment")
        raise AuthFailed(_lock_warning(_("That code did not match. Check the time on your phone and enter the "
                                         "newest code."), result), field="code")
    lockout.clear(key)
    record_event(EventTag.MFA_ENROLLED, actor=user)
    send_after_commit(user.email, "mfa_enabled", user.preferred_language or "en")
    return mfa.new_recovery_codes(user)


def start_authenticator_change(user: User, record, current_password: str, code: str, ip: str | None) -> None:
    """Replace the authenticator, step 1: the password and a current code (re-authentication). The
    old factor stays in force; this session alone gets a new secret to set up."""
    reauthenticate(user, record, current_password, ip)
    if user.totp_enabled:  # a passkey-only account adds its first app with the password alone
        verify_second_factor(user, code, ip, record=record)
    mfa.begin_enrolment(record, fresh=True)
    record_event(AccountEvent.MFA_CHANGE_STARTED, actor=user, object_type="session", object_id=record.public_id)
    db.session.flush()


def finish_authenticator_change(user: User, record, code: str, ip: str | None) -> list[str]:
    """Step 2: a code from the new app makes it the factor (one conditional UPDATE on the old one);
    then new recovery codes, and every other session ends."""
    if record is None or record.mfa_verified_at is None or not user.mfa_enabled or mfa.pending_secret(record) is None:
        raise DomainError(_("Your time to set up the new app ran out. Start again."))
    if user.totp_enabled_at is not None and user.totp_enabled_at > record.totp_pending_at:
        raise DomainError(_("Two-step verification was changed from another device meanwhile. Start again."))
    key, email_key = _session_key(user, record)
    lockout.check(key, ip)
    if not mfa.confirm_enrolment(user, record, code, replacing=user.totp_enabled):
        result = lockout.record_failure(key, ip, user, EventTag.MFA_FAILURE, "replacement", email_key=email_key)
        raise AuthFailed(_lock_warning(_("That code did not match. Check the time on your phone and enter the "
                                         "newest code from the new app."), result), field="code")
    lockout.clear(key)
    ended = sessions.revoke_all(user, "mfa_replaced", keep=record)
    codes = mfa.new_recovery_codes(user)
    record_event(AccountEvent.MFA_REPLACED, actor=user, object_type="user", object_id=user.public_id,
                 detail={"sessions_ended": ended})
    send_after_commit(user.email, "mfa_enabled", user.preferred_language or "en")
    return codes


# --- email change ----------------------------------------------------------------------------

def make_email_change_token(user: User, new_email: str) -> str:
    return _serializer("email-change").dumps({"u": user.public_id, "e": new_email, "p": _password_fingerprint(user)})


def request_email_change(user: User, record, current_password: str, new_email: str, ip: str | None) -> None:
    reauthenticate(user, record, current_password, ip)
    new_n = normalise_email(new_email)
    if new_n == user.email:
        raise DomainError(_("That is already your email address. Enter a different one."), field="email")
    if user_by_email(new_n) is not None:
        raise DomainError(_("This email address cannot be used. Choose another."), field="email")
    link = external_url("account.confirm_email_change", token=make_email_change_token(user, new_n))
    send_after_commit(new_n, "email_change", user.preferred_language or "en", link=link)
    record_event(EventTag.EMAIL_CHANGE_REQUESTED, actor=user)
    db.session.flush()


def confirm_email_change(token: str, current=None) -> User | None:
    """Apply the change from the link sent to the new address; the old address gets a notice."""
    try:
        data = _serializer("email-change").loads(token, max_age=current_app.config["EMAIL_VERIFY_SECONDS"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.execute(select(User).where(User.public_id == str(data.get("u")))).scalars().first()
    new_n = normalise_email(data.get("e"))
    if user is None or user.disabled_at is not None or data.get("p") != _password_fingerprint(user):
        return None
    if user.email == new_n:
        return user  # already applied (link opened twice)
    if user_by_email(new_n) is not None:
        return None
    old = user.email
    user.email = new_n
    user.email_verified_at = utcnow()
    sessions.revoke_all(user, "email_changed", keep=current if current and current.user_id == user.id else None)
    record_event(EventTag.EMAIL_CHANGED, actor=user, object_type="user", object_id=user.public_id)
    send_after_commit(old, "email_changed", user.preferred_language or "en")
    db.session.flush()
    return user


# --- activation ----------------------------------------------------------------------------

def _normalise_activation(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def patient_account(patient: Patient) -> User | None:
    return db.session.execute(
        select(User).join(AccessGrant, AccessGrant.user_id == User.id)
        .where(AccessGrant.patient_id == patient.id, AccessGrant.relationship_kind == "self",
               AccessGrant.revoked_at.is_(None))
    ).scalars().first()


def _account_is_active(user: User | None) -> bool:
    """An account someone has taken up: a confirmed address or a second factor. Activation codes are
    never issued for it and never rewrite it."""
    return user is not None and (user.email_verified_at is not None or user.totp_secret_enc is not None
                                 or user.passkeys_enabled_at is not None)


def issue_activation(staff: User, patient: Patient) -> str:
    """A new one-time code (older unused codes for this patient stop working). Returns it once."""
    require_function(staff, "activation")
    if _account_is_active(patient_account(patient)):
        raise DomainError(_("This patient already has an active portal account. Help them sign in, or reset "
                            "their password or two-step verification instead."))
    now = utcnow()
    db.session.execute(update(ActivationCode)
                       .where(ActivationCode.patient_id == patient.id, ActivationCode.used_at.is_(None),
                              ActivationCode.revoked_at.is_(None))
                       .values(revoked_at=now))
    raw = "".join(secrets.choice(ACTIVATION_ALPHABET) for _ in range(12))
    db.session.add(ActivationCode(
        patient_id=patient.id, code_hash=keyed_hash(raw, "activation"), issued_by_id=staff.id,
        expires_at=now + timedelta(days=current_app.config["ACTIVATION_CODE_DAYS"]),
    ))
    record_event(EventTag.ACTIVATION_ISSUED, actor=staff, patient=patient, object_type="patient",
                 object_id=patient.public_id)
    code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    if patient.email:
        link = external_url("auth.activate")
        send_after_commit(patient.email, "activation", patient.preferred_language or "en", code=code, link=link,
                          days=current_app.config["ACTIVATION_CODE_DAYS"])
    db.session.flush()
    return code


def _activation_refused() -> DomainError:
    return DomainError(_("We could not match that activation code and birth date. Check both, or call the clinic "
                         "at %(phone)s for a new code.", phone=current_app.config["CLINIC_PHONE"]))


def _open_code(row: ActivationCode | None) -> bool:
    return row is not None and row.used_at is None and row.revoked_at is None and row.expires_at > utcnow()


def check_activation(code: str, birth_date, ip: str | None) -> int:
    """Activation, step 1: the clinic's code and the birth date on the record. Returns the code's id
    (the route keeps it in the session for step 2). Every mismatch gives the same answer."""
    lockout.check_ip("activate-ip", ip)
    row = db.session.execute(
        select(ActivationCode).where(ActivationCode.code_hash == keyed_hash(_normalise_activation(code),
                                                                            "activation"))
    ).scalars().first()
    patient = db.session.get(Patient, row.patient_id) if row is not None else None
    valid = _open_code(row) and patient is not None and patient.birth_date == birth_date
    if valid and _account_is_active(patient_account(patient)):
        _revoke_open_codes(patient, None, "account_active")  # cannot happen once verification revokes them
        valid = False
    if not valid:
        lockout.count_ip("activate-ip", ip)
        if row is not None and row.used_at is None:
            row.failed_attempts += 1
            if row.failed_attempts >= 5:
                row.revoked_at = utcnow()
        record_event(EventTag.ACTIVATION_FAILED, outcome="failure", patient_id=row.patient_id if row else None)
        db.session.flush()
        raise _activation_refused()
    record_event(AccountEvent.ACTIVATION_CHECKED, patient=patient, object_type="patient", object_id=patient.public_id)
    db.session.flush()
    return row.id


def activate(code_id: int, email: str, password: str, ip: str | None, language: str = "en") -> User:
    """Activation, step 2: the email and password of the new account. Claims the code atomically, opens
    the account (or takes over an abandoned one: never confirmed, no second factor), withdraws every
    other open code, and sends the confirmation link. The route then starts a password-only session
    that goes straight to setting up the authenticator."""
    lockout.check_ip("activate-ip", ip)
    errors = quick_errors(password)
    if errors:
        raise DomainError(errors[0], field="password")
    row = db.session.get(ActivationCode, code_id, populate_existing=True)
    patient = db.session.get(Patient, row.patient_id) if row is not None else None
    user = patient_account(patient) if patient is not None else None
    if not _open_code(row) or patient is None or _account_is_active(user):
        raise _activation_refused()
    email_n = normalise_email(email)
    errors = policy_errors(password, password_inputs(email_n, None, patient))
    if errors:
        raise DomainError(errors[0], field="password")
    clash = user_by_email(email_n)
    if clash is not None and clash is not user:
        # The person has proved the code and birth date; still, tell the address's owner, and count it
        # against the code so it cannot be used to test many addresses.
        row.failed_attempts += 1
        if row.failed_attempts >= 5:
            row.revoked_at = utcnow()
        record_event(EventTag.ACTIVATION_FAILED, outcome="failure", patient=patient, detail={"reason": "email_in_use"})
        send_after_commit(email_n, "activation_email_in_use", clash.preferred_language or "en",
                          link=external_url("auth.forgot_password"))
        db.session.flush()
        raise DomainError(_("This email address cannot be used for a new account. Enter another one, or sign in "
                            "if you already have an account."), field="email")
    now = utcnow()
    # Claim the code atomically: of two simultaneous submits (a double click, two tabs) one wins and the
    # other gets the generic answer, so a code can never open two accounts.
    claimed = db.session.execute(
        update(ActivationCode).where(ActivationCode.id == row.id, ActivationCode.used_at.is_(None),
                                     ActivationCode.revoked_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise _activation_refused()
    row.used_at = now
    if user is None:
        user = User(email=email_n, role=Role.PATIENT.value, display_name=patient.given_name,
                    password_hash=hash_password(password), preferred_language=language,
                    password_changed_at=now)
        db.session.add(user)
        db.session.flush()
        db.session.add(AccessGrant(user_id=user.id, patient_id=patient.id, relationship_kind="self"))
    else:  # abandoned before it was confirmed or protected: start it again for this person
        user.email = email_n
        user.password_hash = hash_password(password)
        user.password_changed_at = now
        user.preferred_language = language
        sessions.revoke_all(user, "activation")
    _revoke_open_codes(patient, user, "activated")
    record_event(EventTag.ACTIVATION_COMPLETED, actor=user, patient=patient)
    db.session.flush()
    send_verification_email(user)
    return user


# --- staff accounts and support actions --------------------------------------------------

def create_staff(email: str, role: str, display_name: str, actor: User | None = None,
                 password: str | None = None) -> User:
    if role not in STAFF_ROLE_VALUES:
        raise DomainError(_("Choose a staff role."), field="role")
    email_n = normalise_email(email)
    if user_by_email(email_n) is not None:
        raise DomainError(_("An account with this email already exists."), field="email")
    if password is not None:
        errors = policy_errors(password, password_inputs(email_n, display_name))
        if errors:
            raise DomainError(errors[0], field="password")
    user = User(email=email_n, role=role, display_name=display_name.strip()[:200],
                password_hash=hash_password(password or secrets.token_urlsafe(32)),
                email_verified_at=utcnow(), password_changed_at=utcnow() if password else None)
    db.session.add(user)
    db.session.flush()
    record_event(EventTag.ACCOUNT_CREATED, actor=actor, object_type="user", object_id=user.public_id,
                 detail={"role": role})
    if password is None:
        link = external_url("auth.reset_link", token=make_reset_token(user))
        send_after_commit(user.email, "staff_welcome", "en", link=link)
    return user


def change_role(admin: User, user: User, role: str) -> None:
    require_function(admin, "staff_admin")
    if role not in STAFF_ROLE_VALUES or user.role not in STAFF_ROLE_VALUES:
        raise DomainError(_("Choose a staff role."), field="role")
    if user.id == admin.id:
        raise DomainError(_("You cannot change your own role."))
    old = user.role
    user.role = role
    sessions.revoke_all(user, "role_changed")
    record_event(EventTag.ROLE_CHANGED, actor=admin, object_type="user", object_id=user.public_id,
                 detail={"from": old, "to": role})
    db.session.flush()


def set_disabled(admin: User, user: User, disabled: bool) -> None:
    require_function(admin, "staff_admin")
    if user.id == admin.id:
        raise DomainError(_("You cannot disable your own account."))
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        sessions.revoke_all(user, "disabled")
    record_event(EventTag.ACCOUNT_DISABLED if disabled else EventTag.ACCOUNT_ENABLED, actor=admin,
                 object_type="user", object_id=user.public_id)
    db.session.flush()


def unlock(staff: User, user: User, patient: Patient | None = None) -> None:
    """Support or admin lifts the lock (the cap of consecutive failures too), remembered devices' included."""
    require_function(staff, "account_unlock")
    lockout.clear_all(user.email)
    record_event(EventTag.ACCOUNT_UNLOCKED, actor=staff, patient=patient, object_type="user",
                 object_id=user.public_id)
    db.session.flush()


def reset_mfa(staff: User, user: User, method: str, birth_date_confirmed: bool, patient: Patient | None = None) -> None:
    """Support resets a user's authenticator after checking identity; they enrol again at next sign-in."""
    require_function(staff, "mfa_reset")
    if user.id == staff.id:
        # Never self-service through the staff routes (a bare POST with one's own id): one's own
        # authenticator is replaced on the account page, with the password and a current code.
        raise Forbidden()
    if method not in IDENTITY_METHODS:
        raise DomainError(_("Record how you checked the person's identity."), field="method")
    if patient is not None and not birth_date_confirmed:
        raise DomainError(_("Confirm that the person told you their birth date."), field="birth_date_confirmed")
    db.session.add(SupportIdentityCheck(staff_id=staff.id, user_id=user.id, method=method, action="mfa_reset",
                                        verified_birth_date=birth_date_confirmed))
    mfa.clear_mfa(user)
    sessions.revoke_all(user, "mfa_reset")
    record_event(EventTag.MFA_RESET, actor=staff, patient=patient, object_type="user", object_id=user.public_id,
                 detail={"method": method})
    send_after_commit(user.email, "mfa_reset", user.preferred_language or "en")
    db.session.flush()

"""Account rules: sign-in with throttling and lock, second factor, activation, email verification,
password reset/change, staff accounts, support actions. Services flush, never commit; routes commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from portal.accounts import lockout, mfa, sessions
from portal.accounts.lockout import normalise_email
from portal.accounts.models import (
    STAFF_ROLES,
    AccessGrant,
    ActivationCode,
    SupportIdentityCheck,
    User,
)
from portal.accounts.passwords import hash_password, needs_rehash, policy_errors, verify_password
from portal.core.access import require_function
from portal.core.audit import EventTag, record_event
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.core.mail import build_message, send_after_commit
from portal.extensions import db
from portal.patients.models import Patient

ACTIVATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
IDENTITY_METHODS = ("photo_id_in_person", "video_call_with_id", "callback_with_verification")


class AuthFailed(DomainError):
    pass


class EmailNotVerified(DomainError):
    pass


def authenticate(email: str, password: str, ip: str | None) -> User:
    """Password step. Raises Throttled, AuthFailed (generic) or EmailNotVerified."""
    key = lockout.account_key(email)
    user = user_by_email(email)
    lockout.check(key, ip)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled_at is not None:
        lockout.record_failure(key, ip, user, EventTag.SIGNIN_FAILURE, "password" if user else "unknown_account")
        raise AuthFailed(_("That email and password do not match our records."))
    if user.role == "patient" and user.email_verified_at is None:
        send_verification_email(user)
        raise EmailNotVerified(_("Please confirm your email address first. We have sent you a new link."))
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    lockout.clear(key)
    record_event(EventTag.SIGNIN_SUCCESS, actor=user, detail={"step": "password"})
    db.session.flush()
    return user


def verify_second_factor(user: User, code: str, ip: str | None, *, recovery: bool = False) -> None:
    key = lockout.account_key(user.email)
    lockout.check(key, ip)
    ok = mfa.use_recovery_code(user, code) if recovery else mfa.verify_totp(user, code)
    if not ok:
        lockout.record_failure(key, ip, user, EventTag.MFA_FAILURE, "recovery" if recovery else "totp")
        raise AuthFailed(_("That code is not valid. Check your authenticator app and try again."))
    lockout.clear(key)
    record_event(EventTag.MFA_RECOVERY_USED if recovery else EventTag.MFA_SUCCESS, actor=user)
    db.session.flush()


def reauthenticate(user: User, record, password: str, ip: str | None) -> None:
    """Sensitive changes ask for the current password (or accept a sign-in within 5 minutes)."""
    key = lockout.account_key(user.email)
    lockout.check(key, ip)
    if not verify_password(user.password_hash, password):
        lockout.record_failure(key, ip, user, EventTag.SIGNIN_FAILURE, "reauth")
        raise AuthFailed(_("Your current password is not correct."), field="current_password")
    lockout.clear(key)
    sessions.mark_reauthenticated(record)
    record_event(EventTag.REAUTH, actor=user)


def user_by_email(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == normalise_email(email))).scalars().first()


# --- signing out ---------------------------------------------------------------------------

def sign_out() -> None:
    record = sessions.current_record()
    if record is not None:
        record_event(EventTag.SIGNOUT, actor=record.user, object_type="session", object_id=record.public_id)
    sessions.end_current("signout")


def sign_out_everywhere(user: User) -> None:
    n = sessions.revoke_all(user, "signout_everywhere")
    record_event(EventTag.SESSION_REVOKED, actor=user, object_type="session", object_id="all", detail={"count": n})
    sessions.end_current("signout_everywhere")


def revoke_session(user: User, public_id: str) -> bool:
    """Sign out one of the user's own sessions; False if it is not theirs or not live."""
    if not sessions.revoke_one(user, public_id):
        return False
    record_event(EventTag.SESSION_REVOKED, actor=user, object_type="session", object_id=public_id)
    return True


# --- signed tokens -------------------------------------------------------------------------

def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:24]


def make_reset_token(user: User) -> str:
    return _serializer("password-reset").dumps({"u": user.public_id, "p": _password_fingerprint(user)})


def user_for_reset_token(token: str) -> User | None:
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
    link = current_app.config["PUBLIC_BASE_URL"] + url_for("auth.verify_email", token=make_verify_token(user))
    send_after_commit(user.email, "verify_email", user.preferred_language or "en", link=link)


def verify_email(token: str) -> User | None:
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
        db.session.flush()
    return user


# --- password reset and change -----------------------------------------------------------

def request_password_reset(email: str, ip: str | None) -> None:
    """Same outcome whatever the email: a link goes out only when an active account has it."""
    lockout.check_ip("reset-ip", ip)
    lockout.count_ip("reset-ip", ip)  # every request counts: each one can send a mail
    user = user_by_email(email)
    if user is None or user.disabled_at is not None:
        # Do the same work as for a real account (token, message, audit row), then drop the message,
        # so the answer takes as long either way.
        token = _serializer("password-reset").dumps({"u": "0" * 32, "p": "0" * 24})
        build_message(normalise_email(email), "password_reset", "en", link=url_for("auth.reset_password", token=token))
        record_event(EventTag.PASSWORD_RESET_REQUESTED, outcome="unknown_account")
        return
    link = current_app.config["PUBLIC_BASE_URL"] + url_for("auth.reset_password", token=make_reset_token(user))
    send_after_commit(user.email, "password_reset", user.preferred_language or "en", link=link)
    record_event(EventTag.PASSWORD_RESET_REQUESTED, actor=user)


def _set_password(user: User, new_password: str) -> None:
    errors = policy_errors(new_password, [user.email, user.display_name])
    if errors:
        raise DomainError(errors[0], field="password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()


def reset_password(user: User, new_password: str) -> None:
    _set_password(user, new_password)
    lockout.clear(lockout.account_key(user.email))
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


def finish_enrolment(user: User, code: str, ip: str | None) -> list[str]:
    key = lockout.account_key(user.email)
    lockout.check(key, ip)
    if not mfa.confirm_enrolment(user, code):
        lockout.record_failure(key, ip, user, EventTag.MFA_FAILURE, "enrolment")
        raise AuthFailed(_("That code did not match. Check the time on your phone and enter the newest code."),
                         field="code")
    lockout.clear(key)
    record_event(EventTag.MFA_ENROLLED, actor=user)
    send_after_commit(user.email, "mfa_enabled", user.preferred_language or "en")
    return mfa.new_recovery_codes(user)


def start_authenticator_change(user: User, record, current_password: str, code: str, ip: str | None) -> None:
    """Replace the authenticator: needs the password and a current code (re-authentication), then the
    session drops back to the enrolment step and every other session ends."""
    reauthenticate(user, record, current_password, ip)
    verify_second_factor(user, code, ip)
    mfa.clear_mfa(user)
    sessions.revoke_all(user, "mfa_reset", keep=record)
    record.mfa_verified_at = None
    record_event(EventTag.MFA_RESET, actor=user, object_type="user", object_id=user.public_id,
                 detail={"by": "self"})
    db.session.flush()


def make_email_change_token(user: User, new_email: str) -> str:
    return _serializer("email-change").dumps({"u": user.public_id, "e": new_email, "p": _password_fingerprint(user)})


def request_email_change(user: User, record, current_password: str, new_email: str, ip: str | None) -> None:
    reauthenticate(user, record, current_password, ip)
    new_n = normalise_email(new_email)
    if new_n == user.email:
        raise DomainError(_("That is already your email address."), field="email")
    if user_by_email(new_n) is not None:
        raise DomainError(_("This email address cannot be used. Choose another."), field="email")
    link = current_app.config["PUBLIC_BASE_URL"] + url_for("account.confirm_email_change",
                                                           token=make_email_change_token(user, new_n))
    send_after_commit(new_n, "email_change", user.preferred_language or "en", link=link)
    record_event(EventTag.EMAIL_CHANGE_REQUESTED, actor=user)
    db.session.flush()


def confirm_email_change(token: str) -> User | None:
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
    current = sessions.current_record()
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


def issue_activation(staff: User, patient: Patient) -> str:
    """A new one-time code (older unused codes for this patient stop working). Returns it once."""
    require_function(staff, "activation")
    existing = patient_account(patient)
    if existing is not None and existing.email_verified_at is not None:
        raise DomainError(_("This patient already has an active portal account."))
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
        link = current_app.config["PUBLIC_BASE_URL"] + url_for("auth.activate")
        send_after_commit(patient.email, "activation", patient.preferred_language or "en", code=code, link=link,
                          days=current_app.config["ACTIVATION_CODE_DAYS"])
    db.session.flush()
    return code


def activate(code: str, birth_date, email: str, password: str, ip: str | None, language: str = "en") -> User | None:
    """Patient self-activation. Every mismatch gives the same answer, so nothing about a record leaks."""
    lockout.check_ip("activate-ip", ip)
    generic = _("We could not match that activation code and birth date. Check both, or call the clinic "
                "for a new code.")
    now = utcnow()
    row = db.session.execute(
        select(ActivationCode).where(ActivationCode.code_hash == keyed_hash(_normalise_activation(code),
                                                                            "activation"))
    ).scalars().first()
    patient = db.session.get(Patient, row.patient_id) if row is not None else None
    valid = (row is not None and row.used_at is None and row.revoked_at is None and row.expires_at > now
             and patient is not None and patient.birth_date == birth_date)
    if not valid:
        lockout.count_ip("activate-ip", ip)
        if row is not None and row.used_at is None:
            row.failed_attempts += 1
            if row.failed_attempts >= 5:
                row.revoked_at = now
        record_event(EventTag.ACTIVATION_FAILED, outcome="failure", patient_id=row.patient_id if row else None)
        db.session.flush()
        raise DomainError(generic)
    email_n = normalise_email(email)
    user = patient_account(patient)
    errors = policy_errors(password, [email_n, patient.given_name, patient.family_name,
                                      patient.birth_date.isoformat()])
    if errors:
        raise DomainError(errors[0], field="password")
    clash = user_by_email(email_n)
    if clash is not None and clash is not user:
        # Same answer as success, so a code cannot be used to test which emails have accounts; the
        # address's owner is told, and the code stays usable with another address.
        hash_password(password)  # the same work as the success path
        record_event(EventTag.ACTIVATION_FAILED, outcome="failure", patient=patient, detail={"reason": "email_in_use"})
        send_after_commit(email_n, "activation_email_in_use", clash.preferred_language or "en",
                          link=current_app.config["PUBLIC_BASE_URL"] + url_for("auth.forgot_password"))
        db.session.flush()
        return None
    # Claim the code atomically: of two simultaneous submits (a double click, two tabs) one wins and the
    # other gets the generic answer, so a code can never open two accounts.
    claimed = db.session.execute(
        update(ActivationCode).where(ActivationCode.id == row.id, ActivationCode.used_at.is_(None),
                                     ActivationCode.revoked_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise DomainError(generic)
    row.used_at = now
    if user is None:
        user = User(email=email_n, role="patient", display_name=patient.given_name,
                    password_hash=hash_password(password), preferred_language=language,
                    password_changed_at=now)
        db.session.add(user)
        db.session.flush()
        db.session.add(AccessGrant(user_id=user.id, patient_id=patient.id, relationship_kind="self"))
    else:
        user.email = email_n
        user.password_hash = hash_password(password)
        user.password_changed_at = now
        user.preferred_language = language
    record_event(EventTag.ACTIVATION_COMPLETED, actor=user, patient=patient)
    db.session.flush()
    send_verification_email(user)
    return user


# --- staff accounts and support actions --------------------------------------------------

def create_staff(email: str, role: str, display_name: str, actor: User | None = None,
                 password: str | None = None) -> User:
    if role not in STAFF_ROLES:
        raise DomainError(_("Choose a staff role."), field="role")
    email_n = normalise_email(email)
    if user_by_email(email_n) is not None:
        raise DomainError(_("An account with this email already exists."), field="email")
    if password is not None:
        errors = policy_errors(password, [email_n, display_name])
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
        link = current_app.config["PUBLIC_BASE_URL"] + url_for("auth.reset_password", token=make_reset_token(user))
        send_after_commit(user.email, "staff_welcome", "en", link=link)
    return user


def change_role(admin: User, user: User, role: str) -> None:
    require_function(admin, "staff_admin")
    if role not in STAFF_ROLES or user.role not in STAFF_ROLES:
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
    require_function(staff, "account_unlock")
    lockout.clear(lockout.account_key(user.email))
    record_event(EventTag.ACCOUNT_UNLOCKED, actor=staff, patient=patient, object_type="user",
                 object_id=user.public_id)
    db.session.flush()


def reset_mfa(staff: User, user: User, method: str, birth_date_confirmed: bool, patient: Patient | None = None) -> None:
    """Support resets a user's authenticator after checking identity; they enrol again at next sign-in."""
    require_function(staff, "mfa_reset")
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


def set_language(user: User | None, lang: str) -> None:
    if lang not in current_app.config["LANGUAGES"]:
        raise DomainError(_("Choose English or Spanish."))
    if user is not None and getattr(user, "is_authenticated", False):
        user.preferred_language = lang
        record_event(EventTag.LANGUAGE_CHANGED, actor=user, detail={"lang": lang})
        db.session.flush()

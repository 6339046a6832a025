"""Support console rules: what support staff may do for a patient's portal account. Each action goes
through the accounts domain's services or checks the staff function itself, and is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.accounts import lockout
from portal.accounts import services as accounts
from portal.accounts.models import ActivationCode, User
from portal.core.access import patient_for, require_function
from portal.core.audit import EventTag, record_event
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound
from portal.core.mail import send_after_commit
from portal.core.registry import staff_patient_panels
from portal.core.web import external_url
from portal.extensions import db
from portal.patients import services as patients
from portal.patients.models import AccessGrant

# An account's state in words, for the search results and the patient page.
STATUS_LABELS = {
    "none": _l("No account"),
    "invited": _l("Invited"),
    "active": _l("Active"),
    "locked": _l("Locked"),
    "disabled": _l("Disabled"),
}
STATUS_BADGES = {"none": "neutral", "invited": "info", "active": "success", "locked": "warning", "disabled": "error"}


@dataclass
class Result:
    patient: object
    status: str

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS[self.status])

    @property
    def badge(self) -> str:
        return STATUS_BADGES[self.status]


def _statuses(patient_rows) -> dict[int, str]:
    """{patient id: none | invited | active | locked | disabled}, in three queries for the whole page."""
    ids = [p.id for p in patient_rows]
    if not ids:
        return {}
    accounts_by_patient = dict(db.session.execute(
        select(AccessGrant.patient_id, User).join(User, User.id == AccessGrant.user_id)
        .where(AccessGrant.patient_id.in_(ids), AccessGrant.relationship_kind == "self",
               AccessGrant.revoked_at.is_(None))).all())
    invited = set(db.session.execute(
        select(ActivationCode.patient_id).where(ActivationCode.patient_id.in_(ids), ActivationCode.used_at.is_(None),
                                                ActivationCode.revoked_at.is_(None),
                                                ActivationCode.expires_at > utcnow())).scalars())
    locks = lockout.lock_status(list(accounts_by_patient.values()))
    out = {}
    for pid in ids:
        user = accounts_by_patient.get(pid)
        if user is None:
            out[pid] = "invited" if pid in invited else "none"
        elif user.disabled_at is not None:
            out[pid] = "disabled"
        elif user.id in locks:
            out[pid] = "locked"
        elif accounts._account_is_active(user):
            out[pid] = "active"
        else:
            out[pid] = "invited"
    return out


def search(actor, query: str, *, day_first: bool = False) -> list[Result]:
    rows = patients.search(actor, query, day_first=day_first)
    statuses = _statuses(rows)
    return [Result(p, statuses[p.id]) for p in rows]


def patient_page(actor, patient_public_id: str) -> dict:
    """The patient (an audited view of demographics) and their portal account's state."""
    patient = patients.view_demographics(actor, patient_public_id)
    account = accounts.patient_account(patient)
    locked_until = lockout.lock_status([account]).get(account.id) if account else None
    status = _statuses([patient])[patient.id]
    return {"patient": patient, "account": account, "locked_until": locked_until, "status": status,
            "status_label": str(STATUS_LABELS[status]), "status_badge": STATUS_BADGES[status],
            "panels": staff_patient_panels.render_for(actor, patient)}


def account_page(actor, patient_public_id: str) -> dict:
    """The patient (an audited view of demographics) and their account, for the email-correction page."""
    patient = patients.view_demographics(actor, patient_public_id)
    return {"patient": patient, "account": accounts.patient_account(patient)}


def _patient_and_account(actor, patient_public_id: str):
    patient = patient_for(actor, patient_public_id)
    account = accounts.patient_account(patient)
    if account is None:
        raise NotFound()
    return patient, account


def issue_activation(actor, patient_public_id: str):
    """A new code, and what the printed handout needs: the patient, the code and when it expires."""
    patient = patient_for(actor, patient_public_id)
    code = accounts.issue_activation(actor, patient)
    expires = utcnow() + timedelta(days=current_app.config["ACTIVATION_CODE_DAYS"])
    return patient, code, expires


def unlock(actor, patient_public_id: str) -> None:
    patient, account = _patient_and_account(actor, patient_public_id)
    accounts.unlock(actor, account, patient)


def reset_mfa(actor, patient_public_id: str, method: str, birth_date_confirmed: bool) -> None:
    patient, account = _patient_and_account(actor, patient_public_id)
    accounts.reset_mfa(actor, account, method, birth_date_confirmed, patient=patient)


# --- help with the account's email: confirmation, reset link, a mistyped address ------------------

def _mail_allowed(account: User) -> None:
    if not accounts._reset_mail_allowed(lockout.normalise_email(account.email)):
        raise DomainError(_("We already sent several emails to this address in the last hour. Wait a while, "
                            "then try again."))


def resend_confirmation(actor, patient_public_id: str) -> None:
    """Send the email-confirmation link again (the patient never got it, or it expired)."""
    require_function(actor, "account_support")
    patient, account = _patient_and_account(actor, patient_public_id)
    if account.email_verified_at is not None:
        raise DomainError(_("This address is already confirmed."))
    _mail_allowed(account)
    accounts.send_verification_email(account)
    record_event(accounts.AccountEvent.CONFIRMATION_RESENT, actor=actor, patient=patient, object_type="user",
                 object_id=account.public_id, detail={"by": "staff"})


def send_reset_link(actor, patient_public_id: str) -> None:
    """Email a password-reset link to the account's confirmed address (never to an unconfirmed one: a
    mistyped address must not receive a way in; correct it and confirm it first)."""
    require_function(actor, "account_support")
    patient, account = _patient_and_account(actor, patient_public_id)
    if account.disabled_at is not None:
        raise DomainError(_("This account is disabled."))
    if account.email_verified_at is None:
        raise DomainError(_("The address is not confirmed yet. Check it with the patient, correct it if needed, "
                            "and send the confirmation email first."))
    _mail_allowed(account)
    link = external_url("auth.reset_link", token=accounts.make_reset_token(account))
    send_after_commit(account.email, "password_reset", account.preferred_language or patient.preferred_language
                      or "en", link=link)
    record_event(EventTag.PASSWORD_RESET_REQUESTED, actor=actor, patient=patient, object_type="user",
                 object_id=account.public_id, detail={"by": "staff"})


def correct_email(actor, patient_public_id: str, new_email: str) -> None:
    """Correct a mistyped, not yet confirmed sign-in address, and send the confirmation link to the new
    one. A confirmed address is changed only by the patient (with their password) on their account page."""
    require_function(actor, "account_support")
    patient, account = _patient_and_account(actor, patient_public_id)
    if account.email_verified_at is not None:
        raise DomainError(_("This address is confirmed: only the patient can change it, from their account "
                            "page."), field="email")
    email_n = lockout.normalise_email(new_email)
    if email_n == account.email:
        raise DomainError(_("That is the address the account already has."), field="email")
    other = accounts.user_by_email(email_n)
    if other is not None:
        raise DomainError(_("Another account uses this address. Check it with the patient."), field="email")
    account.email = email_n
    db.session.flush()
    record_event(EventTag.EMAIL_CHANGED, actor=actor, patient=patient, object_type="user",
                 object_id=account.public_id, detail={"by": "staff", "confirmed": False})
    _mail_allowed(account)
    accounts.send_verification_email(account)


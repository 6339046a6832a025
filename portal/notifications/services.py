"""notify(): the one function other domains call to tell a patient something; and the rules behind it.

    notify(patient, NoticeKind.NEW_RESULT, link=external_url("records.result", public_id=...))

The caller never picks a channel and never passes PHI: the notice says that something is waiting and
links to the signed-in page that shows it. One Notice row per channel is created in the caller's
transaction; each is sent after the commit by a Celery task (eager in development and tests: at the end
of the request or app context), which claims the row first, so a notice is sent at most once, and
retries with back-off. Texts respect the patient's choices, their consent, STOP replies and the quiet
hours (held until morning).

Also here: the patient's preferences and phone verification, texts patients send us (`receive_text`,
the handler registry in inbound.py, `route_unrecognised`), and what staff may see.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import datetime, timedelta

import phonenumbers
from flask import current_app, g, has_app_context
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from portal.core.access import patient_for, require_function, load_or_404
from portal.core.audit import EventTag, record_event
from portal.core.crypto import keyed_hash
from portal.core.db import new_public_id, utcnow
from portal.core.errors import DomainError
from portal.core.i18n import clinic_tz, forget_request_translations
from portal.extensions import db
from portal.notifications import channels, inbound, rules
from portal.notifications.events import NoticeEvent
from portal.notifications.kinds import ALWAYS_EMAIL, CONTEXT_KEYS, NoticeKind
from portal.notifications.models import (
    CANCELLED,
    EMAIL,
    FAILED,
    HANDLED,
    HELD,
    QUEUED,
    RESOLVED,
    SENDING,
    SENT,
    SMS,
    UNHANDLED,
    InboundText,
    Notice,
    NoticeAttachment,
    NotificationSettings,
    PhoneVerification,
    SmsOptOut,
)

log = logging.getLogger("portal.notifications")

LANGUAGES = ("en", "es")
CODE_SECONDS = 10 * 60  # a texted code lasts 10 minutes
CODE_ATTEMPTS = 5  # wrong guesses per code
CODES_PER_WINDOW, CODE_WINDOW = 3, timedelta(minutes=15)  # codes a patient may ask for
CODES_PER_NUMBER_PER_DAY = 5  # texts of codes to one number, whoever asks (no texting a stranger)
STALE_SENDING = timedelta(minutes=15)  # a claimed notice whose worker vanished
SWEEP_GRACE = timedelta(minutes=2)  # the task's own retries come first; the sweep catches the rest
RECENT_NOTICES = 10


# --- who a notice goes to ------------------------------------------------------------------------

def _recipient(recipient):
    """(the portal account to reach, its patient record or None for a staff account)."""
    from portal.accounts.models import User
    from portal.patients.models import AccessGrant, Patient

    if isinstance(recipient, User):
        if recipient.disabled_at is not None:
            return None, None
        if str(recipient.role) != "patient":
            return recipient, None
        patient = db.session.execute(
            select(Patient).join(AccessGrant, AccessGrant.patient_id == Patient.id)
            .where(AccessGrant.user_id == recipient.id, AccessGrant.relationship_kind == "self",
                   AccessGrant.revoked_at.is_(None))).scalars().first()
        return recipient, patient
    user = _account_of(recipient.id)
    return user, (recipient if user is not None else None)


def _account_of(patient_id: int):
    """The patient's own (self-grant), active portal account, or None."""
    from portal.accounts.models import User
    from portal.patients.models import AccessGrant

    return db.session.execute(
        select(User).join(AccessGrant, AccessGrant.user_id == User.id)
        .where(AccessGrant.patient_id == patient_id, AccessGrant.relationship_kind == "self",
               AccessGrant.revoked_at.is_(None), User.disabled_at.is_(None))
    ).scalars().first()


def _language(user, patient) -> str:
    for lang in (getattr(user, "preferred_language", None), getattr(patient, "preferred_language", None)):
        if lang in LANGUAGES:
            return lang
    return "en"


def _settings(patient_id: int | None) -> NotificationSettings | None:
    if patient_id is None:
        return None
    return db.session.execute(select(NotificationSettings)
                              .where(NotificationSettings.patient_id == patient_id)).scalars().first()


def _is_opted_out(phone: str | None) -> bool:
    if not phone:
        return False
    return db.session.execute(select(SmsOptOut.id).where(SmsOptOut.phone_e164 == phone)).first() is not None


def can_text(settings: NotificationSettings | None) -> bool:
    """Texts go out only to a confirmed number, with consent, that has not replied STOP."""
    return bool(channels.sms_enabled() and settings is not None and settings.phone_e164
                and settings.phone_verified_at and settings.sms_consent_at
                and not _is_opted_out(settings.phone_e164))


def _clean_context(context: dict | None) -> dict:
    out = {}
    for key, value in (context or {}).items():
        if key not in CONTEXT_KEYS:
            log.warning("notify(): context key %r dropped (not one of %s)", key, sorted(CONTEXT_KEYS))
            continue
        if key == "starts_at" and isinstance(value, datetime) and value.tzinfo is not None:
            out[key] = value.isoformat()
        elif key == "confirm_by_text":
            out[key] = bool(value)
    return out


def _quiet_until(now: datetime) -> datetime | None:
    hours = rules.parse_quiet_hours(current_app.config.get("SMS_QUIET_HOURS"))
    return rules.quiet_until(now, clinic_tz(), hours)


# --- notify --------------------------------------------------------------------------------------

def notify(recipient, kind: NoticeKind, *, link: str, attachments: list[tuple[str, str, bytes]] | None = None,
           context: dict | None = None) -> bool:
    """Tell `recipient` (a Patient or a User) that something of `kind` is waiting at `link`.

    One Notice row per channel the patient chose for this kind (email, text, both; "off" sends
    nothing; a text that cannot go — no confirmed number, no consent, STOP — falls back to email;
    security notices always go by email). `attachments`: (filename, mime type, bytes) — e.g. an
    appointment's .ics, sent with the email only. `context`: template values from CONTEXT_KEYS in
    kinds.py (never PHI; other keys are dropped). Returns False when nothing will be sent (no active
    portal account, or the patient turned this kind off). Sent after the caller's transaction commits."""
    kind = NoticeKind(kind)
    if not isinstance(link, str) or not link or len(link) > 1000:
        raise ValueError("notify(link=...): an absolute URL from external_url(), at most 1000 characters")
    user, patient = _recipient(recipient)
    if user is None:
        return False
    settings = _settings(patient.id) if patient is not None else None
    choice = (settings.choices or {}).get(kind.value) if settings is not None else None
    wanted = rules.channels_for(choice, can_text=patient is not None and can_text(settings),
                                always_email=kind in ALWAYS_EMAIL or patient is None)
    if user.email_verified_at is None and kind not in ALWAYS_EMAIL:
        # An address nobody has confirmed may be mistyped: a stranger would learn that the person is a
        # patient here. Until it is confirmed, only security notices (and texts) go out.
        wanted = [channel for channel in wanted if channel != EMAIL]
    if not wanted:
        return False
    now = utcnow()
    language = _language(user, patient)
    values = _clean_context(context)
    rows = []
    for channel in wanted:
        notice = Notice(patient_id=patient.id if patient is not None else None, user_id=user.id, kind=kind.value,
                        channel=channel, to_address=user.email if channel == EMAIL else settings.phone_e164,
                        language=language, link=link, context=values, status=QUEUED, attempts=0,
                        next_attempt_at=now)
        if channel == SMS:
            until = _quiet_until(now)
            if until is not None:
                notice.status, notice.next_attempt_at = HELD, until
        if channel == EMAIL:
            for filename, mime, data in attachments or ():
                notice.attachments.append(NoticeAttachment(filename=str(filename)[:200], mime=str(mime)[:100],
                                                           data=bytes(data)))
        db.session.add(notice)
        rows.append(notice)
    db.session.flush()
    _deliver_after_commit(notices=[n.id for n in rows if n.status == QUEUED])
    return True


# --- after commit: hand over to Celery (or, when eager, deliver at the end of the request) ----------

_PENDING = "notifications_pending"
_READY = "_notifications_ready"


def _deliver_after_commit(*, notices=(), texts=()) -> None:
    db.session.connection()  # make sure a transaction is open, so a rollback discards them
    pending = db.session.info.setdefault(_PENDING, {"notices": [], "texts": []})
    pending["notices"].extend(notices)
    pending["texts"].extend(texts)


def queue_text(to: str, body: str) -> None:
    """A one-off text (a verification code) sent after commit; not a Notice row: its body holds a
    secret that must not be stored."""
    _deliver_after_commit(texts=[(to, body)])


def _on_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending or not (pending["notices"] or pending["texts"]):
        return
    from portal.notifications import tasks

    if tasks.deliver_notice.app.conf.task_always_eager:
        # No SQL may run inside after_commit: keep them for the end of the request / app context.
        if has_app_context():
            g.setdefault(_READY, []).append(pending)
        return
    for notice_id in pending["notices"]:
        try:
            tasks.deliver_notice.delay(notice_id)
        except Exception as exc:  # broker down: the row is queued; the periodic sweep sends it
            log.warning("notice %s not handed to Celery (%s); the sweep will send it", notice_id,
                        type(exc).__name__)
    for to, body in pending["texts"]:
        try:
            tasks.send_text.delay(to, body)
        except Exception as exc:
            log.warning("text not handed to Celery (%s)", type(exc).__name__)


def _on_rollback(session: Session, previous) -> None:
    if previous.parent is None:
        session.info.pop(_PENDING, None)


def run_ready(exc=None) -> None:
    """Eager mode: deliver what the request (or app context) committed. Registered as a teardown."""
    if not has_app_context():
        return
    batches = g.pop(_READY, None)
    if not batches:
        return
    from portal.notifications import tasks

    for pending in batches:
        for notice_id in pending["notices"]:
            try:
                tasks.deliver(notice_id)
            except Exception:  # logged; the row stays queued for the sweep
                log.exception("eager delivery of notice %s failed", notice_id)
                db.session.rollback()
        for to, body in pending["texts"]:
            try:
                tasks.deliver_text(to, body)
            except Exception:
                log.exception("eager text delivery failed")


def init_app(app) -> None:
    if not getattr(init_app, "_hooked", False):
        event.listen(Session, "after_commit", _on_commit)
        event.listen(Session, "after_soft_rollback", _on_rollback)
        init_app._hooked = True
    app.teardown_request(run_ready)
    app.teardown_appcontext(run_ready)


# --- delivery steps (tasks.py commits between them) --------------------------------------------

def claim_notice(notice_id: int, now: datetime) -> Notice | None:
    """Take one due notice for sending: a conditional UPDATE, so of two workers (or a retry and the
    sweep) only one gets it. A text that falls in quiet hours is held until morning instead; a text
    that is no longer allowed is cancelled. Returns the claimed notice, or None."""
    notice = db.session.get(Notice, notice_id, populate_existing=True)
    if notice is None or notice.status not in (QUEUED, HELD) or notice.next_attempt_at > now:
        return None
    if notice.channel == SMS:
        until = _quiet_until(now)
        if until is not None:
            db.session.execute(update(Notice).where(Notice.id == notice_id, Notice.status.in_((QUEUED, HELD)))
                               .values(status=HELD, next_attempt_at=until)
                               .execution_options(synchronize_session=False))
            return None
    result = db.session.execute(
        update(Notice).where(Notice.id == notice_id, Notice.status.in_((QUEUED, HELD)), Notice.next_attempt_at <= now)
        .values(status=SENDING, claimed_at=now, attempts=Notice.attempts + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    db.session.refresh(notice)
    if notice.channel == SMS and not _text_still_allowed(notice):
        notice.status, notice.last_error = CANCELLED, "texts no longer allowed (STOP, consent or number changed)"
        db.session.flush()
        return None
    return notice


def _text_still_allowed(notice: Notice) -> bool:
    settings = _settings(notice.patient_id)
    return can_text(settings) and settings.phone_e164 == notice.to_address


def render_text(kind: str, language: str, link: str, context: dict) -> str:
    """The SMS body of a notice: short, GSM-7 where possible, no PHI."""
    from flask import render_template

    with _locale(language):
        return rules.one_line(render_template(f"notifications/sms/{kind}.txt", link=link, kind=kind,
                                              **_template_values(context)))


def _template_values(context: dict) -> dict:
    values = dict(context or {})
    if values.get("starts_at"):
        values["starts_at"] = datetime.fromisoformat(values["starts_at"])
    return values


def send_notice(notice: Notice) -> str:
    """Send a claimed notice on its channel; returns the provider's id or raises DeliveryError."""
    if notice.channel == EMAIL:
        attachments = [(a.filename, a.mime, a.data) for a in db.session.execute(
            select(NoticeAttachment).where(NoticeAttachment.notice_id == notice.id)
            .order_by(NoticeAttachment.id)).scalars()]
        return channels.send_email(notice.to_address, f"notifications/email/{notice.kind}", notice.language,
                                   attachments=attachments, kind=notice.kind, link=notice.link,
                                   **_template_values(notice.context))
    return channels.send_sms(notice.to_address, render_text(notice.kind, notice.language, notice.link,
                                                            notice.context))


def record_sent(notice: Notice, provider_id: str, now: datetime) -> None:
    notice.status, notice.provider_id, notice.sent_at, notice.last_error = SENT, provider_id[:128], now, None
    db.session.flush()


def record_failure(notice: Notice, err: channels.DeliveryError, now: datetime) -> int | None:
    """After a failed attempt: back to the queue with back-off (returns the seconds to wait), or
    `failed` for good (attempts used up, or a permanent refusal). A carrier opt-out is recorded."""
    cfg = current_app.config
    notice.last_error = err.reason
    if isinstance(err, channels.PermanentError) or notice.attempts >= cfg["NOTICE_MAX_ATTEMPTS"]:
        notice.status, notice.failed_at = FAILED, now
        if getattr(err, "opted_out", False) and notice.channel == SMS:
            _record_opt_out(notice.to_address, "CARRIER")
        db.session.flush()
        return None
    wait = rules.backoff_seconds(notice.attempts, cfg["NOTICE_RETRY_BASE_SECONDS"])
    notice.status, notice.next_attempt_at = QUEUED, now + timedelta(seconds=wait)
    db.session.flush()
    return wait


def fail_stale(now: datetime) -> int:
    """Notices claimed long ago whose worker vanished mid-send: we cannot know whether the provider
    took them, and sending again could send twice, so they end as failed (support sees them)."""
    result = db.session.execute(
        update(Notice).where(Notice.status == SENDING, Notice.claimed_at < now - STALE_SENDING)
        .values(status=FAILED, failed_at=now, last_error="delivery outcome unknown (the worker stopped)")
        .execution_options(synchronize_session=False))
    return result.rowcount or 0


def due_notice_ids(now: datetime, *, eager: bool, limit: int = 500) -> list[int]:
    """Notices the periodic sweep hands (again) to Celery: texts held for quiet hours that may go
    now, and queued notices whose retry is overdue (lost by a broker outage, a restart…)."""
    overdue = now if eager else now - SWEEP_GRACE
    held = select(Notice.id).where(Notice.status == HELD, Notice.next_attempt_at <= now)
    queued = select(Notice.id).where(Notice.status == QUEUED, Notice.next_attempt_at <= overdue)
    ids = db.session.execute(held.union_all(queued).limit(limit)).scalars().all()
    return sorted(ids)


# --- the patient's preferences page --------------------------------------------------------------

def _settings_for_update(patient) -> NotificationSettings:
    """The patient's settings row, created if missing (INSERT … ON CONFLICT DO NOTHING, never
    check-then-insert) and locked for this transaction."""
    bind = db.session.get_bind()
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    db.session.execute(insert(NotificationSettings).values(
        patient_id=patient.id, public_id=new_public_id(), choices={}, created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["patient_id"]))
    return db.session.execute(select(NotificationSettings).where(NotificationSettings.patient_id == patient.id)
                              .with_for_update().execution_options(populate_existing=True)).scalars().one()


def choosable_kinds() -> list[NoticeKind]:
    return [k for k in NoticeKind if k not in ALWAYS_EMAIL]


def effective_choices(settings: NotificationSettings | None) -> dict[str, str]:
    saved = (settings.choices or {}) if settings is not None else {}
    return {k.value: saved.get(k.value) if saved.get(k.value) in rules.CHOICES else rules.DEFAULT_CHOICE
            for k in choosable_kinds()}


def _open_verification(patient_id: int, now: datetime) -> PhoneVerification | None:
    return db.session.execute(
        select(PhoneVerification).where(
            PhoneVerification.patient_id == patient_id, PhoneVerification.used_at.is_(None),
            PhoneVerification.revoked_at.is_(None), PhoneVerification.expires_at > now,
            PhoneVerification.attempts < CODE_ATTEMPTS)
        .order_by(PhoneVerification.id.desc()).limit(1)).scalars().first()


def preferences_page(user) -> dict:
    """Everything the preferences page shows the signed-in patient about their own settings."""
    patient = patient_for(user)
    now = utcnow()
    settings = _settings(patient.id)
    recent = db.session.execute(
        select(Notice).where(Notice.patient_id == patient.id)
        .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(RECENT_NOTICES)).scalars().all()
    phone = settings.phone_e164 if settings is not None and settings.phone_verified_at else None
    pending = _open_verification(patient.id, now)
    return {
        "patient": patient,
        "settings": settings,
        "choices": effective_choices(settings),
        "phone": phone,
        "phone_display": display_phone(phone),
        "opted_out": _is_opted_out(phone),
        "can_text": can_text(settings),
        "sms_enabled": channels.sms_enabled(),
        "pending": pending,
        "pending_display": display_phone(pending.phone_e164) if pending is not None else "",
        "kind_labels": {k.value: k.label for k in NoticeKind},
        "recent": recent,
        "quiet_hours": rules.parse_quiet_hours(current_app.config.get("SMS_QUIET_HOURS")),
        "sender": channels.sender_label(),
    }


def save_choices(user, choices: dict[str, str]) -> None:
    """Per kind: email / text / both / off. Text needs a confirmed number that may be texted."""
    patient = patient_for(user)
    settings = _settings_for_update(patient)
    before = effective_choices(settings)
    confirmed = bool(settings.phone_verified_at and settings.sms_consent_at and channels.sms_enabled())
    wanted = {}
    for kind in choosable_kinds():
        value = choices.get(kind.value) or rules.DEFAULT_CHOICE
        if value not in rules.CHOICES:
            raise DomainError(_("Choose email, text, both or off."), field=kind.value)
        # A new text choice needs a confirmed number; one already saved may stay while texts are paused
        # (a STOP reply): those notices go by email meanwhile.
        if value in (rules.SMS, rules.BOTH) and value != before.get(kind.value) and not confirmed:
            raise DomainError(_("To get texts, first add your mobile number below and confirm it with the "
                                "code we text you."), field=kind.value)
        wanted[kind.value] = value
    changed = {k: v for k, v in wanted.items() if before.get(k) != v}
    if not changed:
        return
    settings.choices = {**(settings.choices or {}), **wanted}
    settings.updated_at = utcnow()
    record_event(NoticeEvent.PREFERENCES_CHANGED, actor=user, patient=patient, category="notification_settings",
                 object_type="notification_settings", object_id=settings.public_id, detail=changed)
    db.session.flush()


def parse_phone(raw: str) -> str:
    """A mobile number in E.164 (+13125550123), or a DomainError on the `phone` field."""
    region = current_app.config.get("SMS_DEFAULT_REGION", "US")
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException:
        raise DomainError(_("Enter a mobile number, for example (312) 555-0123."), field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError(_("This is not a valid phone number. Check the digits and the area code."),
                          field="phone") from None
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise DomainError(_("This number cannot receive texts. Enter a mobile number."), field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def home_card_scalars(patient) -> dict | None:
    """The patient home card's one value, as a scalar subquery for the dashboard's one SELECT
    (core.registry): the number we text, only when it is verified and texts are consented to."""
    if patient is None:
        return None
    return {"texting": select(NotificationSettings.phone_e164).where(
        NotificationSettings.patient_id == patient.id, NotificationSettings.phone_verified_at.is_not(None),
        NotificationSettings.sms_consent_at.is_not(None)).limit(1).scalar_subquery()}


def home_card(patient, values: dict) -> dict:
    """The patient home card: how we reach them now (from home_card_scalars' value)."""
    phone = values.get("texting")
    return {"texts": bool(phone), "phone_tail": phone[-2:] if phone else None}


def display_phone(e164: str | None) -> str:
    """A number as people write it in the clinic's country; international format otherwise."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    region = current_app.config.get("SMS_DEFAULT_REGION", "US")
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if phonenumbers.region_code_for_number(number) == region \
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, fmt)


def _code_hash(code: str, phone: str) -> str:
    return keyed_hash(f"{phone}|{code}", "sms-verify")


def start_phone_verification(user, raw_phone: str, consent: bool) -> PhoneVerification:
    """Text a 6-digit code to the number the patient typed, with their consent to texts recorded.
    Throttled per patient (3 codes / 15 min) and per number (5 a day); earlier codes stop working."""
    if not channels.sms_enabled():
        raise DomainError(_("The clinic does not send texts at the moment."), field="phone")
    if not consent:
        raise DomainError(_("Tick the box to agree to texts, or keep getting email only."), field="consent")
    patient = patient_for(user)
    phone = parse_phone(raw_phone)
    if _is_opted_out(phone):
        raise DomainError(_("This number replied STOP to our texts. Text START to %(sender)s first, then try "
                            "again.", sender=channels.sender_label()), field="phone")
    _settings_for_update(patient)  # serialises this patient's requests, so the counts below hold
    now = utcnow()
    recent = db.session.execute(select(func.count()).select_from(PhoneVerification).where(
        PhoneVerification.patient_id == patient.id, PhoneVerification.created_at > now - CODE_WINDOW)).scalar_one()
    to_number = db.session.execute(select(func.count()).select_from(PhoneVerification).where(
        PhoneVerification.phone_e164 == phone, PhoneVerification.created_at > now - timedelta(days=1))).scalar_one()
    if recent >= CODES_PER_WINDOW or to_number >= CODES_PER_NUMBER_PER_DAY:
        raise DomainError(_("We have sent several codes already. Wait 15 minutes, then ask for a new one."),
                          field="phone")
    db.session.execute(update(PhoneVerification).where(
        PhoneVerification.patient_id == patient.id, PhoneVerification.used_at.is_(None),
        PhoneVerification.revoked_at.is_(None)).values(revoked_at=now)
        .execution_options(synchronize_session=False))
    code = f"{secrets.randbelow(10 ** 6):06d}"
    row = PhoneVerification(patient_id=patient.id, user_id=user.id, phone_e164=phone,
                            code_hash=_code_hash(code, phone), consent_at=now,
                            expires_at=now + timedelta(seconds=CODE_SECONDS), attempts=0, created_at=now)
    db.session.add(row)
    db.session.flush()
    queue_text(phone, _code_text(code, _language(user, patient)))
    record_event(NoticeEvent.PHONE_CODE_SENT, actor=user, patient=patient, category="notification_settings",
                 object_type="phone_verification", object_id=str(row.id))
    return row


def _code_text(code: str, language: str) -> str:
    with _locale(language):
        return _("%(clinic)s code: %(code)s. It expires in 10 minutes. Reply STOP to opt out of texts.",
                 clinic=current_app.config["CLINIC_NAME"], code=code)


def confirm_phone(user, code: str) -> NotificationSettings:
    """Check the texted code (claimed once, atomically); on success the number is confirmed and the
    consent given when the code was asked for is recorded with its time."""
    patient = patient_for(user)
    now = utcnow()
    pending = _open_verification(patient.id, now)
    if pending is None:
        raise DomainError(_("That code has expired or was used. Ask for a new one."), field="code")
    clean = "".join(ch for ch in (code or "") if ch.isdigit())
    claimed = db.session.execute(
        update(PhoneVerification).where(
            PhoneVerification.id == pending.id, PhoneVerification.used_at.is_(None),
            PhoneVerification.revoked_at.is_(None), PhoneVerification.expires_at > now,
            PhoneVerification.attempts < CODE_ATTEMPTS,
            PhoneVerification.code_hash == _code_hash(clean, pending.phone_e164))
        .values(used_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.execute(update(PhoneVerification).where(PhoneVerification.id == pending.id,
                                                           PhoneVerification.attempts < CODE_ATTEMPTS)
                           .values(attempts=PhoneVerification.attempts + 1)
                           .execution_options(synchronize_session=False))
        record_event(NoticeEvent.PHONE_CODE_FAILED, actor=user, patient=patient, category="notification_settings",
                     object_type="phone_verification", object_id=str(pending.id), outcome="failure")
        db.session.flush()
        raise DomainError(_("That code is not right. Check the text we sent and try again."), field="code")
    settings = _settings_for_update(patient)
    settings.phone_e164, settings.phone_verified_at = pending.phone_e164, now
    settings.sms_consent_at = pending.consent_at
    settings.updated_at = now
    record_event(NoticeEvent.PHONE_VERIFIED, actor=user, patient=patient, category="notification_settings",
                 object_type="notification_settings", object_id=settings.public_id)
    db.session.flush()
    return settings


def cancel_phone_verification(user) -> None:
    """Forget a code that was asked for (to type another number)."""
    patient = patient_for(user)
    db.session.execute(update(PhoneVerification).where(
        PhoneVerification.patient_id == patient.id, PhoneVerification.used_at.is_(None),
        PhoneVerification.revoked_at.is_(None)).values(revoked_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.flush()


def remove_phone(user) -> None:
    """Stop texts: the number and the consent are removed; every kind set to text goes by email."""
    patient = patient_for(user)
    settings = _settings_for_update(patient)
    now = utcnow()
    settings.phone_e164 = settings.phone_verified_at = settings.sms_consent_at = None
    settings.choices = {k: (rules.EMAIL if v in (rules.SMS, rules.BOTH) else v)
                        for k, v in (settings.choices or {}).items()}
    settings.updated_at = now
    cancel_phone_verification(user)
    record_event(NoticeEvent.PHONE_REMOVED, actor=user, patient=patient, category="notification_settings",
                 object_type="notification_settings", object_id=settings.public_id)
    db.session.flush()


# --- texts patients send us ----------------------------------------------------------------------

def sender_phone(raw: str | None) -> str:
    try:
        number = phonenumbers.parse(raw or "", current_app.config.get("SMS_DEFAULT_REGION", "US"))
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return (raw or "").strip()[:32]


def _patient_by_phone(phone: str):
    """The patient whose confirmed mobile number this is. When a family shares a number, the one we
    texted last (the reply is most likely about that text), else the latest to confirm it."""
    from portal.patients.models import Patient

    rows = db.session.execute(select(NotificationSettings).where(
        NotificationSettings.phone_e164 == phone, NotificationSettings.phone_verified_at.is_not(None))
        .order_by(NotificationSettings.phone_verified_at.desc())).scalars().all()
    if not rows:
        return None
    chosen = rows[0].patient_id
    if len(rows) > 1:
        last = db.session.execute(
            select(Notice.patient_id).where(Notice.channel == SMS, Notice.to_address == phone,
                                            Notice.patient_id.in_([r.patient_id for r in rows]))
            .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(1)).scalar()
        chosen = last or chosen
    return db.session.get(Patient, chosen)


def _record_opt_out(phone: str, keyword: str) -> None:
    bind = db.session.get_bind()
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(SmsOptOut).values(phone_e164=phone, keyword=keyword[:32], opted_out_at=utcnow())
                       .on_conflict_do_nothing(index_elements=["phone_e164"]))


@contextlib.contextmanager
def _locale(language: str):
    """Strings in `language` (a reply to a text, a code text), whatever the request's language."""
    forget_request_translations()
    try:
        with force_locale(language or "en"):
            yield
    finally:
        forget_request_translations()


def _builtin_reply(which: str, language: str) -> str:
    clinic = current_app.config["CLINIC_NAME"]
    with _locale(language):
        if which == "stop":
            return _("%(clinic)s: you will get no more texts from us. Reply START to get them again.",
                     clinic=clinic)
        if which == "start":
            return _("%(clinic)s: texts are back on. Reply HELP for help, STOP to opt out.", clinic=clinic)
        return _("%(clinic)s: for help call %(phone)s. Msg & data rates may apply. Reply STOP to opt out.",
                 clinic=clinic, phone=current_app.config.get("CLINIC_PHONE") or "")


def _unrecognised_reply() -> str:
    """One answer for every sender (in English and Spanish), so it reveals nothing about the number."""
    parts = []
    for lang in LANGUAGES:
        with _locale(lang):
            parts.append(_("%(clinic)s got your text. Our staff will get back to you. Emergency? Call "
                           "%(number)s.", clinic=current_app.config["CLINIC_NAME"],
                           number=current_app.config.get("CLINIC_EMERGENCY_NUMBER") or "911"))
    return " / ".join(parts)


def receive_text(*, message_sid: str, from_phone: str, to_phone: str | None, body: str | None,
                 received_at: datetime | None = None) -> str | None:
    """One inbound text (the webhook, or `flask notices receive-text` with the file backend).
    Returns the reply to text back, or None. Stored once per MessageSid: a replayed request gets the
    same reply and changes nothing."""
    now = received_at or utcnow()
    sid = (message_sid or "").strip()[:64]
    if not sid:
        raise DomainError("MessageSid missing")
    existing = db.session.execute(select(InboundText).where(InboundText.message_sid == sid)).scalars().first()
    if existing is not None:
        return existing.reply
    phone = sender_phone(from_phone)
    text = rules.clean_inbound(body)
    patient = _patient_by_phone(phone) if phone.startswith("+") else None
    user = _account_of(patient.id) if patient is not None else None
    row = InboundText(message_sid=sid, from_phone=phone, to_phone=(to_phone or "")[:32] or None, body=text,
                      received_at=now, patient_id=patient.id if patient is not None else None,
                      user_id=user.id if user is not None else None, status=UNHANDLED)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # the same MessageSid arrived twice at once: the first one answers
        return db.session.execute(select(InboundText.reply).where(InboundText.message_sid == sid)).scalar()
    reply = _process(row, patient, user, phone, text, now)
    row.reply = reply
    db.session.flush()
    return reply


def _process(row: InboundText, patient, user, phone: str, text: str, now: datetime) -> str | None:
    keyword = rules.keyword_of(text)
    builtin = rules.builtin_keyword(keyword)
    opted_out = _is_opted_out(phone)
    word = keyword.strip(" .!¡?¿")
    if builtin == "start" and word not in ("START", "UNSTOP") and not opted_out:
        builtin = None  # "yes" from a number that never opted out is an answer, not an opt-in
    if builtin is not None:
        row.status, row.handled_by = HANDLED, builtin
        lang = rules.keyword_language(keyword)
        if builtin == "stop":
            _record_opt_out(phone, word)
            record_event(NoticeEvent.SMS_OPTED_OUT, patient=patient, object_type="inbound_text",
                         object_id=row.public_id, detail={"keyword": word[:16]})
        elif builtin == "start":
            db.session.execute(SmsOptOut.__table__.delete().where(SmsOptOut.phone_e164 == phone))
            record_event(NoticeEvent.SMS_OPTED_IN, patient=patient, object_type="inbound_text",
                         object_id=row.public_id, detail={"keyword": word[:16]})
        return _builtin_reply(builtin, lang)
    if patient is not None:
        ctx = inbound.InboundContext(patient=patient, user=user, phone=phone, text=text, keyword=keyword,
                                     received_at=now, language=_language(user, patient), inbound_id=row.id)
        for registered in inbound.handlers():
            try:
                with db.session.begin_nested():
                    reply = registered.handler(ctx)
            except Exception:
                log.exception("inbound handler %s failed; asking the next one", registered.name)
                continue
            if reply:
                row.status, row.handled_by = HANDLED, registered.name[:64]
                return str(reply)[:1600]
    route_unrecognised(row)
    return None if opted_out else _unrecognised_reply()


def route_unrecognised(inbound_text: InboundText) -> None:
    """THE one place a text that no keyword and no handler took goes, so a patient's text is never
    dropped. A known patient's text opens a thread in the shared inbox (messaging's open_thread, topic
    "other", channel "sms"); a text from a number that is no patient's stays in the support queue
    (status "unhandled", listed at /notices/texts for staff with the notices_view function)."""
    if inbound_text.patient_id is not None and (inbound_text.body or "").strip():
        from portal.messaging.services import open_thread, sms_subject
        from portal.patients.models import Patient

        patient = db.session.get(Patient, inbound_text.patient_id)
        open_thread(patient, subject=sms_subject(patient), body=inbound_text.body, topic="other", actor=None,
                    channel="sms", client_key=f"sms-{inbound_text.message_sid}")
        inbound_text.status, inbound_text.handled_by = HANDLED, "messaging"
        inbound_text.routed_to = "messaging"
        db.session.flush()
        return
    inbound_text.status = UNHANDLED
    inbound_text.routed_to = "support_queue"
    db.session.flush()


# --- what staff see --------------------------------------------------------------------------------

def staff_panel(actor, patient) -> dict:
    """The support patient page's section: how this patient is reached and what failed (read only).
    Audited (the view shows the patient's number and notice history)."""
    require_function(actor, "notices_view")
    settings = _settings(patient.id)
    recent = db.session.execute(
        select(Notice).where(Notice.patient_id == patient.id)
        .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(RECENT_NOTICES)).scalars().all()
    failed = db.session.execute(
        select(func.count()).select_from(Notice).where(Notice.patient_id == patient.id, Notice.status == FAILED)
    ).scalar_one()
    phone = settings.phone_e164 if settings is not None and settings.phone_verified_at else None
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient=patient, category="notification_settings",
                 object_type="notification_settings", object_id=patient.public_id)
    return {"settings": settings, "choices": effective_choices(settings), "phone": display_phone(phone),
            "opted_out": _is_opted_out(phone), "can_text": can_text(settings), "recent": recent,
            "failed_count": failed, "kinds": choosable_kinds(),
            "kind_labels": {k.value: k.label for k in NoticeKind}}


def inbound_queue(actor) -> dict:
    """Support's queue: texts nobody handled (oldest first) and notices that failed for good."""
    require_function(actor, "notices_view")
    waiting = db.session.execute(
        select(InboundText).where(InboundText.status == UNHANDLED).options(selectinload(InboundText.patient))
        .order_by(InboundText.received_at, InboundText.id).limit(200)).scalars().all()
    failed = db.session.execute(
        select(Notice).where(Notice.status == FAILED).order_by(Notice.failed_at.desc(), Notice.id.desc())
        .limit(50)).scalars().all()
    from portal.patients.models import Patient

    ids = {n.patient_id for n in failed if n.patient_id}
    patients = {p.id: p for p in db.session.execute(select(Patient).where(Patient.id.in_(ids))).scalars()} \
        if ids else {}
    record_event(NoticeEvent.INBOUND_QUEUE_VIEW, actor=actor, category="text_messages",
                 detail={"texts": len(waiting), "failed": len(failed)})
    # Each patient shown is a view of their data, listed in their "who viewed my record".
    for patient_id in sorted({t.patient_id for t in waiting if t.patient_id}):
        record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=patient_id, category="text_messages",
                     object_type="inbound_text")
    for patient_id in sorted(ids):
        record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=patient_id, category="notification_settings",
                     object_type="notice")
    return {"waiting": waiting, "failed": failed, "patients": patients, "display_phone": display_phone,
            "kind_labels": {k.value: k.label for k in NoticeKind}}


def waiting_count(actor) -> int | None:
    """Texts waiting for support (the staff home card and the nav badge)."""
    return db.session.execute(select(func.count()).select_from(InboundText)
                              .where(InboundText.status == UNHANDLED)).scalar_one()


def resolve_inbound(actor, public_id: str) -> InboundText:
    """Mark a waiting text as dealt with (once; a second click changes nothing)."""
    require_function(actor, "notices_view")
    row = load_or_404(select(InboundText).where(InboundText.public_id == str(public_id)[:32],
                                                InboundText.status.in_((UNHANDLED, RESOLVED))),
                      "inbound_text", public_id, actor)
    now = utcnow()
    done = db.session.execute(update(InboundText).where(InboundText.id == row.id, InboundText.status == UNHANDLED)
                              .values(status=RESOLVED, resolved_at=now, resolved_by_id=actor.id)
                              .execution_options(synchronize_session=False))
    if done.rowcount == 1:
        record_event(NoticeEvent.INBOUND_RESOLVED, actor=actor, patient_id=row.patient_id, category="text_messages",
                     object_type="inbound_text", object_id=row.public_id)
    db.session.refresh(row)
    return row


__all__ = ["notify", "route_unrecognised", "receive_text", "NoticeKind"]

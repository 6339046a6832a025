"""record_event(): the one way to write the audit log. Never update or delete rows."""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import datetime

from flask import g, has_request_context, request
from sqlalchemy import select, text

from portal.core.db import utcnow
from portal.extensions import db

GENESIS = "0" * 64


class EventTag(str, enum.Enum):
    SIGNIN_SUCCESS = "auth.signin.success"
    SIGNIN_FAILURE = "auth.signin.failure"
    SIGNIN_LOCKED = "auth.signin.locked"
    MFA_SUCCESS = "auth.mfa.success"
    MFA_FAILURE = "auth.mfa.failure"
    MFA_RECOVERY_USED = "auth.mfa.recovery_used"
    MFA_ENROLLED = "auth.mfa.enrolled"
    MFA_RESET = "auth.mfa.reset"
    RECOVERY_REGENERATED = "auth.mfa.recovery_regenerated"
    SIGNOUT = "auth.signout"
    SESSION_REVOKED = "auth.session.revoked"
    SESSION_TIMEOUT = "auth.session.timeout"
    PASSWORD_CHANGED = "account.password.changed"
    PASSWORD_RESET_REQUESTED = "account.password.reset_requested"
    PASSWORD_RESET = "account.password.reset"
    EMAIL_VERIFIED = "account.email.verified"
    EMAIL_CHANGE_REQUESTED = "account.email.change_requested"
    EMAIL_CHANGED = "account.email.changed"
    ACTIVATION_ISSUED = "account.activation.issued"
    ACTIVATION_COMPLETED = "account.activation.completed"
    ACTIVATION_FAILED = "account.activation.failed"
    ACCOUNT_UNLOCKED = "account.unlocked"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_DISABLED = "account.disabled"
    ACCOUNT_ENABLED = "account.enabled"
    ROLE_CHANGED = "account.role.changed"
    LANGUAGE_CHANGED = "account.language.changed"
    REAUTH = "auth.reauth"
    PATIENT_VIEW = "patient.view"
    PATIENT_SEARCH = "patient.search"
    ACCESS_DENIED = "access.denied"
    AUDIT_REPORT_VIEW = "audit.report.view"
    AUDIT_EXPORT = "audit.report.export"


def _canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def compute_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256((prev_hash + _canonical(fields)).encode()).hexdigest()


def hashed_fields(ev) -> dict:
    occurred: datetime = ev.occurred_at
    return {
        "occurred_at": occurred.isoformat(timespec="microseconds"),
        "actor_id": ev.actor_id,
        "actor_role": ev.actor_role,
        "action": ev.action,
        "category": ev.category,
        "patient_id": ev.patient_id,
        "object_type": ev.object_type,
        "object_id": ev.object_id,
        "outcome": ev.outcome,
        "ip": ev.ip,
        "user_agent": ev.user_agent,
        "request_id": ev.request_id,
        "detail": ev.detail,
    }


def _lock_chain() -> None:
    """Serialise appends so the chain has no forks (PostgreSQL: a transaction-scoped advisory lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(727274)"))


def record_event(
    tag: EventTag | str,
    *,
    actor=None,
    patient=None,
    patient_id: int | None = None,
    category: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: str = "success",
    detail: dict | None = None,
):
    """Append an audit row in the current transaction (flushes; the caller commits).

    `detail` must hold no PHI, secrets or clinical text: ids, counts and codes only.
    """
    from portal.audit.models import AuditEvent

    if actor is None and has_request_context():
        from flask_login import current_user

        actor = current_user if getattr(current_user, "is_authenticated", False) else g.get("pending_user")
    ev = AuditEvent(
        occurred_at=utcnow(),
        actor_id=getattr(actor, "id", None),
        actor_role=getattr(actor, "role", None),
        action=tag.value if isinstance(tag, EventTag) else str(tag),
        category=category,
        patient_id=patient.id if patient is not None else patient_id,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        detail=_canonical(detail) if detail else None,
    )
    if has_request_context():
        ev.ip = request.remote_addr
        ev.user_agent = (request.user_agent.string or "")[:300]
        ev.request_id = g.get("request_id")
    _lock_chain()
    prev = db.session.execute(
        select(AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar()
    ev.prev_hash = prev or GENESIS
    ev.row_hash = compute_hash(ev.prev_hash, hashed_fields(ev))
    db.session.add(ev)
    db.session.flush()
    return ev


def verify_chain(batch: int = 5000) -> tuple[int, list[int]]:
    """Walk the chain; return (rows checked, ids whose hash or link does not match)."""
    from portal.audit.models import AuditEvent

    bad: list[int] = []
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for ev in rows:
            checked += 1
            if ev.prev_hash != prev or ev.row_hash != compute_hash(ev.prev_hash, hashed_fields(ev)):
                bad.append(ev.id)
            prev = ev.row_hash
            last_id = ev.id
        db.session.expunge_all()
    return checked, bad

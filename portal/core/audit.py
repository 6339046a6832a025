"""The audit log: the AuditEvent model and record_event(), the one way to write it. Rows are never
updated or deleted (a database trigger refuses it) and each row's hash chains to the previous one.

The chain is keyed: each row carries HMAC-SHA256(AUDIT_HMAC_KEY, prev_hash + canonical fields), the key
coming from the environment and never stored in the database, so someone who can write to the database
cannot recompute the chain after an edit. Signed checkpoints (the newest row's id and hash and the row
count, HMAC-signed) are appended at intervals to a file outside the database (AUDIT_CHECKPOINT_FILE, and
the `portal.audit.checkpoint` log); `verify()` checks the chain against them, so a cut tail is caught too.

Domains name their own events: a `str` enum of theirs, registered with `register_tags()` together
with plain-language labels (the admin report and the patient's "who viewed my record" use them), and
their data categories with `register_categories()`. Core knows only the account and access events.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app, g, has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String, Text, select, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.core.db import UTCDateTime, utcnow
from portal.extensions import db

GENESIS = "0" * 64


class AuditEvent(db.Model):
    """Append-only: the application never updates or deletes rows (a trigger enforces it),
    and each row's hash chains to the previous one (`flask audit verify`)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_patient_occurred", "patient_id", "occurred_at"),
        Index("ix_audit_events_actor_occurred", "actor_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


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


# --- labels: every tag and data category in plain, translated words ----------------------------

_TAG_LABELS: dict[str, object] = {}
_CATEGORY_LABELS: dict[str, object] = {}


def register_tags(labels: dict) -> None:
    """{tag (enum member or string): lazy label}. Domains call this at import for their own tags."""
    for tag, label in labels.items():
        _TAG_LABELS[tag.value if isinstance(tag, enum.Enum) else str(tag)] = label


def register_categories(labels: dict[str, object]) -> None:
    """{category: lazy label}, e.g. {"lab_results": _l("Lab results")}."""
    _CATEGORY_LABELS.update(labels)


def tag_label(action: str | None) -> str:
    label = _TAG_LABELS.get(action or "")
    return str(label) if label is not None else (action or "")


def category_label(category: str | None) -> str:
    label = _CATEGORY_LABELS.get(category or "")
    return str(label) if label is not None else (category or str(_l("Record")))


def known_tags() -> list[str]:
    return sorted(_TAG_LABELS)


register_tags({
    EventTag.SIGNIN_SUCCESS: _l("Signed in (password step)"),
    EventTag.SIGNIN_FAILURE: _l("Sign-in failed"),
    EventTag.SIGNIN_LOCKED: _l("Account locked after failed sign-ins"),
    EventTag.MFA_SUCCESS: _l("Two-step code accepted"),
    EventTag.MFA_FAILURE: _l("Two-step code refused"),
    EventTag.MFA_RECOVERY_USED: _l("Recovery code used"),
    EventTag.MFA_ENROLLED: _l("Two-step verification set up"),
    EventTag.MFA_RESET: _l("Two-step verification reset"),
    EventTag.RECOVERY_REGENERATED: _l("New recovery codes made"),
    EventTag.SIGNOUT: _l("Signed out"),
    EventTag.SESSION_REVOKED: _l("Session ended by the user"),
    EventTag.SESSION_TIMEOUT: _l("Signed out after inactivity"),
    EventTag.PASSWORD_CHANGED: _l("Password changed"),
    EventTag.PASSWORD_RESET_REQUESTED: _l("Password reset requested"),
    EventTag.PASSWORD_RESET: _l("Password reset"),
    EventTag.EMAIL_VERIFIED: _l("Email address confirmed"),
    EventTag.EMAIL_CHANGE_REQUESTED: _l("Email change requested"),
    EventTag.EMAIL_CHANGED: _l("Email address changed"),
    EventTag.ACTIVATION_ISSUED: _l("Activation code issued"),
    EventTag.ACTIVATION_COMPLETED: _l("Account activated"),
    EventTag.ACTIVATION_FAILED: _l("Activation refused"),
    EventTag.ACCOUNT_UNLOCKED: _l("Account unlocked"),
    EventTag.ACCOUNT_CREATED: _l("Account created"),
    EventTag.ACCOUNT_DISABLED: _l("Account disabled"),
    EventTag.ACCOUNT_ENABLED: _l("Account enabled"),
    EventTag.ROLE_CHANGED: _l("Role changed"),
    EventTag.LANGUAGE_CHANGED: _l("Language changed"),
    EventTag.REAUTH: _l("Password confirmed for a sensitive change"),
    EventTag.PATIENT_VIEW: _l("Viewed patient data"),
    EventTag.PATIENT_SEARCH: _l("Searched for patients"),
    EventTag.ACCESS_DENIED: _l("Access refused"),
    EventTag.AUDIT_REPORT_VIEW: _l("Viewed the audit report"),
    EventTag.AUDIT_EXPORT: _l("Exported the audit report"),
})
register_categories({
    "demographics": _l("Contact and personal details"),
    "dashboard": _l("Home page summary"),
    "access_history": _l("Access history"),
})


# --- the chain --------------------------------------------------------------------------------

checkpoint_log = logging.getLogger("portal.audit.checkpoint")


def _canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def chain_key() -> bytes:
    """The chain's HMAC key (AUDIT_HMAC_KEY, from the environment; production refuses to start without one)."""
    key = current_app.config.get("AUDIT_HMAC_KEY") or ""
    if not key:
        raise RuntimeError("AUDIT_HMAC_KEY is not set")
    return key.encode()


def compute_hash(prev_hash: str, fields: dict, key: bytes | None = None) -> str:
    """The keyed link: HMAC-SHA256 over the previous row's hash and this row's canonical fields."""
    msg = (prev_hash + _canonical(fields)).encode()
    return hmac.new(key if key is not None else chain_key(), msg, hashlib.sha256).hexdigest()


def legacy_hash(prev_hash: str, fields: dict) -> str:
    """The unkeyed SHA-256 link rows carried before the chain was keyed (the migration checks it)."""
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


def _lock_chain(session) -> None:
    """Serialise appends so the chain has no forks (PostgreSQL: a transaction-scoped advisory lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727274)"))


def event_fields(
    tag: enum.Enum | str,
    *,
    actor=None,
    patient=None,
    patient_id: int | None = None,
    category: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: str = "success",
    detail: dict | None = None,
) -> dict:
    """The column values of an audit row (request metadata included), without writing it."""
    fields = {
        "occurred_at": utcnow(),
        "actor_id": getattr(actor, "id", None),
        "actor_role": str(getattr(actor, "role", None)) if getattr(actor, "role", None) else None,
        "action": tag.value if isinstance(tag, enum.Enum) else str(tag),
        "category": category,
        "patient_id": patient.id if patient is not None else patient_id,
        "object_type": object_type,
        "object_id": object_id,
        "outcome": outcome,
        "detail": _canonical(detail) if detail else None,
        "ip": None,
        "user_agent": None,
        "request_id": None,
    }
    if has_request_context():
        fields["ip"] = request.remote_addr
        fields["user_agent"] = (request.user_agent.string or "")[:300]
        fields["request_id"] = g.get("request_id")
    return fields


def append_event(fields: dict, session=None) -> AuditEvent:
    """Write one row from `event_fields()` output, chained to the newest row (flushes; never commits)."""
    session = session or db.session
    ev = AuditEvent(**fields)
    _lock_chain(session)
    prev = session.execute(select(AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    ev.prev_hash = prev or GENESIS
    ev.row_hash = compute_hash(ev.prev_hash, hashed_fields(ev))
    session.add(ev)
    session.flush()
    return ev


def record_event(tag: enum.Enum | str, *, actor=None, **kwargs) -> None:
    """Record an audit row in the current transaction: it is chained and inserted just before the
    transaction commits (so it is kept exactly when the work it describes is), and dropped if the
    transaction, or the savepoint it was recorded in, rolls back.

    Why at commit and not at once: appending takes the chain's lock (PostgreSQL: an advisory lock held to
    the end of the transaction). Taken when the event is recorded, it was held while the page or PDF was
    rendered, so every audited request of every worker queued behind it (a statement PDF: two workers
    rendered one at a time). At commit it is held for one insert and the commit.

    `actor` is passed explicitly by the caller (None for an anonymous request). `detail` must hold no
    PHI, secrets or clinical text: ids, counts and codes only.
    """
    queue_event(event_fields(tag, actor=actor, **kwargs))


_PENDING = "portal_audit_pending"


def queue_event(fields: dict, session=None) -> None:
    """Keep `fields` (from `event_fields()`) for the commit of `session`'s transaction."""
    from sqlalchemy.orm import scoped_session

    session = session or db.session
    if isinstance(session, scoped_session):
        session = session()
    session.info.setdefault(_PENDING, []).append((fields, session.get_nested_transaction()))


def flush_events(session=None) -> int:
    """Append the queued rows now (in the order recorded); the commit does this by itself."""
    session = session or db.session
    pending = session.info.pop(_PENDING, None) or []
    for fields, _tx in pending:
        append_event(fields, session)
    return len(pending)


def _within(tx, ended) -> bool:
    while tx is not None:
        if tx is ended:
            return True
        tx = tx.parent
    return False


def _drop_rolled_back(session, previous_transaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if previous_transaction.parent is None:  # the whole transaction: nothing it recorded happened
        session.info.pop(_PENDING, None)
    else:  # a savepoint: only what was recorded inside it
        session.info[_PENDING] = [(f, tx) for f, tx in pending if not _within(tx, previous_transaction)]


def _read_your_own_events(state) -> None:
    """A query of the audit log in a transaction that has queued rows sees them (they are appended first)."""
    if state.is_select and state.session.info.get(_PENDING):
        from sqlalchemy.sql.util import find_tables

        if AuditEvent.__table__ in find_tables(state.statement, check_columns=True, include_joins=True):
            flush_events(state.session)


def install_commit_hooks() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if getattr(install_commit_hooks, "_done", False):
        return
    event.listen(Session, "before_commit", lambda session: flush_events(session) if session.info.get(_PENDING) else None)
    event.listen(Session, "after_soft_rollback", _drop_rolled_back)
    event.listen(Session, "do_orm_execute", _read_your_own_events)
    install_commit_hooks._done = True


install_commit_hooks()


def verify_chain(batch: int = 5000, seen: dict[int, str] | None = None) -> tuple[int, list[int]]:
    """Walk the chain; return (rows checked, ids whose hash or link does not match). `seen`, if given,
    collects {id: row_hash} for the ids asked for (the checkpoints' rows)."""
    bad: list[int] = []
    prev = GENESIS
    checked = 0
    last_id = 0
    key = chain_key()
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for ev in rows:
            checked += 1
            if ev.prev_hash != prev or ev.row_hash != compute_hash(ev.prev_hash, hashed_fields(ev), key):
                bad.append(ev.id)
            if seen is not None and ev.id in seen:
                seen[ev.id] = ev.row_hash
            prev = ev.row_hash
            last_id = ev.id
        db.session.expunge_all()
    return checked, bad


# --- signed checkpoints, outside the database ----------------------------------------------------------

def _sign_checkpoint(cp: dict, key: bytes) -> str:
    body = {k: v for k, v in cp.items() if k != "sig"}
    return hmac.new(key, ("checkpoint:" + _canonical(body)).encode(), hashlib.sha256).hexdigest()


def checkpoint_file() -> str | None:
    return current_app.config.get("AUDIT_CHECKPOINT_FILE") or None


def write_checkpoint(session=None, path: str | None = None) -> dict | None:
    """Append a signed checkpoint of the committed chain (newest id, its hash, the row count) to the
    checkpoint file and the checkpoint log. Returns it (None when the table is empty)."""
    session = session or db.session
    path = path or checkpoint_file()
    head = session.execute(select(AuditEvent.id, AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    if head is None:
        return None
    from sqlalchemy import func

    count = session.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= head.id)).scalar_one()
    cp = {"v": 1, "written_at": utcnow().isoformat(timespec="seconds"), "last_id": head.id, "count": count,
          "head": head.row_hash}
    cp["sig"] = _sign_checkpoint(cp, chain_key())
    line = _canonical(cp)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    checkpoint_log.info("audit checkpoint %s", line)
    return cp


def read_checkpoints(path: str | None = None) -> tuple[list[dict], int]:
    """The checkpoints whose signature holds, oldest first, and how many lines did not verify."""
    path = path or checkpoint_file()
    if not path or not os.path.exists(path):
        return [], 0
    key = chain_key()
    good, forged = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                cp = json.loads(line)
                ok = hmac.compare_digest(str(cp.get("sig", "")), _sign_checkpoint(cp, key))
            except (ValueError, TypeError, AttributeError):
                ok = False
            if ok:
                good.append(cp)
            else:
                forged += 1
    return good, forged


@dataclass
class VerifyReport:
    checked: int = 0
    bad_rows: list[int] = field(default_factory=list)
    checkpoints: int = 0
    forged_checkpoints: int = 0
    problems: list[str] = field(default_factory=list)  # checkpoint mismatches, in words

    @property
    def intact(self) -> bool:
        return not self.bad_rows and not self.problems and not self.forged_checkpoints


def verify(path: str | None = None) -> VerifyReport:
    """The chain, then every signed checkpoint: its row must still be there with the same hash, and as
    many rows up to it as when it was written. Edits (the HMAC), re-chains without the key (the HMAC)
    and tail cuts or a table rebuilt from scratch (the checkpoints) are all caught."""
    from sqlalchemy import func

    checkpoints, forged = read_checkpoints(path)
    seen: dict[int, str] = {cp["last_id"]: "" for cp in checkpoints}
    checked, bad = verify_chain(seen=seen)
    report = VerifyReport(checked=checked, bad_rows=bad, checkpoints=len(checkpoints), forged_checkpoints=forged)
    for cp in checkpoints:
        when = cp.get("written_at")
        if not seen.get(cp["last_id"]):
            report.problems.append(f"checkpoint of {when}: row {cp['last_id']} is missing (rows were cut)")
            continue
        if seen[cp["last_id"]] != cp["head"]:
            report.problems.append(f"checkpoint of {when}: row {cp['last_id']} has a different hash")
        n = db.session.execute(select(func.count()).select_from(AuditEvent)
                               .where(AuditEvent.id <= cp["last_id"])).scalar_one()
        if n != cp["count"]:
            report.problems.append(f"checkpoint of {when}: {cp['count']} rows up to {cp['last_id']}, now {n}")
    if forged:
        report.problems.append(f"{forged} checkpoint line(s) with a bad signature")
    return report

"""Server-side session records (request mechanics: this module reads the cookie and `g`; the services
that start or end sessions are handed the record).

The signed Flask cookie carries only a random 256-bit token (`sid`); its keyed hash finds a
UserSession row. Sign-out, "sign out everywhere", password change, MFA reset, role change and
disabling revoke rows, so a copied cookie is dead afterwards. Idle (15 min) and absolute (12 h)
timeouts are checked here on every request, not only in the browser.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app, g, request, session, url_for
from sqlalchemy import select, update

from portal.accounts.models import User, UserSession
from portal.core.audit import EventTag, record_event
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.extensions import db

PENDING_MFA_SECONDS = 10 * 60
LAST_SEEN_GRANULARITY = timedelta(seconds=15)
_SENTINEL = object()


def _token_hash(token: str) -> str:
    return keyed_hash(token, "session")


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _install_cookie(token: str, lang: str | None = None) -> None:
    lang = lang or session.get("lang")
    session.clear()  # drops any pre-sign-in state, including the old CSRF token
    session["sid"] = token
    if lang:
        session["lang"] = lang


def start(user: User) -> UserSession:
    """After the password step: a fresh record and token; the second factor is still owed."""
    token = _new_token()
    now = utcnow()
    record = UserSession(
        user_id=user.id,
        token_hash=_token_hash(token),
        last_seen_at=now,
        ip=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:300],
    )
    db.session.add(record)
    db.session.flush()
    _install_cookie(token)
    g.pending_user = user
    g.session_record = record
    return record


def complete_mfa(record: UserSession) -> None:
    """After the second factor: renew the identifier and mark the session fully signed in."""
    token = _new_token()
    now = utcnow()
    record.token_hash = _token_hash(token)
    record.mfa_verified_at = now
    record.reauth_at = now
    record.last_seen_at = now
    record.user.last_sign_in_at = now
    db.session.flush()
    _install_cookie(token)


def mark_reauthenticated(record: UserSession) -> None:
    record.reauth_at = utcnow()
    db.session.flush()


def current_record() -> UserSession | None:
    cached = g.get("session_record", _SENTINEL)
    if cached is not _SENTINEL:
        return cached
    g.session_record = None
    token = session.get("sid")
    if not token or not isinstance(token, str):
        return None
    record = db.session.execute(
        select(UserSession).where(UserSession.token_hash == _token_hash(token))
    ).scalars().first()
    if record is None or record.revoked_at is not None:
        session.pop("sid", None)
        return None
    cfg = current_app.config
    now = utcnow()
    expired = None
    if record.mfa_verified_at is None and now - _pending_since(record) > timedelta(seconds=_pending_limit(record)):
        expired = "pending_timeout"
    elif now - record.last_seen_at > timedelta(seconds=cfg["SESSION_IDLE_SECONDS"]):
        expired = "idle"
    elif now - record.created_at > timedelta(seconds=cfg["SESSION_ABSOLUTE_SECONDS"]):
        expired = "absolute"
    elif record.user.disabled_at is not None:
        expired = "disabled"
    if expired:
        record.revoked_at = now
        record.revoked_reason = expired
        if expired in ("idle", "absolute"):
            record_event(EventTag.SESSION_TIMEOUT, actor=record.user, object_type="session",
                         object_id=record.public_id, detail={"reason": expired})
        db.session.flush()  # the request frame commits
        session.pop("sid", None)
        g.session_expired = expired
        return None
    g.session_record = record
    return record


def _pending_since(record: UserSession):
    """When the pending step began: the password step (a session is created there and never drops back),
    or, while setting up an authenticator, when that set-up began."""
    return record.totp_pending_at or record.created_at


def _pending_limit(record: UserSession) -> int:
    from portal.accounts.mfa import PENDING_SECONDS

    return PENDING_SECONDS if record.totp_pending_at else PENDING_MFA_SECONDS


def touch(record: UserSession, force: bool = False) -> None:
    now = utcnow()
    if force or now - record.last_seen_at >= LAST_SEEN_GRANULARITY:
        record.last_seen_at = now
        db.session.flush()  # the request frame commits


def load_user_from_request(_request):
    """Flask-Login request_loader: only a live, MFA-verified server-side session signs a user in."""
    record = current_record()
    if record is None or record.mfa_verified_at is None:
        return None
    touch(record)
    return record.user


def load_pending_user() -> None:
    """before_request: expose the user who passed the password step but owes the second factor."""
    g.pending_user = None
    record = current_record()
    if record is not None and record.mfa_verified_at is None:
        g.pending_user = record.user


def end_current(reason: str = "signout") -> None:
    record = current_record()
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()
        record.revoked_reason = reason
        db.session.flush()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def revoke_all(user: User, reason: str, keep: UserSession | None = None) -> int:
    stmt = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    result = db.session.execute(stmt.values(revoked_at=utcnow(), revoked_reason=reason)
                                .execution_options(synchronize_session=False))
    return result.rowcount


def revoke_one(user: User, public_id: str) -> bool:
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.public_id == public_id[:32],
               UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="revoked_by_user")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def active_sessions(user: User) -> list[UserSession]:
    cfg = current_app.config
    now = utcnow()
    rows = db.session.execute(
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None),
               UserSession.mfa_verified_at.is_not(None),
               UserSession.last_seen_at > now - timedelta(seconds=cfg["SESSION_IDLE_SECONDS"]),
               UserSession.created_at > now - timedelta(seconds=cfg["SESSION_ABSOLUTE_SECONDS"]))
        .order_by(UserSession.last_seen_at.desc())
    ).scalars().all()
    return list(rows)


def timeout_context() -> dict | None:
    from flask_login import current_user

    if not getattr(current_user, "is_authenticated", False):
        return None
    cfg = current_app.config
    return {
        "idle_seconds": cfg["SESSION_IDLE_SECONDS"],
        "warning_seconds": cfg["SESSION_WARNING_SECONDS"],
        "keepalive_url": url_for("account.keepalive"),
        "expired_url": url_for("auth.signin", reason="timeout"),
    }

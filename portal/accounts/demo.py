"""Demo data for the accounts domain: an earlier sign-in for each demo patient, so the account page's
"Previous sign-in" and the sessions list show a real device ("Safari on iOS") at the first demo login.
Idempotent: the earlier session is added once per account."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from portal.accounts.models import UserSession
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.extensions import db

ORDER = 20
DEMO_DEVICE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.4 Mobile/15E148 Safari/604.1")


def seed(ctx) -> None:
    for email in ("gladys@patient.example", "yvone@patient.example"):
        user = ctx.users.get(email)
        if user is None:
            continue
        exists = db.session.execute(select(UserSession.id).where(UserSession.user_id == user.id,
                                                                 UserSession.user_agent == DEMO_DEVICE)).first()
        if exists:
            continue
        when = utcnow() - timedelta(days=2, hours=3)
        db.session.add(UserSession(user_id=user.id, token_hash=keyed_hash(secrets.token_urlsafe(32), "session"),
                                   created_at=when, last_seen_at=when + timedelta(minutes=9),
                                   mfa_verified_at=when, revoked_at=when + timedelta(minutes=10),
                                   revoked_reason="signout", ip="203.0.113.24", user_agent=DEMO_DEVICE))
    ctx.notes.append("Demo patients have an earlier sign-in from an iPhone (account page: Previous sign-in).")

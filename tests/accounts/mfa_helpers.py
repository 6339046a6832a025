"""Reading the secret a session is setting up (it lives on the session record, not the user)."""

from __future__ import annotations

from sqlalchemy import select


def pending_secret(db, user) -> str | None:
    from portal.accounts.models import UserSession
    from portal.core.crypto import decrypt

    enc = db.session.execute(select(UserSession.totp_pending_enc)
                             .where(UserSession.user_id == user.id, UserSession.totp_pending_enc.is_not(None))
                             .order_by(UserSession.totp_pending_at.desc())).scalars().first()
    return decrypt(enc) if enc else None

"""A passkey of the access-control sweep's victim (tests/security/test_access_control.py)."""

from __future__ import annotations

import os

from sqlalchemy import select


def victim_passkey(victim):
    from portal.accounts.models import Passkey
    from portal.core.db import utcnow
    from portal.extensions import db

    row = db.session.execute(select(Passkey).where(Passkey.user_id == victim.id)).scalars().first()
    if row is None:
        row = Passkey(user_id=victim.id, credential_id=os.urandom(32).hex(), public_key=b"\xa0", sign_count=0,
                      name="Victim's phone", backup_eligible=True, backed_up=True)
        db.session.add(row)
        victim.passkeys_enabled_at = victim.passkeys_enabled_at or utcnow()
        db.session.commit()
    return row

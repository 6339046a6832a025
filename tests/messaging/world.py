"""Real messaging objects of a victim patient, for the security suite's horizontal probes."""

from __future__ import annotations

from portal.extensions import db


def victim_object_id(victim, endpoint: str) -> str:
    cached = getattr(victim, "_msg_objects", None)
    if cached is None:
        from sqlalchemy import select

        from portal.messaging.models import Attachment
        from tests.messaging.helpers import PDF, make_pool, open_for

        pool = make_pool(f"victim-{victim.id}")
        thread = open_for(victim._patient, victim, subject="victim thread", pool=pool, files=[(PDF, "v.pdf")])
        attachment = db.session.execute(select(Attachment).where(Attachment.thread_id == thread.id)).scalars().one()
        db.session.commit()
        cached = victim._msg_objects = {"thread": thread.public_id, "attachment": attachment.public_id,
                                        "pool": pool.public_id}
    if endpoint.endswith(".attachment"):
        return cached["attachment"]
    if endpoint in ("inbox.add_member", "inbox.remove_member", "inbox.add_canned"):
        return cached["pool"]
    return cached["thread"]

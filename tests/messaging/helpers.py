"""Messaging test helpers: pools with members, threads, files."""

from __future__ import annotations

import io

from portal.extensions import db
from portal.messaging.models import CannedReply, Pool, PoolMember


def make_pool(key="support", *, kind="support", topics="technical,records,appointment,other", hours=24,
              members=(), name=None):
    pool = Pool(key=key, name=name or key.title(), name_es=None, kind=kind, topics=topics, target_hours=hours)
    db.session.add(pool)
    db.session.flush()
    for user in members:
        db.session.add(PoolMember(pool_id=pool.id, user_id=user.id))
    db.session.flush()
    return pool


def add_canned(pool, title="Hello", body="Hello {first_name},\n\nThanks for writing.", language="en"):
    c = CannedReply(pool_id=pool.id, title=title, body=body, language=language)
    db.session.add(c)
    db.session.flush()
    return c


def png_bytes(size=(20, 20)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 10)).save(out, "JPEG")
    return out.getvalue()


PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


def open_for(patient, actor=None, *, subject="A question", body="Hello there", topic="other", **kw):
    from portal.messaging import services

    return services.open_thread(patient, subject=subject, body=body, topic=topic, actor=actor, **kw)

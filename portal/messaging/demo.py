"""Demo inbox: four teams (two care teams, billing, the front office) with members and canned replies,
and threads in every state: gladys@patient.example has an unread reply, a closed and rated
conversation and an open question with a photo attached; yvone@patient.example (Spanish) has one
waiting on her; other patients fill the unassigned queue, some past their reply target, one owned by
support, one that arrived by text. Idempotent: teams by key, threads by their first message's key."""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import select, update

from portal.core.db import utcnow
from portal.extensions import db
from portal.messaging import sanitize, services
from portal.messaging.models import CLOSED, STAFF, WAITING, CannedReply, Message, Pool, PoolMember, Thread

ORDER = 60

POOLS = [
    ("care-patel", "Care team – Dr. Patel", "Equipo de la Dra. Patel", "care", "medical,refill", 48),
    ("care-internal", "Care team – Internal medicine", "Equipo de medicina interna", "care", "", 48),
    ("billing", "Billing office", "Facturación", "billing", "billing", 24),
    ("support", "Front office", "Recepción", "support", "appointment,technical,records,other", 8),
]
CANNED = {
    "care-patel": [("Refill sent", "Hello {first_name},\n\nYour refill has been sent to your pharmacy. "
                                   "It is usually ready within a day.\n\nDr. Patel's team")],
    "billing": [("Payment plan", "Hello {first_name},\n\nWe can split the balance into monthly payments. "
                                 "Reply here with the amount that works for you.\n\nBilling office")],
    "support": [("Password help", "Hello {first_name},\n\nUse \"Forgot password\" on the sign-in page; the link "
                                  "works for one hour. Call us if it does not arrive.\n\nFront office"),
                ("Appointment booked", "Hello {first_name},\n\nYou are booked. You will find the time under "
                                       "Appointments, with a reminder before the visit.\n\nFront office")],
}
CANNED_ES = {  # the same answers for patients who read Spanish (shown first on their threads)
    "care-patel": [("Receta enviada", "Hola, {first_name}:\n\nEnviamos su receta a su farmacia. Suele estar "
                                      "lista en un día.\n\nEquipo de la Dra. Patel")],
    "support": [("Ayuda con la contraseña", "Hola, {first_name}:\n\nUse «¿Olvidó su contraseña?» en la página de "
                                            "inicio de sesión; el enlace vale una hora. Llámenos si no le llega."
                                            "\n\nRecepción"),
                ("Cita reservada", "Hola, {first_name}:\n\nSu cita está reservada. La verá en Citas, con un "
                                   "recordatorio antes de la visita.\n\nRecepción")],
}


def _png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (240, 160), (236, 240, 244))
    ImageDraw.Draw(img).rectangle((20, 20, 220, 140), outline=(31, 111, 139), width=4)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
            b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n"
            b"%%EOF\n")


def _pools(ctx) -> dict[str, Pool]:
    pools = {}
    for key, name, name_es, kind, topics, hours in POOLS:
        pool = db.session.execute(select(Pool).where(Pool.key == key)).scalars().first()
        if pool is None:
            pool = Pool(key=key, name=name, name_es=name_es, kind=kind, topics=topics, target_hours=hours)
            db.session.add(pool)
            db.session.flush()
        pools[key] = pool
    staff = ctx.staff
    membership = [("support", "support"), ("billing", "billing"), ("clinician", "care-patel"),
                  ("clinician", "care-internal"), ("support", "care-patel")]
    for role, key in membership:
        user = staff.get(role)
        if user is None:
            continue
        if db.session.execute(select(PoolMember.id).where(PoolMember.pool_id == pools[key].id,
                                                          PoolMember.user_id == user.id)).first() is None:
            db.session.add(PoolMember(pool_id=pools[key].id, user_id=user.id))
    for language, canned in (("en", CANNED), ("es", CANNED_ES)):
        for key, items in canned.items():
            for title, body in items:
                if db.session.execute(select(CannedReply.id).where(CannedReply.pool_id == pools[key].id,
                                                                   CannedReply.title == title)).first() is None:
                    db.session.add(CannedReply(pool_id=pools[key].id, title=title, body=body, language=language))
    db.session.flush()
    return pools


def _thread(patient, actor, key, *, subject, body, topic, pool, days_ago, files=(), channel="portal"):
    existing = db.session.execute(select(Message).where(
        Message.client_key == services._key(actor, key))).scalars().first()
    if existing is not None:
        return None
    thread = services.open_thread(patient, subject=subject, body=body, topic=topic, actor=actor, pool=pool,
                                  files=files, client_key=key, channel=channel)
    when = utcnow() - timedelta(days=days_ago)
    db.session.execute(update(Thread).where(Thread.id == thread.id).values(
        created_at=when, last_message_at=when, awaiting_since=when))
    db.session.execute(update(Message).where(Message.thread_id == thread.id).values(created_at=when))
    db.session.refresh(thread)
    return thread


def _reply(thread, staff, body, *, hours_later, status=None, unread=True):
    html = sanitize.to_html(body)
    msg, _ = services._add(thread, STAFF, staff, html, sanitize.to_text(html), None)
    when = thread.created_at + timedelta(hours=hours_later)
    services._bump(thread, STAFF, when, sanitize.to_text(html), status=status)
    msg.created_at = when
    values = {"assignee_id": staff.id, "claimed_at": when, "last_message_at": when}
    if not unread:
        values.update(patient_unread=0, patient_read_at=when + timedelta(hours=2))
    db.session.execute(update(Thread).where(Thread.id == thread.id).values(**values))
    db.session.refresh(thread)


def seed(ctx) -> None:
    pools = _pools(ctx)
    support, clinician, billing = ctx.staff.get("support"), ctx.staff.get("clinician"), ctx.staff.get("billing")
    gladys_user, yvone_user = ctx.user("gladys@patient.example"), ctx.user("yvone@patient.example")
    gladys, yvone = ctx.patient_of("gladys@patient.example"), ctx.patient_of("yvone@patient.example")

    t = _thread(gladys, gladys_user, "demo-gladys-refill", subject="Refill for lisinopril",
                body="Hello,\n\nI have five tablets left. Could you send a refill to the pharmacy on Main Street?",
                topic="refill", pool=pools["care-patel"], days_ago=2)
    if t is not None:
        _reply(t, clinician, "Hello Gladys,\n\nDone: the refill is at the Main Street pharmacy.\n\n"
                             "- 90 tablets\n- 1 tablet each morning\n\nDr. Casey Clinician", hours_later=5)
    t = _thread(gladys, gladys_user, "demo-gladys-bill", subject="Question about my March bill",
                body="Why was I charged for the lab work twice?", topic="billing", pool=pools["billing"], days_ago=12)
    if t is not None:
        _reply(t, billing, "Hello Gladys, you were right: the second charge is removed. The corrected "
                           "statement is on its way.", hours_later=20, status=CLOSED, unread=False)
        db.session.execute(update(Thread).where(Thread.id == t.id).values(
            rating=5, rating_comment="Quick and clear, thank you.", rated_at=t.created_at + timedelta(days=1)))
    _thread(gladys, gladys_user, "demo-gladys-rash", subject="Rash on my arm",
            body="I have had this rash for three days. A photo is attached. Should I come in?",
            topic="medical", pool=pools["care-patel"], days_ago=3, files=[(_png(), "rash photo.png")])
    t = _thread(yvone, yvone_user, "demo-yvone-form", subject="Formulario para el trabajo",
                body="Necesito un formulario firmado para mi trabajo. Adjunto el PDF.", topic="records",
                pool=pools["support"], days_ago=1, files=[(_pdf(), "formulario.pdf")])
    if t is not None:
        _reply(t, support, "Hola Yvone: ¿para qué fecha lo necesita? Lo preparamos en cuanto nos conteste.",
               hours_later=3, status=WAITING)

    others = [p for fid, p in sorted(ctx.patients.items()) if p.id not in (gladys.id, yvone.id)]
    samples = [
        ("Can't sign in on my phone", "The app says my code is wrong every time.", "technical", "support", 0.2),
        ("Change my appointment", "Can I move Thursday's visit to next week?", "appointment", "support", 1.5),
        ("Insurance card updated", "I have a new insurance card since January.", "billing", "billing", 2.5),
        ("Blood pressure readings", "My readings this week:\n- 150/95\n- 148/92\n- 155/97", "medical",
         "care-patel", 4),
        ("Copy of my records", "Please send my records to my new address.", "records", "support", 0.5),
        ("Side effects", "The new tablets make me dizzy in the morning.", "medical", "care-internal", 0.1),
    ]
    for n, (subject, body, topic, key, days) in enumerate(samples):
        if not others:
            break
        patient = others[n % len(others)]
        _thread(patient, None, f"demo-other-{n}", subject=subject, body=body, topic=topic, pool=pools[key],
                days_ago=days)
    if others and support is not None:
        t = db.session.execute(select(Thread).join(Message, Message.thread_id == Thread.id).where(
            Message.client_key == services._key(None, "demo-other-1"))).scalars().first()
        if t is not None and t.assignee_id is None:
            db.session.execute(update(Thread).where(Thread.id == t.id).values(assignee_id=support.id,
                                                                              claimed_at=utcnow()))
        _thread(others[-1], None, "demo-sms-0", subject="Text message", body="Is the clinic open on Saturday?",
                topic="other", pool=pools["support"], days_ago=0.05, channel="sms")
    db.session.flush()
    ctx.notes.append("Messaging: patients /messages (gladys has an unread reply), staff /inbox "
                     "(support, billing, clinician are in teams), /inbox/dashboard; admin /inbox/pools.")

"""The patient's side: compose (routing, refs, emergency text), list, thread, reply, unread counts,
read receipts, rating, double submit, access (another patient's thread and files: 404 + denied row)."""

from __future__ import annotations

import io
import re

from sqlalchemy import func, select

from portal.core.audit import AuditEvent
from portal.core.registry import ResolvedRef, refs
from portal.messaging import services
from portal.messaging.models import Attachment, Message, Thread
from tests.helpers import form_token
from tests.messaging.helpers import PDF, make_pool, open_for, png_bytes


def _compose(client, data, files=None, path="/messages/new"):
    html = client.get(path).get_data(as_text=True)
    payload = {"csrf_token": form_token(html), "client_key": re.search(r'name="client_key"[^>]*value="([^"]+)"',
                                                                        html).group(1), **data}
    ref = re.search(r'name="ref"[^>]*value="([^"]*)"', html)
    if ref:
        payload.setdefault("ref", ref.group(1))
    for name, (content, filename) in (files or {}).items():
        payload.setdefault("attachments", []).append((io.BytesIO(content), filename))
    return client.post("/messages/new", data=payload, content_type="multipart/form-data"), payload


def _denied(db, user):
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == user.id)).scalar_one()


def test_compose_routes_to_the_topic_pool_and_shows_reply_times(app, db, login_as):
    billing = make_pool("billing", kind="billing", topics="billing", hours=24)
    make_pool("support", hours=8)
    client, user = login_as("patient")
    page = client.get("/messages/new?topic=billing").get_data(as_text=True)
    assert "For an emergency, call" in page and "usually within 24 hours" in page
    assert re.search(r'<input checked[^>]*value="billing"', page)
    r, _ = _compose(client, {"topic": "billing", "subject": "My bill", "body": "Why two charges?"},
                    files={"a": (png_bytes(), "photo.png")})
    assert r.status_code == 302
    thread = db.session.execute(select(Thread)).scalars().one()
    assert thread.pool_id == billing.id and thread.topic == "billing" and thread.awaiting_since is not None
    att = db.session.execute(select(Attachment)).scalars().one()
    assert att.content_type == "image/png" and att.filename == "photo.png" and att.stored_name != "photo.png"
    html = client.get(r.location).get_data(as_text=True)
    assert "Why two charges?" in html and "photo.png" in html


def test_scheduling_type_alias_and_unknown_topics(app, db, login_as):
    make_pool("support", hours=8)
    client, _ = login_as("patient")
    assert re.search(r'<input checked[^>]*value="appointment"', client.get("/messages/new?type=scheduling").get_data(True))
    assert services.normalise_topic("<script>") == "other"


def test_ref_is_shown_and_stored_only_when_the_user_may_see_it(app, db, login_as, make_patient):
    make_pool("support")
    client, user = login_as("patient")
    other = make_patient()
    mine = user._patient

    def resolve(u, public_id):
        owner = mine if public_id == "mine" else other
        return ResolvedRef(label="Lipid panel, 3 May", url="/record", patient_id=owner.id)

    refs.add("testresult", resolve)
    try:
        page = client.get("/messages/new?ref=testresult:mine&topic=medical").get_data(as_text=True)
        assert "Lipid panel, 3 May" in page
        foreign = client.get("/messages/new?ref=testresult:theirs").get_data(as_text=True)
        assert "Lipid panel" not in foreign
        r, _ = _compose(client, {"topic": "medical", "subject": "About my result", "body": "Is this ok?"},
                        path="/messages/new?ref=testresult:mine")
        assert r.status_code == 302
        t = db.session.execute(select(Thread)).scalars().one()
        assert t.ref == "testresult:mine" and t.ref_label == "Lipid panel, 3 May"
    finally:
        refs._resolvers.pop("testresult", None)


def test_double_submit_makes_one_thread(app, db, login_as):
    make_pool("support")
    client, _ = login_as("patient")
    r1, payload = _compose(client, {"topic": "other", "subject": "Twice", "body": "Clicked twice"})
    r2 = client.post("/messages/new", data={k: v for k, v in payload.items() if k != "attachments"})
    assert r1.status_code == r2.status_code == 302 and r1.location == r2.location
    assert db.session.execute(select(func.count()).select_from(Thread)).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == 1


def test_unread_badge_read_receipt_and_reply_reopens(app, db, login_as):
    client, user = login_as("patient")
    staff_client, staff = login_as("support")
    make_pool("support", members=[staff])
    thread = open_for(user._patient, user, subject="Question")
    db.session.commit()
    with app.test_request_context():
        services.staff_reply(staff, thread.public_id, body="First answer", client_key="k1")
        services.staff_reply(staff, thread.public_id, body="Second answer", client_key="k2", then="closed")
    db.session.commit()
    assert services.unread_count(user) == 2
    home = client.get("/messages").get_data(as_text=True)
    assert 'class="nav-badge">2<' in home and "2 new replies" in home
    client.get(f"/messages/{thread.public_id}")
    assert services.unread_count(user) is None
    db.session.refresh(thread)
    assert thread.patient_read_at is not None and thread.status == "closed"
    html = client.get(f"/messages/{thread.public_id}").get_data(as_text=True)
    token = form_token(html)
    key = re.search(r'name="client_key"[^>]*value="([^"]+)"', html).group(1)
    r = client.post(f"/messages/{thread.public_id}/rate", data={"csrf_token": token, "rating": "4", "comment": "ok"})
    assert r.status_code == 302
    r = client.post(f"/messages/{thread.public_id}/reply", data={"csrf_token": token, "body": "One more thing",
                                                                  "client_key": key})
    assert r.status_code == 302
    client.post(f"/messages/{thread.public_id}/reply", data={"csrf_token": token, "body": "One more thing",
                                                              "client_key": key})
    db.session.refresh(thread)
    assert thread.status == "open" and thread.rating == 4 and thread.awaiting_since is not None
    assert db.session.execute(select(func.count()).select_from(Message).where(
        Message.thread_id == thread.id, Message.kind == "patient")).scalar_one() == 2
    views = db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "messaging.thread.view", AuditEvent.actor_id == user.id)).scalar_one()
    assert views == 2


def test_other_patients_threads_and_files_answer_404_with_a_denied_row(app, db, login_as):
    make_pool("support")
    victim_client, victim = login_as("patient")
    thread = open_for(victim._patient, victim, subject="Private matter", files=[(PDF, "x.pdf")])
    att = db.session.execute(select(Attachment)).scalars().one()
    db.session.commit()
    client, intruder = login_as("patient")
    for path in (f"/messages/{thread.public_id}", f"/messages/attachments/{att.public_id}"):
        before = _denied(db, intruder)
        r = client.get(path)
        assert r.status_code == 404 and "Private matter" not in r.get_data(as_text=True)
        assert _denied(db, intruder) == before + 1
    token = form_token(client.get("/messages/new").get_data(as_text=True))
    r = client.post(f"/messages/{thread.public_id}/reply", data={"csrf_token": token, "body": "hi", "client_key": "z"})
    assert r.status_code == 404
    assert client.get("/messages").get_data(as_text=True).count("Private matter") == 0
    # the owner downloads it as an attachment with nosniff
    r = victim_client.get(f"/messages/attachments/{att.public_id}")
    assert r.status_code == 200 and r.data == PDF
    assert r.headers["Content-Disposition"].startswith("attachment") and r.headers["X-Content-Type-Options"] == "nosniff"
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "messaging.attachment.download", AuditEvent.actor_id == victim.id)).scalar_one() == 1


def test_patients_never_see_internal_notes(app, db, login_as, mailbox):
    client, user = login_as("patient")
    _, staff = login_as("support")
    make_pool("support", members=[staff])
    thread = open_for(user._patient, user)
    db.session.commit()
    with app.test_request_context():
        services.staff_reply(staff, thread.public_id, body="SECRET-NOTE about the patient", internal=True,
                             files=[(PDF, "note.pdf")])
        services.staff_reply(staff, thread.public_id, body="Visible reply")
        db.session.commit()  # the notice goes after the commit, at the end of this context
    html = client.get(f"/messages/{thread.public_id}").get_data(as_text=True)
    assert "Visible reply" in html and "SECRET-NOTE" not in html and "note.pdf" not in html
    note_file = db.session.execute(select(Attachment).where(Attachment.internal.is_(True))).scalars().one()
    assert client.get(f"/messages/attachments/{note_file.public_id}").status_code == 404
    mails = mailbox.wait_for(1)
    assert len(mails) == 1
    assert all("SECRET-NOTE" not in str(m) and "Visible reply" not in str(m) for m in mails)


def test_staff_cannot_use_patient_pages(app, db, login_as):
    client, staff = login_as("support")
    assert client.get("/messages").status_code == 403
    assert client.get("/messages/new").status_code == 403

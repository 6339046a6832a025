"""Bare baselines for bench/messaging.py: Flask + SQLAlchemy + Jinja with nothing else (no session, no
auth, no audit, no CSRF), one ORM query per page over the same tables the portal reads.

    gunicorn --pythonpath bench msg_baseline:app     (DATABASE_URL names the seeded database)

GET /inbox/<pool_id>      25 open threads of a pool, oldest unanswered first, with their patients
GET /thread/<public_id>   one thread's messages
"""

from __future__ import annotations

import os

from flask import Flask, abort, render_template_string
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, joinedload

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from portal.messaging.models import Message, Thread  # noqa: E402  (the same mapped tables)
import portal.models  # noqa: E402,F401  (every mapper, for the relationships)

app = Flask("bare_orm_messaging")
engine = create_engine(os.environ["DATABASE_URL"], pool_size=4)

INBOX = """<!doctype html><html><head><title>Inbox</title></head><body><main><h1>Inbox</h1><table>
{% for t in threads %}<tr><td><a href="/thread/{{ t.public_id }}">{{ t.subject }}</a><br>{{ t.last_preview }}</td>
<td>{{ t.patient.given_name }} {{ t.patient.family_name }}<br>{{ t.patient.mrn }}</td><td>{{ t.topic }}</td>
<td>{{ t.status }}</td><td>{{ t.awaiting_since }}</td></tr>{% endfor %}</table></main></body></html>"""
THREAD = """<!doctype html><html><head><title>{{ t.subject }}</title></head><body><main><h1>{{ t.subject }}</h1>
{% for m in messages %}<article><header>{{ m.author_name }} {{ m.created_at }}</header>
<div>{{ m.body_html|safe }}</div></article>{% endfor %}</main></body></html>"""


@app.get("/inbox/<int:pool_id>")
def inbox(pool_id):
    with Session(engine) as s:
        threads = s.execute(select(Thread).options(joinedload(Thread.patient))
                            .where(Thread.pool_id == pool_id, Thread.status.in_(("open", "waiting")))
                            .order_by(Thread.awaiting_since.asc().nulls_last(), Thread.id).limit(25)).scalars().all()
        return render_template_string(INBOX, threads=threads)


@app.get("/thread/<public_id>")
def thread(public_id):
    with Session(engine) as s:
        t = s.execute(select(Thread).where(Thread.public_id == public_id)).scalars().first()
        if t is None:
            abort(404)
        messages = s.execute(select(Message).where(Message.thread_id == t.id).order_by(Message.id)).scalars().all()
        return render_template_string(THREAD, t=t, messages=messages)

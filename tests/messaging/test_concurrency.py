"""SECURITY.md §37: ten or more concurrent claims of one thread → exactly one owner (PostgreSQL when
TEST_DATABASE_URL is set); unread counts right after concurrent replies; a double submit racing itself
adds one message."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.concurrency import race

N = 10


def _world(app):
    from portal.extensions import db
    from portal.messaging.models import Thread
    from tests.factories import PatientFactory, create_user
    from tests.messaging.helpers import make_pool, open_for

    with app.app_context():
        staff = [create_user("support", display_name=f"Staff {n}") for n in range(N)]
        patient = PatientFactory.create()
        make_pool("support", members=staff)
        thread = open_for(patient, None)
        db.session.commit()
        return [u.id for u in staff], thread.public_id, db.session.get(Thread, thread.id).id


def _as(app, user_id, fn):
    from portal.accounts.models import User
    from portal.core.errors import DomainError
    from portal.extensions import db

    with app.test_request_context():
        try:
            out = fn(db.session.get(User, user_id))
            db.session.commit()
            return out
        except DomainError as err:
            db.session.rollback()
            return err
        finally:
            db.session.remove()


def test_ten_parallel_claims_make_exactly_one_owner(committing_app):
    from portal.messaging import services

    app = committing_app
    staff, public_id, thread_id = _world(app)
    ids = iter(staff)
    results = race(N, lambda uid=None: _as(app, next(ids), lambda u: services.claim(u, public_id) and "won"))
    winners = [r for r in results if r == "won"]
    losers = [r for r in results if r != "won"]
    assert len(winners) == 1, results
    assert all("has already claimed this conversation" in str(getattr(r, "message", r)) for r in losers), losers
    from portal.extensions import db
    from portal.messaging.models import Message, Thread

    with app.app_context():
        t = db.session.get(Thread, thread_id)
        assert t.assignee_id in staff
        assert db.session.execute(select(func.count()).select_from(Message).where(
            Message.thread_id == thread_id, Message.kind == "system")).scalar_one() == 1


def test_unread_count_is_right_after_concurrent_replies_and_double_submit_adds_one(committing_app):
    from portal.messaging import services

    app = committing_app
    staff, public_id, thread_id = _world(app)
    owner = staff[0]
    _as(app, owner, lambda u: services.claim(u, public_id))
    keys = iter(range(N))
    race(N, lambda: _as(app, owner, lambda u: services.staff_reply(u, public_id, body="Reply",
                                                                  client_key=f"k{next(keys)}")))
    race(N, lambda: _as(app, owner, lambda u: services.staff_reply(u, public_id, body="Same form",
                                                                  client_key="one-form")))
    from portal.extensions import db
    from portal.messaging.models import Message, Thread

    with app.app_context():
        t = db.session.get(Thread, thread_id)
        staff_messages = db.session.execute(select(func.count()).select_from(Message).where(
            Message.thread_id == thread_id, Message.kind == "staff")).scalar_one()
        assert staff_messages == N + 1
        assert t.patient_unread == N + 1

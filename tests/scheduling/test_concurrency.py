"""SECURITY.md §36 through the real HTTP stack with real commits (PostgreSQL when TEST_DATABASE_URL
is set, else a SQLite file): 20 patients confirm the same time at once → exactly one appointment,
19 "that time was just taken"; 20 waitlisted patients accept the same offered time → exactly one."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import requests
from sqlalchemy import func, select

from tests.concurrency import live_http, race

N = 20


def _http_client(app, base_url, user_id, path):
    """A browser-like session for `user_id`: a live server-side session (as tests/conftest.py's
    sign_in_session makes it) in the app's own signed cookie, and the CSRF token of `path`."""
    from portal.accounts.models import UserSession
    from portal.core.crypto import keyed_hash
    from portal.core.db import utcnow
    from portal.extensions import db

    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(user_id=user_id, token_hash=keyed_hash(token, "session"), last_seen_at=now,
                               mfa_verified_at=now, reauth_at=now, ip="127.0.0.1", user_agent="race"))
    db.session.commit()
    http = requests.Session()
    cookie = app.session_interface.get_signing_serializer(app).dumps({"sid": token})
    http.cookies.set(app.config["SESSION_COOKIE_NAME"], cookie, domain="127.0.0.1", path="/")
    page = http.get(base_url + path, timeout=30)
    assert page.status_code == 200, (path, page.status_code)
    http.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return http


def _world(app, n):
    import tempfile

    from portal.extensions import db

    app.config.update(MAIL_BACKEND="file", MAIL_FILE_DIR=tempfile.mkdtemp(prefix="sched-race-mail-"))
    from tests.factories import create_user
    from tests.scheduling.helpers import make_clinic

    clinic = make_clinic()
    users = [create_user("patient") for _ in range(n)]
    db.session.commit()
    return clinic, [u.id for u in users]


def _outcomes(results):
    return {"booked": sum(1 for r in results if getattr(r, "status_code", None) == 302),
            "taken": sum(1 for r in results if getattr(r, "status_code", None) == 409
                         and "just taken" in r.text),
            "other": [getattr(r, "status_code", repr(r)) for r in results
                      if getattr(r, "status_code", None) not in (302, 409)]}


def test_twenty_concurrent_bookings_of_one_slot_make_one_appointment(committing_app):
    from portal.extensions import db
    from portal.scheduling.models import Appointment, SlotClaim

    app = committing_app
    with app.app_context():
        clinic, user_ids = _world(app, N)
        option = clinic.slot()
        token, vt = option.token, clinic.consult.public_id
        with live_http(app) as base:
            clients = [_http_client(app, base, uid, "/help") for uid in user_ids]
            queue = list(clients)

            def attempt():
                http = queue.pop()
                return http.post(base + "/appointments/book/confirm", allow_redirects=False, timeout=60,
                                 data={"csrf_token": http.csrf, "slot": token, "visit_type": vt,
                                       "reason": "race", "booking_key": secrets.token_hex(16)})

            results = race(N, attempt)
        outcome = _outcomes(results)
        print(f"\nbooking race x{N}: {outcome}")
        assert outcome == {"booked": 1, "taken": N - 1, "other": []}, outcome
        db.session.expire_all()
        assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1
        assert db.session.execute(select(func.count()).select_from(SlotClaim)).scalar_one() == 2


def test_twenty_concurrent_acceptances_of_one_offered_time_make_one_appointment(committing_app):
    from portal.core.db import utcnow
    from portal.extensions import db
    from portal.patients.models import AccessGrant
    from portal.scheduling.models import Appointment, WaitlistEntry, WaitlistOffer

    app = committing_app
    with app.app_context():
        clinic, user_ids = _world(app, N)
        option = clinic.slot()
        offers = []
        for uid in user_ids:
            patient_id = db.session.execute(select(AccessGrant.patient_id).where(AccessGrant.user_id == uid)).scalar()
            entry = WaitlistEntry(patient_id=patient_id, visit_type_id=clinic.consult.id, status="active")
            db.session.add(entry)
            db.session.flush()
            offer = WaitlistOffer(patient_id=patient_id, entry_id=entry.id, provider_id=clinic.patel.id,
                                  location_id=clinic.location.id, visit_type_id=clinic.consult.id,
                                  starts_at=option.start, ends_at=option.end,
                                  expires_at=utcnow() + timedelta(hours=1), status="open")
            db.session.add(offer)
            db.session.flush()
            offers.append(offer.public_id)
        db.session.commit()
        with live_http(app) as base:
            clients = [(_http_client(app, base, uid, "/help"), oid)
                       for uid, oid in zip(user_ids, offers)]
            queue = list(clients)

            def attempt():
                http, oid = queue.pop()
                return http.post(f"{base}/appointments/offers/{oid}/accept", allow_redirects=False, timeout=60,
                                 data={"csrf_token": http.csrf})

            results = race(N, attempt)
        outcome = _outcomes(results)
        losers = [r for r in results if getattr(r, "status_code", None) == 409]
        if losers and not outcome["taken"]:
            print(losers[0].text[-3000:])
        print(f"\nwaitlist race x{N}: {outcome}")
        assert outcome == {"booked": 1, "taken": N - 1, "other": []}, outcome
        db.session.expire_all()
        assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1
        statuses = sorted(db.session.execute(select(WaitlistOffer.status)).scalars())
        assert statuses.count("accepted") == 1 and statuses.count("open") == 0

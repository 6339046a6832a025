"""Races that matter for sign-in, on a database with real commits (not the rolled-back fixture):
one TOTP code submitted 10 times at once is accepted exactly once; concurrent failures are all counted."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pyotp
import pytest
from flask_migrate import upgrade

from config import TestingConfig
from tests.conftest import create_pg_database, drop_pg_database

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


@pytest.fixture()
def committing_app(tmp_path, request):
    from portal import create_app
    from portal.extensions import db

    name = None
    if os.environ.get("TEST_DATABASE_URL"):
        request.getfixturevalue("pg_admin_url")
        name = f"portal_race_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    else:
        url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 12}
                     if name else {"connect_args": {"timeout": 30}})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    yield app
    with app.app_context():
        db.engine.dispose()
    if name:
        drop_pg_database(name)


def _user(app):
    from portal.extensions import db
    from tests.factories import create_user

    with app.app_context():
        user = create_user("clinician")
        db.session.commit()
        return user.id, user._totp_secret


def _race(app, n, fn):
    barrier = threading.Barrier(n)
    results = []
    lock = threading.Lock()

    def run():
        with app.app_context():
            barrier.wait()
            out = fn()
            with lock:
                results.append(out)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _committed(check, user_id):
    """A race attempt: run check(user) for a freshly loaded user and commit; any error counts as a refusal."""
    from portal.accounts.models import User
    from portal.extensions import db

    def attempt():
        try:
            ok = check(db.session.get(User, user_id))
            db.session.commit()
            return ok
        except Exception:
            db.session.rollback()
            return False

    return attempt


def test_one_code_submitted_ten_times_at_once_is_accepted_once(committing_app):
    from portal.accounts import mfa

    user_id, secret = _user(committing_app)
    code = pyotp.TOTP(secret).at(time.time())
    results = _race(committing_app, 10, _committed(lambda user: mfa.verify_totp(user, code), user_id))
    assert len(results) == 10
    assert results.count(True) == 1, results


def test_concurrent_failures_are_all_counted(committing_app):
    from portal.accounts import services
    from portal.accounts.models import User
    from portal.core.errors import DomainError
    from portal.extensions import db

    user_id, _ = _user(committing_app)
    with committing_app.app_context():
        email = db.session.get(User, user_id).email

    def attempt():
        with committing_app.test_request_context(environ_base={"REMOTE_ADDR": f"10.0.0.{threading.get_ident() % 250}"}):
            try:
                services.authenticate(email, "a wrong password guess", "10.0.0.1")
            except DomainError:
                pass
            for _ in range(20):
                try:
                    db.session.commit()
                    return True
                except Exception:
                    db.session.rollback()
                    time.sleep(0.05)
            return False

    results = _race(committing_app, 8, attempt)
    assert all(results)
    with committing_app.app_context():
        from portal.accounts.lockout import failure_count

        assert failure_count(db.session.get(User, user_id)) == 8


def test_one_activation_code_submitted_eight_times_at_once_opens_one_account(committing_app):
    from sqlalchemy import func, select

    from portal.accounts import services
    from portal.accounts.models import AccessGrant, User
    from portal.core.errors import DomainError
    from portal.extensions import db
    from tests.factories import PatientFactory, create_user

    with committing_app.app_context():
        staff = create_user("support")
        patient = PatientFactory.create()
        db.session.commit()
        with committing_app.test_request_context():
            code = services.issue_activation(staff, patient)
        db.session.commit()
        patient_id, birth = patient.id, patient.birth_date

    def attempt():
        n = threading.get_ident() % 100000
        with committing_app.test_request_context():
            for _ in range(20):
                try:
                    user = services.activate(code, birth, f"race{n}@example.org", "tidal mosaic orchard 31",
                                             "10.0.0.9")
                    db.session.commit()
                    return user is not None
                except DomainError:
                    db.session.rollback()
                    return False
                except Exception:  # SQLite busy: try again, as a person would
                    db.session.rollback()
                    time.sleep(0.05)
            return False

    results = _race(committing_app, 8, attempt)
    assert results.count(True) == 1, results
    with committing_app.app_context():
        grants = db.session.execute(select(func.count()).select_from(AccessGrant)
                                    .where(AccessGrant.patient_id == patient_id)).scalar()
        patients = db.session.execute(select(func.count()).select_from(User).where(User.role == "patient")).scalar()
    assert grants == 1 and patients == 1


def test_enrolment_confirmed_twice_at_once_enrols_once(committing_app):
    from portal.accounts import mfa
    from portal.extensions import db
    from tests.factories import create_user

    with committing_app.app_context():
        user = create_user("clinician", mfa=False)
        secret = mfa.begin_enrolment(user)
        db.session.commit()
        user_id = user.id
    code = pyotp.TOTP(secret).at(time.time())
    results = _race(committing_app, 6, _committed(lambda user: mfa.confirm_enrolment(user, code), user_id))
    assert results.count(True) == 1, results

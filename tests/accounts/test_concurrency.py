"""Races that matter for sign-in, on a database with real commits (not the rolled-back fixture):
one TOTP code submitted 10 times at once is accepted exactly once; concurrent failures are all counted."""

from __future__ import annotations

import threading
import time

import pyotp

from portal.core.db import utcnow

from tests.concurrency import race


def _user(app):
    from portal.extensions import db
    from tests.factories import create_user

    with app.app_context():
        user = create_user("clinician")
        db.session.commit()
        return user.id, user._totp_secret


def _race(app, n, fn):
    return race(n, fn, app=app)


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
    from portal.accounts.models import User
    from portal.patients.models import AccessGrant
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
        with committing_app.test_request_context():
            code_id = services.check_activation(code, birth, "10.0.0.9")  # step 1, as the route does
        db.session.commit()

    def attempt():
        n = threading.get_ident() % 100000
        with committing_app.test_request_context():
            for _ in range(20):
                try:
                    user = services.activate(code_id, f"race{n}@example.org", "tidal mosaic orchard 31",
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
    """Six simultaneous confirmations of one session's pending secret: one enrols."""
    from portal.accounts import mfa
    from portal.accounts.models import UserSession
    from portal.extensions import db
    from tests.factories import create_user

    with committing_app.app_context():
        user = create_user("clinician", mfa=False)
        record = UserSession(user_id=user.id, token_hash="t" * 64, last_seen_at=utcnow())
        db.session.add(record)
        db.session.flush()
        secret = mfa.begin_enrolment(record)
        db.session.commit()
        user_id, record_id = user.id, record.id
    code = pyotp.TOTP(secret).at(time.time())

    def confirm(user):
        return mfa.confirm_enrolment(user, db.session.get(UserSession, record_id), code)

    results = _race(committing_app, 6, _committed(confirm, user_id))
    assert results.count(True) == 1, results


def test_two_sessions_enrolling_at_once_each_see_their_own_secret_and_one_wins(committing_app):
    """Probe finding 1: during enrolment every pending session was shown the same secret (it lived on
    the user row). Now each session has its own, and the account ends with exactly one factor: the
    other session's confirmation is refused, even with a correct code for its own secret."""
    from portal.accounts import mfa
    from portal.accounts.models import User, UserSession
    from portal.core.crypto import decrypt
    from portal.extensions import db
    from tests.factories import create_user

    with committing_app.app_context():
        user = create_user("patient", mfa=False)
        records = [UserSession(user_id=user.id, token_hash=f"{i}" * 64, last_seen_at=utcnow()) for i in range(2)]
        db.session.add_all(records)
        db.session.flush()
        secrets_ = [mfa.begin_enrolment(r) for r in records]
        db.session.commit()
        ids, user_id = [r.id for r in records], user.id
    assert secrets_[0] != secrets_[1]
    pairs = list(zip(ids, secrets_))
    lock = threading.Lock()

    def confirm(user):
        with lock:
            record_id, secret = pairs.pop()
        return mfa.confirm_enrolment(user, db.session.get(UserSession, record_id), pyotp.TOTP(secret).at(time.time()))

    results = _race(committing_app, 2, _committed(confirm, user_id))
    assert sorted(results) == [False, True], results
    with committing_app.app_context():
        enrolled = decrypt(db.session.get(User, user_id).totp_secret_enc)
    assert enrolled in secrets_

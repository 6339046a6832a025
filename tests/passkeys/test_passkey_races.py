"""Races on a database with real commits: one signed passkey answer submitted 8 times at once signs in
exactly once (the challenge is claimed by one conditional UPDATE), and failures are throttled like
the password's: per passkey, with the same window and lock."""

from __future__ import annotations

import pytest

from tests.concurrency import race
from tests.passkeys.authenticator import SoftAuthenticator
from tests.passkeys.conftest import ORIGIN, RP_ID

BINDING = "b" * 64


def _enrolled(app):
    from portal.accounts import passkeys
    from portal.extensions import db
    from tests.factories import create_user

    app.config.update(PUBLIC_BASE_URL=ORIGIN, WEBAUTHN_RP_ID=None, WEBAUTHN_ORIGIN=None)
    soft = SoftAuthenticator(RP_ID, ORIGIN)
    with app.test_request_context("/"):
        user = create_user("patient")
        options = passkeys.registration_options(user, BINDING)
        passkeys.register(user, soft.create(options), "Phone", BINDING)
        db.session.commit()
    return soft


def test_one_passkey_answer_submitted_eight_times_at_once_signs_in_once(committing_app):
    from portal.accounts import passkeys
    from portal.accounts.passkeys import Purpose
    from portal.extensions import db

    soft = _enrolled(committing_app)
    with committing_app.test_request_context("/"):
        answer = soft.get(passkeys.authentication_options(BINDING, Purpose.SIGNIN))
        db.session.commit()

    def attempt():
        with committing_app.test_request_context("/", environ_base={"REMOTE_ADDR": "198.51.100.7"}):
            try:
                passkeys.sign_in(answer, BINDING, "198.51.100.7")
                db.session.commit()
                return True
            except Exception:
                db.session.rollback()
                return False
            finally:
                db.session.remove()

    results = race(8, attempt)
    assert results.count(True) == 1, results


def test_failures_with_a_passkey_lock_it_like_password_failures(app, db, rp, monkeypatch):
    from portal.accounts import passkeys
    from portal.accounts.passkeys import PasskeyRefused, Purpose
    from portal.core.errors import Throttled
    from tests.factories import create_user

    monkeypatch.setitem(app.config, "LOGIN_FAILURES_PER_WINDOW", 3)
    soft = SoftAuthenticator(RP_ID, ORIGIN)
    with app.test_request_context("/"):
        user = create_user("patient")
        passkeys.register(user, soft.create(passkeys.registration_options(user, BINDING)), "Phone", BINDING)
        for _ in range(3):
            with pytest.raises(PasskeyRefused):
                passkeys.sign_in(soft.get(passkeys.authentication_options(BINDING, Purpose.SIGNIN),
                                          origin="https://phish.example"), BINDING, "203.0.113.9")
        with pytest.raises(Throttled):  # locked: even a good answer waits
            passkeys.sign_in(soft.get(passkeys.authentication_options(BINDING, Purpose.SIGNIN)), BINDING,
                             "203.0.113.9")

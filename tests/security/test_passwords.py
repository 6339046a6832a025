"""SECURITY.md §1.1: password policy (length, Unicode, no truncation, common-password list, zxcvbn)
and argon2id parameters."""

from __future__ import annotations

import gzip
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config import Config, ProductionConfig
from portal.accounts import passwords, services
from portal.accounts.models import ActivationCode, User
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.core.errors import DomainError
from tests.accounts.helpers import activate, check_code
from tests.conftest import PASSWORD, sign_in_session
from tests.security.helpers import form_csrf, sign_in_with_password

LIST = Path(passwords.__file__).parent / "data" / "common-passwords.txt.gz"
LIST_MESSAGE = "appears in lists of breached or common passwords"
LENGTH_MESSAGE = "Use at least 12 characters"
GOOD = "violet tractor minutes cobalt 1963"


def _list() -> list[str]:
    with gzip.open(LIST, "rt", encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _samples() -> tuple[list[str], list[str]]:
    """1,000 samples from the shipped list: every entry of ≥ 12 characters (the only ones that reach
    the list check), topped up with a seeded random choice of shorter entries."""
    entries = _list()
    long_ = sorted({p for p in entries if len(p) >= passwords.MIN_LENGTH})
    short = sorted({p for p in entries if len(p) < passwords.MIN_LENGTH})
    return long_, random.Random(2026).sample(short, 1000 - len(long_))


def _activation_code(db, patient) -> str:
    raw = "ABCDEFGHJKLM"
    db.session.add(ActivationCode(patient_id=patient.id, code_hash=keyed_hash(raw, "activation"),
                                  expires_at=utcnow() + timedelta(days=1)))
    db.session.flush()
    return raw


def test_list_size_and_policy_on_1000_samples():
    entries = _list()
    long_, short = _samples()
    assert len(entries) >= 10_000 and passwords.common_passwords() == frozenset(entries)
    results = {p: passwords.policy_errors(p) for p in long_ + short}
    assert all(results.values()), [p for p, e in results.items() if not e]
    assert all(LIST_MESSAGE in results[p][0] for p in long_), "long list entries must fail on the list check"
    assert all(LENGTH_MESSAGE in results[p][0] for p in short)
    # case-insensitive: the list is lower-case, people type capitals
    assert all(passwords.policy_errors(p.upper()) for p in long_ if p.upper() != p)
    padded = [p + "1" * (12 - len(p)) for p in short]
    slipped = [p for p in padded if not passwords.policy_errors(p)]
    print(f"\ncommon-password list: {len(entries)} entries ({len(long_)} of ≥ 12 characters); "
          f"samples rejected: {len(long_) + len(short)}/1000 ({len(long_)} by the list, {len(short)} by length); "
          f"informational: short entries padded with '1' to 12 characters accepted: {len(slipped)}/{len(padded)}")


def test_1000_samples_rejected_at_activation_reset_and_change(app, db, make_user, make_patient, monkeypatch):
    long_, short = _samples()
    samples = long_ + short
    user = make_user("patient")
    patient = make_patient()
    _activation_code(db, patient)
    code_id = db.session.execute(select(ActivationCode.id).where(ActivationCode.patient_id == patient.id)).scalar_one()
    rejected = {"activation": 0, "reset": 0, "change": 0}
    # change_password re-checks the current password with argon2 first (~20 ms); the route test below
    # does that for real, here it is skipped so 1,000 samples stay fast.
    monkeypatch.setattr(services, "reauthenticate", lambda *a, **k: None)
    with app.test_request_context("/"):  # messages are translated for the request's locale
        for pw in samples:
            with pytest.raises(DomainError) as e:
                services.activate(code_id, "fresh@test.example", pw, "127.0.0.1")
            assert e.value.field == "password"
            rejected["activation"] += 1
            with pytest.raises(DomainError):
                services.reset_password(user, pw)
            rejected["reset"] += 1
            with pytest.raises(DomainError):
                services.change_password(user, None, PASSWORD, pw, "127.0.0.1")
            rejected["change"] += 1
    db.session.expire_all()
    assert passwords.verify_password(db.session.get(User, user.id).password_hash, PASSWORD)
    assert db.session.execute(select(User).where(User.email == "fresh@test.example")).first() is None
    print(f"\nlist samples rejected per path: {rejected}")
    assert rejected == {"activation": 1000, "reset": 1000, "change": 1000}


def test_list_samples_rejected_through_the_routes(app, db, make_user, make_patient):
    long_, short = _samples()
    picks = random.Random(7).sample(long_, 15) + random.Random(8).sample(short, 5)
    patient = make_patient()
    code = _activation_code(db, patient)
    client = app.test_client()
    assert check_code(client, code, patient.birth_date).status_code == 302  # step 1, then step 2 each time
    for pw in picks:
        token = form_csrf(client.get("/activate/account").get_data(as_text=True))
        r = client.post("/activate/account", data={"csrf_token": token, "email": "fresh@test.example",
                                                   "password": pw})
        body = r.get_data(as_text=True)
        assert r.status_code == 400 and (LIST_MESSAGE in body or LENGTH_MESSAGE in body), pw
    user = make_user("patient")
    signed_in = app.test_client()
    sign_in_session(signed_in, user)
    for pw in picks[:10]:
        token = form_csrf(signed_in.get("/account/password").get_data(as_text=True))
        r = signed_in.post("/account/password", data={"csrf_token": token, "current_password": PASSWORD,
                                                      "password": pw})
        assert r.status_code == 400 and (LIST_MESSAGE in r.get_data(as_text=True) or len(pw) < 12), pw
    anon = app.test_client()
    anon.get(f"/password/reset/{services.make_reset_token(user)}")  # the token moves into the session
    reset_url = "/password/reset"
    for pw in picks[10:]:
        token = form_csrf(anon.get(reset_url).get_data(as_text=True))
        assert anon.post(reset_url, data={"csrf_token": token, "password": pw}).status_code == 400
    db.session.expire_all()
    assert passwords.verify_password(db.session.get(User, user.id).password_hash, PASSWORD)


def test_guessable_passwords_rejected_by_zxcvbn():
    for pw in ("aaaaaaaaaaaa", "123456789012", "qwertyuiopasdf", "abcdefghijklmn", "jane.doe@test.example"):
        errors = passwords.policy_errors(pw, ["jane.doe@test.example", "Jane Doe"])
        assert errors and "easy to guess" in errors[0], pw


def test_no_composition_rules():
    assert passwords.policy_errors("violet tractor minutes cobalt") == []  # lower-case words only
    assert passwords.policy_errors(GOOD) == []


# --- argon2id -----------------------------------------------------------------------------------

def _argon2_params(stored: str) -> dict:
    m = re.fullmatch(r"\$(argon2id)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+", stored)
    assert m, stored
    return {"variant": m.group(1), "v": int(m.group(2)), "m": int(m.group(3)), "t": int(m.group(4)),
            "p": int(m.group(5))}


def test_argon2id_parameters_of_a_hash_stored_by_the_activation_route(app, db, make_patient):
    patient = make_patient()
    code = _activation_code(db, patient)
    client = app.test_client()
    r = activate(client, code, patient.birth_date, "argon@test.example", GOOD)
    assert r.status_code == 302
    stored = db.session.execute(select(User.password_hash).where(User.email == "argon@test.example")).scalar_one()
    p = _argon2_params(stored)
    print(f"\nstored hash parameters (testing config): {p}; production: m={Config.ARGON2_MEMORY_COST} KiB, "
          f"t={Config.ARGON2_TIME_COST}")
    assert p["variant"] == "argon2id" and p["v"] == 19
    assert p["m"] >= 19456 and p["t"] >= 2
    assert ProductionConfig.ARGON2_MEMORY_COST >= 19456 and ProductionConfig.ARGON2_TIME_COST >= 2
    assert GOOD not in stored


# --- length, Unicode, truncation ------------------------------------------------------------------

UNICODE = "Ελληνικά 東京タワー пароль-вишня ☂ ñandú"
WORDS = ("marble", "orchid", "canyon", "pepper", "violin", "saddle", "harbor", "glacier", "tundra", "falcon",
         "walnut", "ember", "quartz", "meadow", "lantern", "copper")


def _long(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out = ""
    while len(out) < n:
        out += rng.choice(WORDS) + " "
    return out[:n - 2] + "9z"


def test_length_bounds_and_unicode():
    assert len(_long(128)) == 128 and len(_long(129)) == 129
    assert passwords.policy_errors(UNICODE) == []
    assert passwords.policy_errors(_long(128)) == []
    assert passwords.policy_errors(_long(129)) and "at most 128" in passwords.policy_errors(_long(129))[0]
    assert "at least 12" in passwords.policy_errors("short pw 1")[0]


@pytest.mark.parametrize("length", [73, 100, 128])
def test_long_password_through_the_change_route(app, db, make_user, length):
    """Up to 128 characters are allowed: the change-password page must accept them (not crash)."""
    user = make_user("patient")
    client = app.test_client()
    sign_in_session(client, user)
    pw = _long(length, seed=length)
    token = form_csrf(client.get("/account/password").get_data(as_text=True))
    r = client.post("/account/password", data={"csrf_token": token, "current_password": PASSWORD, "password": pw})
    assert r.status_code == 302, f"{length}-character password: HTTP {r.status_code}"
    assert sign_in_with_password(app.test_client(), user.email, pw).status_code == 302


def test_long_and_unicode_passwords_work_end_to_end(app, db, make_user):
    for pw in (UNICODE, _long(128)):
        user = make_user("patient")
        services.reset_password(user, pw)
        db.session.commit()
        r = sign_in_with_password(app.test_client(), user.email, pw)
        assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify")
    user = make_user("patient")
    with pytest.raises(DomainError):
        services.reset_password(user, _long(129))


def test_no_truncation_a_difference_at_character_90_fails(app, db, make_user):
    pw = _long(100, seed=3)
    other = pw[:89] + ("X" if pw[89] != "X" else "Y") + pw[90:]
    assert len(other) == 100 and other != pw and other[:89] == pw[:89]
    stored = passwords.hash_password(pw)
    assert passwords.verify_password(stored, pw) is True
    assert passwords.verify_password(stored, other) is False
    user = make_user("patient")
    services.reset_password(user, pw)
    db.session.commit()
    assert sign_in_with_password(app.test_client(), user.email, other).status_code == 401
    assert sign_in_with_password(app.test_client(), user.email, pw).status_code == 302


def test_unicode_normalisation_composed_and_decomposed_forms_match(app, db, make_user):
    composed = "café crème brûlée à la plage 1987"
    decomposed = composed.replace("é", "e\u0301").replace("è", "e\u0300").replace("û", "u\u0302")
    assert composed != decomposed
    user = make_user("patient")
    services.reset_password(user, composed)
    db.session.commit()
    assert sign_in_with_password(app.test_client(), user.email, decomposed).status_code == 302

"""SECURITY.md §1.2 (TOTP, replay, oathtool window), §1.3 (throttling and lock), §1.4 (recovery codes),
§1.5 (TOTP secrets encrypted at rest, key rotation)."""

from __future__ import annotations

import base64
import math
import re
import shutil
import subprocess
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from portal.accounts import mfa
from portal.accounts.models import RecoveryCode, User
from portal.core.audit import AuditEvent
from tests.conftest import PASSWORD, sign_in_session, unavailable
from tests.security.helpers import dump_text, form_csrf, sign_in_with_password

# A fixed instant in the middle of a 30 s step, so T + k·30 s is also mid-step.
T = 1_767_225_615
assert T % 30 == 15
OFFSETS = (-90, -60, -30, 0, 30, 60, 90)


def oathtool(secret: str, epoch: int) -> str:
    if shutil.which("oathtool") is None:
        unavailable("oathtool", "not installed (Debian package oathtool)")
    out = subprocess.run(["oathtool", "--totp", "-b", secret, "-N", f"@{epoch}"], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def _fresh(db, user):
    db.session.execute(text("UPDATE users SET totp_last_step = NULL WHERE id = :id"), {"id": user.id})
    db.session.expire(user)


def _at(epoch):
    return time_machine.travel(datetime.fromtimestamp(epoch, timezone.utc), tick=False)


# --- the acceptance window, with codes from an independent implementation -------------------

def test_oathtool_window_through_verify_totp(db, make_user):
    user = make_user("patient")
    accepted = {}
    with _at(T):
        for off in OFFSETS:
            _fresh(db, user)
            accepted[off] = mfa.verify_totp(user, oathtool(user._totp_secret, T + off))
    print(f"\noathtool offsets accepted by verify_totp: {[o for o, ok in accepted.items() if ok]}")
    assert {o for o, ok in accepted.items() if ok} == {0, -30}


def test_oathtool_window_through_the_signin_route(app, db, make_user, token_for):
    accepted = []
    with _at(T):
        for off in OFFSETS:
            user = make_user("patient")
            client = app.test_client()
            sign_in_session(client, user, mfa_done=False)
            r = client.post("/signin/verify", data={"csrf_token": token_for(client),
                                                    "code": oathtool(user._totp_secret, T + off)})
            assert r.status_code in (302, 401), r.status_code
            if r.status_code == 302:
                assert r.headers["Location"].endswith("/home")
                accepted.append(off)
    assert sorted(accepted) == [-30, 0]


def test_totp_parameters_match_authenticator_apps(db, make_user):
    secret = mfa.new_secret()
    assert len(base64.b32decode(secret)) * 8 == 160
    q = parse_qs(urlsplit(mfa.provisioning_uri(secret, "a@b.example", "Clinic")).query)
    assert q.get("algorithm", ["SHA1"]) == ["SHA1"] and q.get("digits", ["6"]) == ["6"]
    assert q.get("period", ["30"]) == ["30"]
    assert mfa.STEP_SECONDS == 30 and mfa.DIGITS == 6


# --- replay ----------------------------------------------------------------------------------

def test_same_code_twice_second_rejected(db, make_user):
    user = make_user("patient")
    code = oathtool(user._totp_secret, T)
    with _at(T):
        assert mfa.verify_totp(user, code) is True
        assert mfa.verify_totp(user, code) is False
    # ... even when re-read from the database (the last step is stored, not cached)
    db.session.expire_all()
    assert mfa.verify_totp(db.session.get(User, user.id), code, now=T) is False


def test_previous_step_accepted_once_and_never_after_a_newer_one(db, make_user):
    user = make_user("patient")
    prev, cur = oathtool(user._totp_secret, T - 30), oathtool(user._totp_secret, T)
    assert mfa.verify_totp(user, prev, now=T) is True
    assert mfa.verify_totp(user, prev, now=T) is False
    assert mfa.verify_totp(user, cur, now=T) is True
    other = make_user("patient")
    assert mfa.verify_totp(other, oathtool(other._totp_secret, T), now=T) is True
    assert mfa.verify_totp(other, oathtool(other._totp_secret, T - 30), now=T) is False  # older than last


def test_replayed_code_is_rejected_at_the_route(app, db, make_user, token_for):
    user = make_user("patient")
    with _at(T):
        code = oathtool(user._totp_secret, T)
        first = app.test_client()
        sign_in_session(first, user, mfa_done=False)
        assert first.post("/signin/verify", data={"csrf_token": token_for(first), "code": code}).status_code == 302
        second = app.test_client()  # the attacker who watched the code being typed
        sign_in_session(second, user, mfa_done=False)
        r = second.post("/signin/verify", data={"csrf_token": token_for(second), "code": code})
        assert r.status_code == 401
        assert second.get("/record").status_code == 302


# --- brute force -----------------------------------------------------------------------------

def _wrong_code(secret: str, epoch: int) -> str:
    valid = {oathtool(secret, epoch), oathtool(secret, epoch - 30)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def test_ten_wrong_codes_lock_the_account_and_the_eleventh_gets_429(app, db, make_user, token_for):
    user = make_user("patient")
    cfg = app.config
    with _at(T):
        client = app.test_client()
        sign_in_session(client, user, mfa_done=False)
        wrong = _wrong_code(user._totp_secret, T)
        statuses = [client.post("/signin/verify", data={"csrf_token": token_for(client), "code": wrong}).status_code
                    for _ in range(10)]
        assert statuses == [401] * 10
        db.session.expire_all()
        locked = db.session.get(User, user.id)
        from portal.accounts.lockout import failure_count, lock_status

        assert failure_count(locked) == 10 and locked.id in lock_status([locked])
        # the 11th try, even with the right code, is refused
        r = client.post("/signin/verify", data={"csrf_token": token_for(client),
                                                "code": oathtool(user._totp_secret, T)})
        body = r.get_data(as_text=True)
        assert r.status_code == 429 and "Try again in" in body
        minutes = re.search(r"Try again in (\d+) minute", body).group(1)
        assert client.get("/record").status_code == 302
        # the lock also holds at the password step, from another browser
        r2 = sign_in_with_password(app.test_client(), user.email, PASSWORD)
        assert r2.status_code == 429 and "Try again in" in r2.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_id == user.id, AuditEvent.action == "auth.signin.locked")).scalar_one() == 1
    per_min = cfg["LOGIN_FAILURES_PER_WINDOW"] / (cfg["LOGIN_FAILURE_WINDOW_SECONDS"] / 60)
    print(f"\nattempts allowed per account: {cfg['LOGIN_FAILURES_PER_WINDOW']} per "
          f"{cfg['LOGIN_FAILURE_WINDOW_SECONDS'] // 60} min ({per_min:.2f}/min); per IP: "
          f"{cfg['IP_FAILURES_PER_WINDOW']} per {cfg['LOGIN_FAILURE_WINDOW_SECONDS'] // 60} min; "
          f"11th try: 429 'Try again in {minutes} minutes'")
    assert cfg["LOGIN_FAILURES_PER_WINDOW"] <= 10 < 100


def test_ten_wrong_passwords_lock_and_the_eleventh_gets_429(app, db, make_user):
    user = make_user("patient")
    client = app.test_client()
    statuses = [sign_in_with_password(client, user.email, "not the password at all").status_code for _ in range(10)]
    assert statuses == [401] * 10
    r = sign_in_with_password(client, user.email, PASSWORD)
    assert r.status_code == 429 and "Try again in" in r.get_data(as_text=True)


def test_per_ip_throttle_spans_accounts(app, db, make_user):
    limit = app.config["IP_FAILURES_PER_WINDOW"]
    attacker = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    client = app.test_client()
    for i in range(limit):
        r = sign_in_with_password(client, f"spray{i}@test.example", "Winter2025!Winter", **attacker)
        assert r.status_code == 401, (i, r.status_code)
    user = make_user("patient")
    r = sign_in_with_password(client, user.email, PASSWORD, **attacker)
    assert r.status_code == 429
    other_ip = app.test_client()
    assert sign_in_with_password(other_ip, user.email, PASSWORD,
                                 environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 302


# --- recovery codes --------------------------------------------------------------------------

RECOVERY_FORMAT = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")


def test_recovery_codes_ten_strong_hashed(db, make_user):
    user = make_user("patient")
    seen_symbols, sets = set(), []
    for _ in range(5):
        codes = mfa.new_recovery_codes(user)
        sets.append(codes)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(RECOVERY_FORMAT.match(c) for c in codes)
        seen_symbols |= set("".join(codes).replace("-", ""))
    raw_len = len(sets[0][0].replace("-", ""))
    bits = raw_len * math.log2(len(mfa._RECOVERY_ALPHABET))
    observed_bits = raw_len * math.log2(len(seen_symbols))
    print(f"\nrecovery code: {raw_len} symbols of {len(mfa._RECOVERY_ALPHABET)} = {bits:.0f} bits "
          f"({len(seen_symbols)} symbols seen in 50 codes)")
    assert bits >= 50 and observed_bits >= 50
    stored = db.session.execute(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).scalars().all()
    assert len(stored) == 50
    dump = dump_text(db)
    for code in sets[-1]:
        assert code not in dump and code.replace("-", "") not in dump
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    assert mfa.unused_recovery_count(user) == 10  # only the newest set is live


def test_recovery_code_single_use_and_regeneration_invalidates(db, make_user):
    user = make_user("patient")
    old = mfa.new_recovery_codes(user)
    assert mfa.use_recovery_code(user, old[0]) is True
    assert mfa.use_recovery_code(user, old[0]) is False
    assert mfa.use_recovery_code(user, old[1].lower().replace("-", " ")) is True  # typing slack, still once
    new = mfa.new_recovery_codes(user)
    assert not any(mfa.use_recovery_code(user, c) for c in old[2:])
    assert mfa.use_recovery_code(user, new[0]) is True


def test_recovery_codes_through_the_routes(app, db, make_user, token_for):
    user = make_user("patient")
    codes = mfa.new_recovery_codes(user)
    db.session.commit()
    first = app.test_client()
    sign_in_session(first, user, mfa_done=False)
    r = first.post("/signin/recovery", data={"csrf_token": token_for(first), "code": codes[0]})
    assert r.status_code == 302 and r.headers["Location"].endswith("/home")
    again = app.test_client()
    sign_in_session(again, user, mfa_done=False)
    r = again.post("/signin/recovery", data={"csrf_token": token_for(again), "code": codes[0]})
    assert r.status_code == 401
    # regenerate through the account page (current password required)
    page = first.get("/account/recovery-codes").get_data(as_text=True)
    r = first.post("/account/recovery-codes", data={"csrf_token": form_csrf(page), "current_password": PASSWORD})
    assert r.status_code == 200
    fresh = re.findall(r"<code>([A-Z2-9-]{14})</code>", r.get_data(as_text=True))
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    third = app.test_client()
    sign_in_session(third, user, mfa_done=False)
    assert third.post("/signin/recovery", data={"csrf_token": token_for(third), "code": codes[1]}).status_code == 401
    assert third.post("/signin/recovery", data={"csrf_token": token_for(third), "code": fresh[0]}).status_code == 302


# --- secrets at rest -------------------------------------------------------------------------

def _stored_secret(db, user) -> str:
    return db.session.execute(text("SELECT totp_secret_enc FROM users WHERE id = :id"), {"id": user.id}).scalar_one()


def test_totp_secret_is_encrypted_at_rest(app, db, make_user):
    user = make_user("patient")
    stored = _stored_secret(db, user)
    assert stored != user._totp_secret and user._totp_secret not in stored
    assert user._totp_secret.lower() not in stored.lower()
    keys = [k.strip() for k in app.config["FIELD_ENCRYPTION_KEYS"].split(",") if k.strip()]
    assert Fernet(keys[0].encode()).decrypt(stored.encode()).decode() == user._totp_secret
    assert user._totp_secret not in dump_text(db)


@pytest.fixture()
def rotated_keys(app, monkeypatch):
    """Prepend a new Fernet key (newest first), as an operator would; restore afterwards."""
    old = app.config["FIELD_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_KEYS", f"{new_key},{old}")
    cached = app.extensions.pop("portal_fernet", None)
    yield new_key, old
    app.extensions.pop("portal_fernet", None)
    if cached is not None:
        app.extensions["portal_fernet"] = cached


def test_key_rotation_with_flask_keys_rotate(app, db, make_user, rotated_keys):
    new_key, old = rotated_keys
    users = [make_user("patient"), make_user("support")]
    db.session.commit()
    before = {u.id: _stored_secret(db, u) for u in users}
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert re.search(r"Re-encrypted \d+ secrets", result.output)
    db.session.expire_all()
    for u in users:
        stored = _stored_secret(db, u)
        assert stored != before[u.id]
        assert Fernet(new_key.encode()).decrypt(stored.encode()).decode() == u._totp_secret  # newest key alone
        fresh = db.session.get(User, u.id)
        assert mfa.verify_totp(fresh, oathtool(u._totp_secret, T), now=T) is True
    # the old key can now be retired
    app.config["FIELD_ENCRYPTION_KEYS"] = new_key
    app.extensions.pop("portal_fernet", None)
    fresh = db.session.get(User, users[0].id)
    assert mfa.verify_totp(fresh, oathtool(users[0]._totp_secret, T + 30), now=T + 30) is True

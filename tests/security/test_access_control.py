"""SECURITY.md §3: horizontal (§13) and vertical (§14) access control, staff views audited (§15),
and §1.2: a password-only (pre-MFA) session reaches no patient data."""

from __future__ import annotations



from sqlalchemy import func, select

from portal.accounts.models import User, UserSession
from portal.patients.models import AccessGrant
from portal.core.audit import AuditEvent
from portal.core.access import STAFF_FUNCTIONS
from portal.core.db import utcnow
from tests.conftest import sign_in_session
from tests.security.helpers import DUMMY_ID, ROLES, STAFF_ROLES, build, methods, routes

ID_ARG = "public_id"


def _denied_rows(db, actor) -> int:
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == actor.id,
        AuditEvent.outcome == "denied")).scalar_one()


def _request(client, method, url, token):
    if method == "GET":
        return client.get(url)
    return client.post(url, data={"csrf_token": token, "method": "photo_id_in_person",
                                  "birth_date_confirmed": "y", "role": "admin"})


class World:
    """A victim patient (with a live session), a victim staff member, and one attacker per role."""

    def __init__(self, app, db, make_user, login_as, token_for):
        self.victim = make_user("patient")
        self.victim_client = app.test_client()
        self.victim_session = sign_in_session(self.victim_client, self.victim)
        self.victim_staff = make_user("support")
        self.victim_staff_session = sign_in_session(app.test_client(), self.victim_staff)
        from portal.accounts import lockout
        from portal.core.audit import EventTag

        for u in (self.victim, self.victim_staff):
            for _ in range(10):  # lock both accounts the real way
                lockout.record_failure(lockout.account_key(u.email), "192.0.2.1", u, EventTag.SIGNIN_FAILURE, "setup")
        db.session.commit()
        self.attackers = {}
        for role in ROLES:  # the "patient" attacker is a second patient
            client, user = login_as(role)
            self.attackers[role] = (client, user, token_for(client))
        self.patient_data = [self.victim._patient.mrn, self.victim.email, self.victim._patient.family_name]
        from portal.notifications.models import InboundText

        self.victim_text = InboundText(message_sid=f"SMvictim{self.victim.id}", from_phone="+13125550100",
                                       body="victim text", patient_id=self.victim._patient.id)
        db.session.add(self.victim_text)
        db.session.commit()

    def real_id(self, endpoint):
        if endpoint.startswith("support."):
            return self.victim._patient.public_id
        if endpoint.startswith("admin."):
            return self.victim_staff.public_id
        if endpoint == "account.revoke_session":
            return self.victim_session.public_id
        if endpoint.startswith("notifications."):  # a text the victim sent, waiting in the support queue
            return self.victim_text.public_id
        if endpoint.startswith(("appointments.", "schedule.")):
            from tests.scheduling.world import victim_object_id

            return victim_object_id(self.victim, endpoint)
        if endpoint.startswith("account.passkey"):  # one of the victim's passkeys
            from tests.passkeys.world import victim_passkey

            return victim_passkey(self.victim).public_id
        if endpoint.startswith(("messaging.", "inbox.")):
            from tests.messaging.world import victim_object_id as msg_object_id

            return msg_object_id(self.victim, endpoint)
        if endpoint.startswith(("records.", "records_staff.")):
            from tests.records.world import victim_object_id as records_object_id

            return records_object_id(self.victim, endpoint)
        if endpoint.startswith(("billing.", "billing_staff.")):
            from tests.billing.world import victim_object_id as billing_object_id

            return billing_object_id(self.victim, endpoint)
        raise AssertionError(f"add a real id for {endpoint}")

    @staticmethod
    def refused_roles(access):
        kind, function = access
        if kind == "staff":
            return ["patient"] + [r for r in STAFF_ROLES if r not in STAFF_FUNCTIONS[function]]
        return list(ROLES)  # an object owned by the victim: nobody else may touch it

    def victim_state(self, db):
        db.session.expire_all()
        v, s = db.session.get(User, self.victim.id), db.session.get(User, self.victim_staff.id)
        from portal.accounts.lockout import lock_status

        locks = lock_status([v, s])
        return (v.id in locks, v.mfa_enabled, v.disabled_at, s.role, s.disabled_at,
                s.id in locks, s.mfa_enabled,
                db.session.get(UserSession, self.victim_session.id).revoked_at,
                db.session.get(UserSession, self.victim_staff_session.id).revoked_at,
                db.session.execute(select(func.count()).select_from(AccessGrant)).scalar_one())


def _id_routes(app):
    return [(r, a) for r, a in routes(app) if ID_ARG in r.arguments]


def test_horizontal_probes_never_leak(app, db, make_user, login_as, token_for):
    w = World(app, db, make_user, login_as, token_for)
    state_before = w.victim_state(db)
    probes, leaks = 0, []
    for rule, access in _id_routes(app):
        for role in w.refused_roles(access):
            client, attacker, token = w.attackers[role]
            for method in sorted(methods(rule)):
                real = _request(client, method, build(app, rule.endpoint, public_id=w.real_id(rule.endpoint)), token)
                dummy = _request(client, method, build(app, rule.endpoint, public_id=DUMMY_ID), token)
                probes += 2
                body = real.get_data(as_text=True)
                if real.status_code not in (403, 404):
                    leaks.append((rule.endpoint, role, method, "status", real.status_code))
                if real.status_code != dummy.status_code:
                    leaks.append((rule.endpoint, role, method, "existence oracle", real.status_code, dummy.status_code))
                if any(s in body for s in w.patient_data):
                    leaks.append((rule.endpoint, role, method, "patient data in body"))
                if access[0] != "staff" and role == "patient" and real.status_code != 404:
                    leaks.append((rule.endpoint, role, method, "patient-to-patient not 404", real.status_code))
    if w.victim_state(db) != state_before:
        leaks.append(("victim state changed", state_before, w.victim_state(db)))
    print(f"\nhorizontal probes: {probes}, leaks: {len(leaks)}")
    assert probes >= 60
    assert not leaks, leaks


def test_every_probe_leaves_a_denied_audit_row(app, db, make_user, login_as, token_for):
    """§27: each IDOR probe leaves a 'denied' row (patient-to-patient probes included)."""
    w = World(app, db, make_user, login_as, token_for)
    silent = []
    for rule, access in _id_routes(app):
        for role in w.refused_roles(access):
            client, attacker, token = w.attackers[role]
            for method in sorted(methods(rule)):
                for public_id in (w.real_id(rule.endpoint), DUMMY_ID):
                    before = _denied_rows(db, attacker)
                    _request(client, method, build(app, rule.endpoint, public_id=public_id), token)
                    if _denied_rows(db, attacker) != before + 1:
                        silent.append((rule.endpoint, role, "real" if public_id != DUMMY_ID else "dummy"))
    assert not silent, f"probes refused without an access.denied audit row: {silent}"


def test_patient_to_patient_probe_is_404_and_audited(app, db, make_user, login_as, token_for):
    w = World(app, db, make_user, login_as, token_for)
    client, intruder, token = w.attackers["patient"]
    before = _denied_rows(db, intruder)
    r = client.post(f"/account/sessions/{w.victim_session.public_id}/revoke", data={"csrf_token": token})
    assert r.status_code == 404
    assert w.victim_client.get("/record").status_code == 200  # the victim's session survived
    assert _denied_rows(db, intruder) == before + 1, "patient-to-patient probe left no access.denied row"


def test_admin_staff_actions_refuse_patient_accounts(app, db, make_user, login_as, token_for):
    """Object-type confusion: staff-admin routes must not act on a patient's account."""
    victim = make_user("patient")
    client, admin = login_as("admin")
    token = token_for(client)
    silent = []
    for ep in ("admin.staff_role", "admin.staff_disable", "admin.staff_enable", "admin.staff_unlock",
               "admin.staff_mfa_reset"):
        before = _denied_rows(db, admin)
        r = _request(client, "POST", build(app, ep, public_id=victim.public_id), token)
        assert r.status_code == 404, (ep, r.status_code)
        if _denied_rows(db, admin) != before + 1:
            silent.append(ep)
    db.session.expire_all()
    v = db.session.get(User, victim.id)
    assert v.role == "patient" and v.disabled_at is None and v.mfa_enabled
    assert not silent, f"refused without an access.denied audit row (§27): {silent}"


def test_a_user_without_a_live_grant_gets_404_not_someone_elses_record(app, db, make_user, login_as):
    """Stand-in for 'a proxy without that scope': a revoked grant reaches no record."""
    client, user = login_as("patient")
    grant = db.session.execute(select(AccessGrant).where(AccessGrant.user_id == user.id)).scalar_one()
    grant.revoked_at = utcnow()
    db.session.commit()
    other = make_user("patient")
    before = _denied_rows(db, user)
    for path in ("/record", "/home"):
        r = client.get(path)
        assert r.status_code == 404, path
        body = r.get_data(as_text=True)
        assert user._patient.mrn not in body and other._patient.mrn not in body
    assert _denied_rows(db, user) == before + 2


# --- vertical ----------------------------------------------------------------------------------

def _staff_routes(app):
    return [(r, a) for r, a in routes(app) if a[0] == "staff"]


def test_patient_reaches_no_staff_page(app, db, make_user, login_as, token_for):
    victim = make_user("patient")
    client, patient = login_as("patient")
    token = token_for(client)
    tried = 0
    for rule, access in _staff_routes(app):
        values = {ID_ARG: victim._patient.public_id} if ID_ARG in rule.arguments else {}
        for method in sorted(methods(rule)):
            before = _denied_rows(db, patient)
            r = _request(client, method, build(app, rule.endpoint, **values), token)
            tried += 1
            assert r.status_code == 403, (rule.endpoint, method, r.status_code)
            assert victim._patient.mrn not in r.get_data(as_text=True)
            assert _denied_rows(db, patient) == before + 1
    r = client.get("/staff")
    assert r.status_code == 302 and r.headers["Location"].endswith("/home")
    print(f"\npatient × staff routes: {tried} requests, all 403")


def test_each_staff_role_reaches_only_its_functions(app, db, make_user, staff, token_for):
    matrix = {}
    for rule, (kind, function) in _staff_routes(app):
        for role in STAFF_ROLES:
            client, _user = staff[role]
            values = {ID_ARG: DUMMY_ID} if ID_ARG in rule.arguments else {}
            for method in sorted(methods(rule)):
                r = _request(client, method, build(app, rule.endpoint, **values), token_for(client))
                allowed = role in STAFF_FUNCTIONS[function]
                matrix[(rule.endpoint, method, role)] = r.status_code
                if allowed:
                    assert r.status_code != 403, (rule.endpoint, method, role)
                    if method == "GET" and not values:
                        assert r.status_code == 200, (rule.endpoint, role, r.status_code)
                else:
                    assert r.status_code == 403, (rule.endpoint, method, role, r.status_code)
    print(f"\nstaff role × staff route checks: {len(matrix)}")


def test_staff_views_of_a_patient_are_audited(app, db, make_user, staff):
    victim = make_user("patient")
    for role in STAFF_ROLES:
        client, user = staff[role]
        r = client.get(f"/support/patients/{victim._patient.public_id}")
        assert r.status_code == 200 and victim._patient.mrn in r.get_data(as_text=True)
        row = db.session.execute(select(AuditEvent).where(
            AuditEvent.actor_id == user.id, AuditEvent.action == "patient.view",
            AuditEvent.patient_id == victim._patient.id, AuditEvent.category == "demographics")).scalars().one()
        assert row.actor_role == role and row.category == "demographics"


# --- pre-MFA -------------------------------------------------------------------------------------

def test_password_only_session_reaches_no_patient_data(app, db, make_user):
    victim = make_user("patient")
    checked = 0
    for role in ("patient", "support", "admin", "clinician", "billing"):
        user = make_user(role, patient=victim._patient) if role == "patient" else make_user(role)
        if role == "patient":
            victim_user = user
        client = app.test_client()
        sign_in_session(client, user, mfa_done=False)
        for rule, (kind, _f) in routes(app):
            if "GET" not in methods(rule) or kind in ("public", "pending"):
                continue
            values = {}
            if ID_ARG in rule.arguments:
                values = {ID_ARG: victim._patient.public_id}
            elif rule.arguments:
                continue
            r = client.get(build(app, rule.endpoint, **values))
            checked += 1
            assert r.status_code != 200, (role, rule.rule)
            assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify"), (role, rule.rule)
            assert victim._patient.mrn not in r.get_data(as_text=True)
    assert victim_user is not None
    print(f"\npre-MFA GETs: {checked}, answered 200: 0")

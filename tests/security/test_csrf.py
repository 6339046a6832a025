"""SECURITY.md §5.23: a CSRF token on every state-changing request, enumerated from the URL map."""

from __future__ import annotations

import pyotp

from portal.core.access import STAFF_FUNCTIONS
from tests.conftest import PASSWORD, sign_in_session
from tests.security.helpers import DUMMY_ID, DUMMY_TOKEN, build, methods, routes, snapshot, table_names

CSRF_MESSAGE = "The form was open for too long"

# Plausible form data per endpoint, so that "with the token" reaches the view's own logic.
FORM_DATA = {
    "main.set_language": {"lang": "es", "next": "/help"},
    "auth.signin": {"email": "nobody@test.example", "password": "wrong password here"},
    "auth.activate": {"code": "AAAA-BBBB-CCCC", "birth_date": "1980-01-02", "email": "new@test.example",
                      "password": "correct horse battery staple 42"},
    "auth.forgot_password": {"email": "nobody@test.example"},
    "auth.reset_password": {"password": "a brand new passphrase for 2026"},
    "account.change_password": {"current_password": PASSWORD, "password": "a brand new passphrase for 2026"},
    "account.recovery_codes": {"current_password": PASSWORD},
    "account.change_email": {"current_password": PASSWORD, "email": "moved@test.example"},
    "account.change_authenticator": {"current_password": PASSWORD, "code": "000000"},
    "support.mfa_reset": {"method": "photo_id_in_person", "birth_date_confirmed": "y"},
    "admin.staff_new": {"email": "newstaff@test.example", "display_name": "New Staff", "role": "billing"},
    "admin.staff_role": {"role": "billing"},
    "admin.staff_mfa_reset": {"method": "photo_id_in_person"},
}


class Scenario:
    """Everything one POST route needs: who calls it, with which URL and data."""

    def __init__(self, app, db, make_user, rule, access):
        from portal.accounts import services

        self.rule = rule
        kind, function = access
        client = app.test_client()
        patient = make_user("patient")
        victim_staff = make_user("support")
        if kind == "pending":
            enrol = rule.endpoint == "auth.mfa_setup"
            self.user = make_user("patient", mfa=not enrol)
            sign_in_session(client, self.user, mfa_done=False)
        elif kind == "staff":
            role = sorted(STAFF_FUNCTIONS[function])[0]
            self.user = make_user(role)
            sign_in_session(client, self.user)
        elif kind in ("signed_in", "patient") or rule.endpoint == "auth.signout":
            self.user = patient
            sign_in_session(client, self.user)
        else:
            self.user = None  # anonymous visitor of a public form
        self.client = client
        values = {}
        for arg in rule.arguments:
            if arg == "token":
                values[arg] = services.make_reset_token(patient) if rule.endpoint == "auth.reset_password" \
                    else DUMMY_TOKEN
            elif arg == "public_id":
                if rule.endpoint.startswith("support."):
                    values[arg] = patient._patient.public_id
                elif rule.endpoint.startswith("admin."):
                    values[arg] = victim_staff.public_id
                elif rule.endpoint == "account.revoke_session":
                    values[arg] = sign_in_session(app.test_client(), self.user).public_id
                else:
                    values[arg] = DUMMY_ID
            else:
                values[arg] = DUMMY_ID
        self.url = build(app, rule.endpoint, **values)
        self.data = dict(FORM_DATA.get(rule.endpoint, {}))
        if rule.endpoint in ("auth.signin_mfa", "auth.mfa_setup"):
            self.data["code"] = "000000"
        if rule.endpoint == "auth.signin_recovery":
            self.data["code"] = "AAAA-BBBB-CCCC"


# Webhooks: CSRF-exempt because the sender signs every request instead (each module tests its signature).
SIGNED_WEBHOOKS = {"notifications.sms_inbound", "billing.stripe_webhook"}
# Token-free but Origin-checked (a cross-site POST answers 400): the header's language form, so that anonymous
# pages need no session (PERFORMANCE.md G3). Tested in tests/ops/test_anonymous_pages.py.
ORIGIN_CHECKED = {"main.set_language"}


def _post_routes(app):
    return [(r, a) for r, a in routes(app)
            if "POST" in methods(r) and r.endpoint not in SIGNED_WEBHOOKS | ORIGIN_CHECKED]


def test_every_post_route_without_a_token_gets_400_and_writes_nothing(app, db, make_user):
    tables = table_names(db)  # audit_events included: a refused request leaves no trace either
    refused = []
    for rule, access in _post_routes(app):
        s = Scenario(app, db, make_user, rule, access)
        before = snapshot(db, tables)
        r = s.client.post(s.url, data=s.data)
        body = r.get_data(as_text=True)
        assert r.status_code == 400, f"POST {s.url} without CSRF token answered {r.status_code}"
        assert CSRF_MESSAGE in body, f"POST {s.url}: 400 but not for CSRF"
        after = snapshot(db, tables)
        assert after == before, f"POST {s.url} without a token wrote: " \
            f"{[t for t in tables if before[t] != after[t]]}"
        refused.append(rule.endpoint)
    print(f"\nPOST routes refused without CSRF token: {len(refused)}/{len(_post_routes(app))}")
    assert len(refused) == len(_post_routes(app)) >= 20


def test_every_post_route_with_the_token_passes_the_csrf_check(app, db, make_user, token_for):
    for rule, access in _post_routes(app):
        s = Scenario(app, db, make_user, rule, access)
        token = token_for(s.client)
        if rule.endpoint == "account.keepalive":
            r = s.client.post(s.url, headers={"X-CSRFToken": token})
        else:
            r = s.client.post(s.url, data={**s.data, "csrf_token": token})
        body = r.get_data(as_text=True)
        assert CSRF_MESSAGE not in body, f"POST {s.url} with a valid token was refused for CSRF"
        assert r.status_code < 500, (s.url, r.status_code)


def test_a_token_from_another_session_is_refused(app, db, login_as, token_for):
    victim, user = login_as("patient")
    attacker, _ = login_as("patient")
    stolen = token_for(attacker)
    r = victim.post("/account/sessions/revoke-all", data={"csrf_token": stolen})
    assert r.status_code == 400 and CSRF_MESSAGE in r.get_data(as_text=True)
    assert victim.get("/record").status_code == 200  # still signed in: nothing happened


def test_keepalive_needs_the_header_token(app, db, login_as, token_for):
    client, _ = login_as("patient")
    assert client.post("/account/keepalive").status_code == 400
    r = client.post("/account/keepalive", headers={"X-CSRFToken": token_for(client)})
    assert r.status_code == 200 and r.get_json()["ok"] is True


def test_only_the_signed_webhooks_are_csrf_exempt(app):
    """Webhooks are the only exempt routes (signature-verified)."""
    csrf = app.extensions["csrf"]
    exempt = {f"{app.view_functions[e].__module__}.{app.view_functions[e].__name__}"
              for e in SIGNED_WEBHOOKS | ORIGIN_CHECKED}
    assert csrf._exempt_views == exempt and not csrf._exempt_blueprints
    assert app.config["WTF_CSRF_ENABLED"] is True


def test_signin_with_token_really_signs_in(app, db, make_user, token_for):
    """A sanity sample: the token makes the whole flow work, so the 400s above are about the token."""
    user = make_user("patient")
    client = app.test_client()
    r = client.post("/signin", data={"csrf_token": token_for(client), "email": user.email, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/signin/verify")
    r = client.post("/signin/verify", data={"csrf_token": token_for(client),
                                           "code": pyotp.TOTP(user._totp_secret).now()})
    assert r.status_code == 302 and r.headers["Location"].endswith("/home")

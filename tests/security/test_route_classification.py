"""SECURITY.md §3.12 (every route classified, fail closed) and §5.23 (GET never changes state)."""

from __future__ import annotations

import logging

import pytest

from portal.core.access import STAFF_FUNCTIONS
from tests.conftest import sign_in_session
from tests.security.helpers import ROLES, build, methods, routes, snapshot, table_names

# Expected class per endpoint prefix (blueprint). A new blueprint must be added here on purpose.
EXPECTED_BY_PREFIX = {
    "main": {("public", None), ("patient", None), ("signed_in", None)},
    "auth": {("public", None), ("pending", None)},
    "account": {("signed_in", None), ("public", None)},  # public: only the emailed confirmation link
    "records": {("patient", None)},
    "records_staff": {("staff", f) for f in ("results_review", "clinical_record", "records_import")},
    "support": {("staff", f) for f in ("patient_search", "patient_demographics", "activation",
                                       "account_unlock", "mfa_reset", "account_support")},
    "admin": {("staff", "staff_admin")},
    "audit": {("staff", "audit_report")},
    "notifications": {("patient", None), ("staff", "notices_view"), ("public", None)},  # public: the SMS webhook
    # public: only the signed one-click links from appointment reminders (below)
    "appointments": {("patient", None), ("public", None)},
    "schedule": {("staff", f) for f in ("schedule", "scheduling_setup", "feedback_view")},
    "messaging": {("patient", None)},
    "inbox": {("staff", "inbox"), ("staff", "pools_admin")},
    "billing": {("patient", None), ("public", None)},  # public: only Stripe's signed webhook (below)
    "billing_staff": {("staff", f) for f in ("billing_ledger", "billing_statements", "billing_refunds",
                                              "billing_reports")},
}

# Routes anyone on the internet may call. Adding one is a security review decision.
PUBLIC_ALLOWLIST = {
    "main.index", "main.help", "main.set_language",
    "auth.signin", "auth.signout", "auth.activate", "auth.activate_account", "auth.verify_email",
    "auth.forgot_password", "auth.reset_link", "auth.reset_password", "account.confirm_email_change",
    # Twilio's inbound-text webhook: CSRF-exempt, every request must carry a valid X-Twilio-Signature
    # (403 and nothing written otherwise; tests/notifications/test_inbound.py).
    "notifications.sms_inbound",
    # Signed one-click links in appointment reminders (SECURITY.md §39): /r/<token> moves the token into
    # the session and redirects; /respond shows no PHI and acts only on a POST with CSRF, once per link.
    "appointments.link", "appointments.respond",
    # "Sign in with a passkey" (SECURITY.md §52): a JSON POST (CSRF header) that issues a single-use
    # challenge bound to the browser session, and the form POST of the signed answer.
    "auth.passkey_signin_options", "auth.passkey_signin",
    # Stripe's webhook: CSRF-exempt, every request must carry a valid Stripe-Signature over the raw body with
    # |now - t| <= 300 s (400 and nothing written otherwise; tests/billing/test_webhooks_refunds.py).
    "billing.stripe_webhook",
}
PENDING_ALLOWLIST = {"auth.signin_mfa", "auth.signin_recovery", "auth.mfa_setup",
                     "auth.passkey_mfa_options", "auth.passkey_mfa", "auth.passkey_setup_options",
                     "auth.passkey_setup"}


def test_every_endpoint_is_classified(app):
    unclassified = sorted(rule.endpoint for rule, access in routes(app) if access is None)
    assert not unclassified, f"unclassified endpoints (they answer 403 to everyone): {unclassified}"
    print(f"\n{len(routes(app))} rules, all classified")


def test_classes_match_the_table_per_prefix(app):
    wrong = []
    for rule, access in routes(app):
        prefix = rule.endpoint.split(".", 1)[0]
        assert prefix in EXPECTED_BY_PREFIX, f"new blueprint {prefix!r}: add it to EXPECTED_BY_PREFIX"
        if tuple(access) not in EXPECTED_BY_PREFIX[prefix]:
            wrong.append((rule.endpoint, access))
    assert not wrong, f"endpoints classified outside their blueprint's expected classes: {wrong}"


def test_public_and_pending_routes_are_exactly_the_reviewed_ones(app):
    public = {r.endpoint for r, a in routes(app) if a[0] == "public"}
    pending = {r.endpoint for r, a in routes(app) if a[0] == "pending"}
    assert public == PUBLIC_ALLOWLIST, \
        f"public routes changed: +{public - PUBLIC_ALLOWLIST} -{PUBLIC_ALLOWLIST - public}"
    assert pending == PENDING_ALLOWLIST


def test_staff_functions_name_only_staff_roles_and_admin_owns_admin_pages():
    for function, roles in STAFF_FUNCTIONS.items():
        assert roles and roles <= {"support", "admin", "clinician", "billing"}, function
    assert STAFF_FUNCTIONS["staff_admin"] == {"admin"}
    assert STAFF_FUNCTIONS["audit_report"] == {"admin"}


def test_an_unclassified_endpoint_fails_closed(app, client, monkeypatch, caplog):
    view = app.view_functions["main.help"]
    monkeypatch.delattr(view, "_access")
    with caplog.at_level(logging.ERROR):
        r = client.get("/help")
    assert r.status_code == 403
    assert "unclassified endpoint main.help refused" in caplog.text


# --- GET never changes state -------------------------------------------------------------------

# Columns a GET may legitimately touch: the session's last-seen time (idle timeout bookkeeping) and
# the pending enrolment secret that /signin/setup must create to draw the QR code for a pending user.
ALLOWED_GET_WRITES = {"user_sessions.last_seen_at", "user_sessions.totp_pending_enc", "user_sessions.totp_pending_at"}


def _get_routes_without_arguments(app):
    return [r for r, _a in routes(app) if "GET" in methods(r) and not r.arguments]


@pytest.mark.parametrize("who", ["anonymous", "pending_mfa", "pending_enrol", *ROLES])
def test_get_never_changes_state(app, db, make_user, who):
    client = app.test_client()
    if who in ROLES:
        user = make_user(who)
        sign_in_session(client, user)
    elif who == "pending_mfa":
        sign_in_session(client, make_user("patient"), mfa_done=False)
    elif who == "pending_enrol":
        sign_in_session(client, make_user("patient", mfa=False), mfa_done=False)
    make_user("patient")  # somebody else's data in the tables too
    tables = [t for t in table_names(db) if t != "audit_events"]
    counted = ("users", "user_sessions", "access_grants", "activation_codes")
    changed = []
    for rule in _get_routes_without_arguments(app):
        before = snapshot(db, tables, ALLOWED_GET_WRITES)
        r = client.get(rule.rule)
        assert r.status_code < 500, (rule.rule, r.status_code)
        after = snapshot(db, tables, ALLOWED_GET_WRITES)
        for t in tables:
            if before[t] != after[t]:
                changed.append((rule.rule, t, len(before[t]), len(after[t])))
        for t in counted:
            assert len(before[t]) == len(after[t]), f"GET {rule.rule} as {who} changed the row count of {t}"
    assert not changed, f"GET requests as {who} changed state: {changed}"


def test_state_changing_gets_are_only_the_emailed_links(app):
    """GETs with a token argument apply a signed, single-purpose link from an email (confirm address,
    confirm email change) or move its token into the session (reset); every other GET with arguments
    is a view."""
    links = sorted(r.endpoint for r, _a in routes(app) if "GET" in methods(r) and "token" in r.arguments
                   and "POST" not in methods(r))
    # appointments.link only moves the reminder link's token into the session (the change is a POST).
    assert links == ["account.confirm_email_change", "appointments.link", "auth.reset_link", "auth.verify_email"], links


def test_get_with_arguments_changes_nothing_but_the_audit_log(app, db, make_user, make_patient, login_as):
    """Staff views and searches write audit rows (by design) and nothing else."""
    patient_user = make_user("patient")
    pid = patient_user._patient.public_id
    tables = [t for t in table_names(db) if t != "audit_events"]
    for role, path in [("support", f"/support/patients/{pid}"),
                       ("support", f"/support?q={patient_user._patient.family_name}"),
                       ("admin", "/admin/audit?action=patient.view"), ("admin", "/admin/audit/export.csv"),
                       ("clinician", build(app, "support.patient", public_id=pid))]:
        client, _u = login_as(role)
        before = snapshot(db, tables, ALLOWED_GET_WRITES)
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert snapshot(db, tables, ALLOWED_GET_WRITES) == before, f"GET {path} changed state"

"""The ONE place that answers "may this user act for this patient / use this staff function".

Every route is classified with @access_rule (public, pending, signed_in, patient, or staff roles);
a before_request hook enforces the class, and an unclassified endpoint fails closed (tests walk the
URL map to prove none exists). Object-level checks go through patient_for()/scoped_patients():
a wrong or foreign id answers 404 whether it exists or not, and leaves a "denied" audit row.
"""

from __future__ import annotations

from flask import abort, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select

from portal.core.audit import EventTag, record_event
from portal.extensions import db

PUBLIC = "public"
PENDING = "pending"  # password step done, second factor not yet (sign-in MFA or enrolment)
SIGNED_IN = "signed_in"
PATIENT = "patient"

# Staff functions and the roles that may use them.
STAFF_FUNCTIONS: dict[str, frozenset[str]] = {
    "patient_search": frozenset({"support", "admin", "clinician", "billing"}),
    "patient_demographics": frozenset({"support", "admin", "clinician", "billing"}),
    "activation": frozenset({"support", "admin"}),
    "account_unlock": frozenset({"support", "admin"}),
    "mfa_reset": frozenset({"support", "admin"}),
    "staff_admin": frozenset({"admin"}),
    "audit_report": frozenset({"admin"}),
}


def access_rule(kind: str, *, function: str | None = None):
    """Classify a view: access_rule("public") | ("pending") | ("signed_in") | ("patient") |
    access_rule("staff", function="patient_search")."""
    if kind == "staff" and function not in STAFF_FUNCTIONS:
        raise ValueError(f"unknown staff function {function!r}")

    def decorate(view):
        view._access = (kind, function)
        return view

    return decorate


def rule_for_endpoint(endpoint: str | None):
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return (PUBLIC, None)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "_access", None)


def may_use(user, function: str) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and user.role in STAFF_FUNCTIONS[function]


def enforce_route_access():
    """before_request: apply the route's class. Returns a response to short-circuit, or None."""
    rule = rule_for_endpoint(request.endpoint)
    if request.endpoint is None:
        return None  # 404/405 handled by Flask
    if rule is None:
        current_app.logger.error("unclassified endpoint %s refused", request.endpoint)
        abort(403)
    kind, function = rule
    if kind == PUBLIC:
        return None
    if kind == PENDING:
        if g.get("pending_user") is None:
            return redirect(url_for("auth.signin"))
        return None
    if not current_user.is_authenticated:
        if request.accept_mimetypes.accept_json and not request.accept_mimetypes.accept_html:
            return jsonify(ok=False, reason="signed_out"), 401
        if g.get("pending_user") is not None:
            return redirect(url_for("auth.signin_mfa"))
        return redirect(url_for("auth.signin", next=request.full_path if request.method == "GET" else None))
    if kind == SIGNED_IN:
        return None
    if kind == PATIENT:
        if current_user.role != "patient":
            deny("route", request.endpoint)
            abort(403)
        return None
    if kind == "staff":
        if not may_use(current_user, function):
            deny("route", request.endpoint)
            abort(403)
        return None
    abort(403)


def deny(object_type: str, object_id: str | None, patient_id: int | None = None):
    """Audit a refused request (an IDOR probe, a forbidden route) as 'denied' and commit it."""
    record_event(
        EventTag.ACCESS_DENIED,
        actor=current_user if current_user.is_authenticated else None,
        object_type=object_type,
        object_id=(object_id or "")[:64],
        patient_id=patient_id,
        outcome="denied",
    )
    db.session.commit()


def require_function(user, function: str):
    """For services: raise 403 unless the user's role may use the staff function."""
    if not may_use(user, function):
        abort(403)


# --- patient ownership scope ---------------------------------------------------------------

def scoped_patients(user) -> Select:
    """SELECT of the patients `user` may act for. Patients: through active grants. Staff with
    the demographics function: all patients. Anyone else: none."""
    from portal.accounts.models import AccessGrant
    from portal.patients.models import Patient

    stmt = select(Patient)
    if user.role == "patient":
        return stmt.join(AccessGrant, AccessGrant.patient_id == Patient.id).where(
            AccessGrant.user_id == user.id, AccessGrant.revoked_at.is_(None)
        )
    if may_use(user, "patient_demographics"):
        return stmt
    return stmt.where(False)


def patient_for(user, patient_public_id: str | None = None):
    """Load the patient `user` may act for, or 404 (and a 'denied' audit row).

    A patient with no id gets their own record; staff must name one."""
    from portal.patients.models import Patient

    stmt = scoped_patients(user)
    if patient_public_id is None:
        if user.role != "patient":
            abort(404)
        patient = db.session.execute(stmt.limit(1)).scalars().first()
    else:
        patient = db.session.execute(
            stmt.where(Patient.public_id == str(patient_public_id)[:32])
        ).scalars().first()
    if patient is None:
        deny("patient", patient_public_id)
        abort(404)
    return patient

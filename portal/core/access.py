"""The ONE place that answers "may this user act for this patient / use this staff function".

Every route is classified with @access_rule (public, pending, signed_in, patient, or a staff
function); a before_request hook enforces the class, and an unclassified endpoint fails closed (tests
walk the URL map to prove none exists). Object-level checks go through `owned_or_404()` (rows that
carry a patient_id, see core.db.PatientOwnedMixin), `patient_for()` and `scoped_patients()`: a wrong or
foreign id answers 404 whether it exists or not, and leaves a "denied" audit row that survives the
request's rollback.

Core knows no domain: the patient and grant models are handed over once by the application factory
(`configure_scope`).
"""

from __future__ import annotations

from flask import current_app, g, has_request_context, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select

from portal.core.audit import EventTag, append_event, event_fields
from portal.core.errors import Forbidden, NotFound
from portal.core.forms import _CONTROL, has_control_characters
from portal.core.roles import Role
from portal.extensions import db

PUBLIC = "public"
PENDING = "pending"  # password step done, second factor not yet (sign-in MFA or enrolment)
SIGNED_IN = "signed_in"
PATIENT = "patient"
STAFF = "staff"

_C, _S, _B, _A = Role.CLINICIAN, Role.SUPPORT, Role.BILLING, Role.ADMIN

# Staff functions and the roles that may use them: the one table a security review reads.
STAFF_FUNCTIONS: dict[str, frozenset[Role]] = {
    # people and accounts
    "patient_search": frozenset({_S, _A, _C, _B}),
    "patient_demographics": frozenset({_S, _A, _C, _B}),
    "activation": frozenset({_S, _A}),
    "account_unlock": frozenset({_S, _A}),
    "account_support": frozenset({_S, _A}),  # resend confirmation, send a reset link, correct an email
    "mfa_reset": frozenset({_S, _A}),
    "staff_admin": frozenset({_A}),
    "audit_report": frozenset({_A}),
    "notices_view": frozenset({_S, _A}),  # a patient's notification channel and failed notices
    # health record and results (minimum necessary: never billing or support)
    "clinical_record": frozenset({_C}),
    "results_review": frozenset({_C}),
    "records_import": frozenset({_A}),
    # scheduling
    "scheduling_setup": frozenset({_A}),
    "schedule": frozenset({_S, _C}),
    "feedback_view": frozenset({_S, _C, _A}),
    # messaging (pool membership narrows it further)
    "inbox": frozenset({_S, _B, _C}),
    "pools_admin": frozenset({_A}),
    # billing
    "billing_ledger": frozenset({_B}),
    "billing_statements": frozenset({_B}),
    "billing_refunds": frozenset({_B}),
    "billing_reports": frozenset({_B, _A}),
}


def access_rule(kind: str, *, function: str | None = None):
    """Classify a view: access_rule("public") | ("pending") | ("signed_in") | ("patient") |
    access_rule("staff", function="patient_search")."""
    if kind not in (PUBLIC, PENDING, SIGNED_IN, PATIENT, STAFF):
        raise ValueError(f"unknown access class {kind!r}")
    if kind == STAFF and function not in STAFF_FUNCTIONS:
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
    if not getattr(user, "is_authenticated", False):
        return False
    role = Role.parse(str(user.role))
    return role is not None and role in STAFF_FUNCTIONS[function]


def can(function: str) -> bool:
    """Template helper: may the signed-in user use this staff function? Navigation and pages show
    exactly what the route rules allow."""
    return may_use(current_user, function)


def enforce_route_access():
    """before_request: apply the route's class. Returns a response to short-circuit, or None."""
    if request.endpoint is None:
        return None  # 404/405 handled by Flask
    rule = rule_for_endpoint(request.endpoint)
    if rule is None:
        current_app.logger.error("unclassified endpoint %s refused", request.endpoint)
        raise Forbidden()
    kind, function = rule
    bad = [v for v in (request.view_args or {}).values() if isinstance(v, str) and has_control_characters(v)]
    if bad:  # a NUL in a path id would reach the database (PostgreSQL refuses it): an unknown id, 404
        deny("path", bad[0])
        raise NotFound()
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
        if current_user.role != Role.PATIENT:
            deny("route", request.endpoint, actor=current_user)
            raise Forbidden()
        return None
    if kind == STAFF:
        if not may_use(current_user, function):
            deny("route", request.endpoint, actor=current_user)
            raise Forbidden()
        return None
    raise Forbidden()


def deny(object_type: str, object_id: str | None, patient_id: int | None = None, *, actor=None):
    """Audit a refused request (an IDOR probe, a forbidden route) as 'denied'. The row is written now
    and, if the request's unit of work rolls back (it usually does: a 404 or 403 follows), written
    again in its own transaction, so every refusal leaves exactly one row."""
    if actor is None and has_request_context() and getattr(current_user, "is_authenticated", False):
        actor = current_user
    fields = event_fields(EventTag.ACCESS_DENIED, actor=actor, object_type=object_type,
                          object_id=_CONTROL.sub("?", str(object_id or ""))[:64], patient_id=patient_id,
                          outcome="denied")
    append_event(dict(fields))
    if has_request_context():
        from portal.core.web import keep_after_rollback

        keep_after_rollback(fields)


def require_function(user, function: str) -> None:
    """For services: raise Forbidden (403) unless the user's role may use the staff function."""
    if not may_use(user, function):
        raise Forbidden()


# --- patient ownership scope ---------------------------------------------------------------

class _Scope:
    patient = None  # the Patient model
    grant = None  # the AccessGrant model (user_id, patient_id, relationship_kind, revoked_at)


def configure_scope(patient_model, grant_model) -> None:
    """Called once by the application factory (the composition root), so core imports no domain."""
    _Scope.patient = patient_model
    _Scope.grant = grant_model


def _is_patient(user) -> bool:
    return str(user.role) == Role.PATIENT.value


def scoped_patient_ids(user) -> Select | None:
    """SELECT of the patient ids `user` may act for, or None meaning "every patient" (staff with the
    demographics function). Patients: through their active grants. Anyone else: none."""
    grant = _Scope.grant
    if _is_patient(user):
        return select(grant.patient_id).where(grant.user_id == user.id, grant.revoked_at.is_(None))
    if may_use(user, "patient_demographics"):
        return None
    return select(grant.patient_id).where(False)


def scoped_patients(user) -> Select:
    """SELECT of the patients `user` may act for."""
    patient = _Scope.patient
    ids = scoped_patient_ids(user)
    stmt = select(patient)
    return stmt if ids is None else stmt.where(patient.id.in_(ids))


def scope_filter(model, user):
    """A WHERE clause limiting a PatientOwnedMixin model's rows to the patients `user` may act for
    (use it for list pages; `owned_or_404` for one row)."""
    ids = scoped_patient_ids(user)
    return model.patient_id.is_not(None) if ids is None else model.patient_id.in_(ids)


def patient_for(user, patient_public_id: str | None = None):
    """Load the patient `user` may act for, or 404 (and a 'denied' audit row).

    Without an id a patient gets their own record: the one active `self` grant (never "the first of
    several"; proxy access will choose explicitly). Staff must name one."""
    patient, grant = _Scope.patient, _Scope.grant
    if patient_public_id is None:
        if not _is_patient(user):
            raise NotFound()
        found = db.session.execute(
            select(patient).join(grant, grant.patient_id == patient.id)
            .where(grant.user_id == user.id, grant.revoked_at.is_(None), grant.relationship_kind == "self")
        ).scalars().all()
        found = found[0] if len(found) == 1 else None
    else:
        found = db.session.execute(
            scoped_patients(user).where(patient.public_id == str(patient_public_id)[:32])
        ).scalars().first()
    if found is None:
        deny("patient", patient_public_id, actor=user)
        raise NotFound()
    return found


def owned_or_404(model, public_id: str | None, user, *, options=()):
    """One row of a patient-owned model (core.db.PatientOwnedMixin) by its public id, if `user` may act
    for its patient; otherwise 404 and a 'denied' row (the same answer whether or not it exists)."""
    stmt = select(model).where(model.public_id == str(public_id or "")[:32], scope_filter(model, user))
    for option in options:
        stmt = stmt.options(option)
    row = db.session.execute(stmt).scalars().first()
    if row is None:
        deny(model.__tablename__, public_id, actor=user)
        raise NotFound()
    return row


def load_or_404(stmt: Select, object_type: str, object_id: str | None, user):
    """A row a staff page loads by id (a staff account, a pool…): the query carries its own rule; an
    empty result is a 404 with a 'denied' row, like the patient loaders."""
    row = db.session.execute(stmt).scalars().first()
    if row is None:
        deny(object_type, object_id, actor=user)
        raise NotFound()
    return row

"""`flask demo seed`: idempotent demo clinic (staff of each role, patients from FHIR, two active
patient accounts with MFA, one pending activation), then each domain's own demo data: a module
`portal/<domain>/demo.py` with `ORDER` (int) and `seed(ctx: DemoContext)`, run in ORDER. Each must be
idempotent (running `make run` twice changes nothing) and may add lines for `make run` to print
(ctx.notes). Demo credentials are printed, never used in production (the command refuses there)."""

from __future__ import annotations

import base64
import hashlib
import importlib
from dataclasses import dataclass, field

from sqlalchemy import select

from portal.accounts import mfa, services as account_services
from portal.accounts.models import User
from portal.patients.models import AccessGrant
from portal.accounts.passwords import hash_password
from portal.core.crypto import encrypt
from portal.core.db import utcnow
from portal.demo.fhir_patients import demo_patients
from portal.extensions import db
from portal.patients.models import Patient

DEMO_PASSWORD = "riverside demo visit 2026"
STAFF = [
    ("admin@clinic.example", "admin", "Alex Admin"),
    ("support@clinic.example", "support", "Sam Support"),
    ("billing@clinic.example", "billing", "Bea Billing"),
    ("clinician@clinic.example", "clinician", "Dr. Casey Clinician"),
]
# (FHIR id, portal email, language)
PATIENT_ACCOUNTS = [
    ("a4a401d1-a46a-eb4a-8a38-760d5d79d6ec", "gladys@patient.example", "en"),
    ("6a4160eb-a793-2f86-2302-378626f46cce", "yvone@patient.example", "es"),
]
PENDING_ACTIVATION_FHIR_ID = "ca15b832-01e4-41dd-6a52-97bd3e5510cb"


def demo_totp_secret(email: str) -> str:
    """Deterministic per demo account so `make run` can print it every time (demo only)."""
    digest = hashlib.sha256(("portal-demo-totp|" + email).encode()).digest()[:20]
    return base64.b32encode(digest).decode()


def _upsert_patients() -> dict[str, Patient]:
    by_fhir = {}
    for n, data in enumerate(demo_patients(), start=1):
        data = dict(data, email=None)  # never mail a real address from demo data
        patient = db.session.execute(select(Patient).where(Patient.fhir_id == data["fhir_id"])).scalars().first()
        if patient is None:
            patient = Patient(mrn=f"RFC{100000 + n}", **data)
            db.session.add(patient)
        by_fhir[data["fhir_id"]] = patient
    db.session.flush()
    return by_fhir


def _ensure_user(email: str, role: str, name: str, language: str = "en") -> User:
    user = db.session.execute(select(User).where(User.email == email)).scalars().first()
    if user is None:
        user = User(email=email, role=role, display_name=name, password_hash=hash_password(DEMO_PASSWORD),
                    email_verified_at=utcnow(), password_changed_at=utcnow(), preferred_language=language)
        db.session.add(user)
        db.session.flush()
    if not user.mfa_enabled:
        user.totp_secret_enc = encrypt(demo_totp_secret(email))
        user.totp_enabled_at = utcnow()
        mfa.new_recovery_codes(user)
    return user


@dataclass
class DemoContext:
    """What the base seed made, for the domains' demo modules."""

    patients: dict[str, Patient]  # by FHIR id
    users: dict[str, User]  # by email (staff and patient accounts)
    notes: list[str] = field(default_factory=list)  # printed by `flask demo seed` after the logins

    def user(self, email: str) -> User:
        return self.users[email]

    def patient_of(self, email: str) -> Patient:
        """The patient record behind a demo patient account (e.g. gladys@patient.example)."""
        fhir_id = next(f for f, e, _lang in PATIENT_ACCOUNTS if e == email)
        return self.patients[fhir_id]

    @property
    def staff(self) -> dict[str, User]:
        """{role: the demo staff user}"""
        return {role: self.users[email] for email, role, _name in STAFF}


def run_domain_demos(ctx: DemoContext) -> None:
    from portal import domain_modules

    modules = [importlib.import_module(name) for name in domain_modules("demo")]
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.seed(ctx)
        db.session.flush()


def seed() -> dict:
    patients = _upsert_patients()
    users: dict[str, User] = {}
    accounts = []
    for email, role, name in STAFF:
        users[email] = _ensure_user(email, role, name)
        accounts.append((email, role))
    for fhir_id, email, lang in PATIENT_ACCOUNTS:
        patient = patients[fhir_id]
        patient.preferred_language = lang
        patient.email = email
        user = users[email] = _ensure_user(email, "patient", patient.given_name, lang)
        if db.session.execute(select(AccessGrant).where(AccessGrant.user_id == user.id,
                                                        AccessGrant.patient_id == patient.id)).first() is None:
            db.session.add(AccessGrant(user_id=user.id, patient_id=patient.id, relationship_kind="self"))
        accounts.append((email, "patient"))
    db.session.flush()
    pending = patients[PENDING_ACTIVATION_FHIR_ID]
    admin = db.session.execute(select(User).where(User.email == STAFF[0][0])).scalars().one()
    code = None
    if account_services.patient_account(pending) is None:
        code = account_services.issue_activation(admin, pending)
    ctx = DemoContext(patients=patients, users=users)
    run_domain_demos(ctx)
    return {"accounts": accounts, "patients": len(patients), "activation": (pending, code), "notes": ctx.notes}

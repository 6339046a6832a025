"""Demo for the support console: a patient who activated with a mistyped email address and never
confirmed it (status "Invited"; support can send the confirmation again or correct the address).
Idempotent: the account is found by its email before being made."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts.models import User
from portal.accounts.passwords import hash_password
from portal.patients.models import AccessGrant

ORDER = 20
TYPO_EMAIL = "lorenzo@patient.exmaple"  # sic: the typo support corrects


def seed(ctx) -> None:
    from portal.demo.seed import DEMO_PASSWORD, PATIENT_ACCOUNTS, PENDING_ACTIVATION_FHIR_ID
    from portal.extensions import db

    taken = {f for f, _e, _l in PATIENT_ACCOUNTS} | {PENDING_ACTIVATION_FHIR_ID}
    free = [f for f in sorted(ctx.patients) if f not in taken]
    if not free:
        return
    patient = ctx.patients[free[0]]
    user = db.session.execute(select(User).where(User.email == TYPO_EMAIL)).scalars().first()
    if user is None:
        if db.session.execute(select(AccessGrant).where(AccessGrant.patient_id == patient.id)).first() is not None:
            return
        user = User(email=TYPO_EMAIL, role="patient", display_name=patient.given_name,
                    password_hash=hash_password(DEMO_PASSWORD), preferred_language=patient.preferred_language or "en")
        db.session.add(user)
        db.session.flush()
        db.session.add(AccessGrant(user_id=user.id, patient_id=patient.id, relationship_kind="self"))
    ctx.notes.append(f"Support console: {patient.full_name} ({patient.mrn}) activated with a mistyped address "
                     f"({TYPO_EMAIL}); sign in as support@clinic.example to resend or correct it.")

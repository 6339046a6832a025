"""factory_boy factories for the models tests need."""

from __future__ import annotations

from datetime import date

import factory
import pyotp

from portal.accounts.models import User
from portal.patients.models import AccessGrant
from portal.core.crypto import encrypt
from portal.core.db import utcnow
from portal.extensions import db
from portal.patients.models import Patient

DEFAULT_PASSWORD = "quiet harbour lantern 1987"


class PatientFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = Patient
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"

    mrn = factory.Sequence(lambda n: f"T{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    birth_date = factory.Faker("date_of_birth", minimum_age=18, maximum_age=90)
    sex = "female"
    phone = "555-0100"
    preferred_language = "en"


_hash_cache: dict[str, str] = {}


def _password_hash(password: str) -> str:
    from portal.accounts.passwords import hash_password

    if password not in _hash_cache:
        _hash_cache[password] = hash_password(password)
    return _hash_cache[password]


_seq = iter(range(1, 10**9))


def create_user(role="patient", *, make_patient=None, mfa=True, password=DEFAULT_PASSWORD, patient=None,
                email=None, verified=True, **fields) -> User:
    n = next(_seq)
    user = User(
        email=email or f"{role}{n}@test.example",
        role=role,
        display_name=fields.pop("display_name", f"{role.title()} {n}"),
        password_hash=_password_hash(password),
        email_verified_at=utcnow() if verified else None,
        preferred_language=fields.pop("preferred_language", "en"),
        **fields,
    )
    secret = pyotp.random_base32(32)
    if mfa:
        user.totp_secret_enc = encrypt(secret)
        user.totp_enabled_at = utcnow()
    db.session.add(user)
    db.session.flush()
    user._totp_secret = secret
    if role == "patient":
        patient = patient or (make_patient() if make_patient else PatientFactory.create())
        db.session.add(AccessGrant(user_id=user.id, patient_id=patient.id, relationship_kind="self"))
        db.session.flush()
        user._patient = patient
    return user


def birth(y=1980, m=1, d=2) -> date:
    return date(y, m, d)

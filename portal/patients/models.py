from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PublicIdMixin, TimestampMixin, UTCDateTime
from portal.extensions import db


class Patient(PublicIdMixin, TimestampMixin, db.Model):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100), index=True)
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    address_line: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(50))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    fhir_id: Mapped[str | None] = mapped_column(String(64), unique=True)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class AccessGrant(TimestampMixin, db.Model):
    """Links a user to a patient record they may act for (`self` now, `proxy` later). The ownership
    scope (core.access) reads only these rows."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("user_id", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    relationship_kind: Mapped[str] = mapped_column(String(16), default="self")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user = relationship("User", back_populates="grants")
    patient: Mapped[Patient] = relationship(lazy="joined")

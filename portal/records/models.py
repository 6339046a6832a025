"""Health-record tables, aligned with FHIR R4 / US Core for what the portal shows.

Every imported row keeps its source system and FHIR resource id (unique together with the resource
type: the natural key that makes a re-import an upsert) and the resource JSON it came from (`raw`), so
the export hands back exactly what was imported. Patient-owned rows use PatientOwnedMixin (opaque
public id, indexed patient_id) and are read through core.access's scope only.

- RecordItem: Condition, AllergyIntolerance, MedicationRequest/MedicationStatement, Immunization,
  Procedure (one table: the summary page reads them with one query).
- Encounter (visits), ClinicalDocument (DocumentReference and note DiagnosticReports with their
  decoded presentedForm), LabReport (DiagnosticReport panels), Observation (laboratory, vital-signs,
  patient-reported; release state for results), Directory (Practitioner/Organization/Location).
- ResultComment, ReleasePreference (the patient's "wait for my clinician" categories).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.db import PatientOwnedMixin, PublicIdMixin, UTCDateTime, utcnow
from portal.extensions import db


class _Sourced:
    source: Mapped[str] = mapped_column(String(64))
    fhir_id: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[str | None] = mapped_column(Text)  # the FHIR resource as imported (JSON)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def resource(self) -> dict:
        return json.loads(self.raw) if self.raw else {}


class Directory(PublicIdMixin, _Sourced, db.Model):
    """Practitioner, Organization, Location: referenced by records, shown by name."""

    __tablename__ = "record_directory"
    __table_args__ = (UniqueConstraint("source", "resource_type", "fhir_id", name="uq_record_directory_key"),
                      Index("ix_record_directory_identifier", "resource_type", "identifier_system",
                            "identifier_value"))

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    identifier_system: Mapped[str | None] = mapped_column(String(200))
    identifier_value: Mapped[str | None] = mapped_column(String(200))


class RecordItem(PatientOwnedMixin, _Sourced, db.Model):
    __tablename__ = "record_items"
    __table_args__ = (UniqueConstraint("source", "resource_type", "fhir_id", name="uq_record_items_key"),
                      Index("ix_record_items_patient_kind", "patient_id", "kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # condition | allergy | medication | immunization | procedure
    code_system: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(64))
    display: Mapped[str] = mapped_column(String(300))
    status: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(String(300))  # dosage, reaction, criticality…
    by_whom: Mapped[str | None] = mapped_column(String(200))


class Encounter(PatientOwnedMixin, _Sourced, db.Model):
    __tablename__ = "record_encounters"
    __table_args__ = (UniqueConstraint("source", "fhir_id", name="uq_record_encounters_key"),
                      Index("ix_record_encounters_patient_start", "patient_id", "start"))

    id: Mapped[int] = mapped_column(primary_key=True)
    type_display: Mapped[str] = mapped_column(String(300))
    class_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    practitioner: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(String(300))


class ClinicalDocument(PatientOwnedMixin, _Sourced, db.Model):
    """A DocumentReference, or a note DiagnosticReport's presentedForm (decoded)."""

    __tablename__ = "record_documents"
    __table_args__ = (UniqueConstraint("source", "resource_type", "fhir_id", name="uq_record_documents_key"),
                      Index("ix_record_documents_patient_date", "patient_id", "date"))

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("record_encounters.id"), index=True)
    author: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="text/plain")
    content: Mapped[bytes | None] = mapped_column(LargeBinary)

    encounter: Mapped[Encounter | None] = relationship()

    @property
    def is_text(self) -> bool:
        return self.content_type.split(";")[0].strip() in ("text/plain", "text/html", "text/markdown")


class LabReport(PatientOwnedMixin, _Sourced, db.Model):
    """A DiagnosticReport panel (lipid panel, metabolic panel…) grouping result Observations."""

    __tablename__ = "record_reports"
    __table_args__ = (UniqueConstraint("source", "fhir_id", name="uq_record_reports_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64))
    display: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(32))
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    performer: Mapped[str | None] = mapped_column(String(200))
    conclusion: Mapped[str | None] = mapped_column(Text)


LAB, VITALS, PATIENT_REPORTED = "laboratory", "vital-signs", "patient-reported"


class Observation(PatientOwnedMixin, _Sourced, db.Model):
    """A lab result, a vital sign, or a reading the patient entered. Lab results carry their release
    state: visible to the patient only once `released_at` is set (core rules in rules.py)."""

    __tablename__ = "record_observations"
    __table_args__ = (UniqueConstraint("source", "fhir_id", name="uq_record_observations_key"),
                      Index("ix_record_obs_patient_cat_time", "patient_id", "category", "effective_at"),
                      Index("ix_record_obs_patient_code_time", "patient_id", "code", "effective_at"),
                      Index("ix_record_obs_release_due", "released_at", "available_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("record_reports.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    code_system: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(64))
    display: Mapped[str] = mapped_column(String(300))
    status: Mapped[str | None] = mapped_column(String(32))
    value_num: Mapped[float | None] = mapped_column(Float)
    value_num2: Mapped[float | None] = mapped_column(Float)  # diastolic for a blood-pressure panel
    value_text: Mapped[str | None] = mapped_column(String(500))
    unit: Mapped[str | None] = mapped_column(String(40))
    ref_low: Mapped[float | None] = mapped_column(Float)
    ref_high: Mapped[float | None] = mapped_column(Float)
    ref_text: Mapped[str | None] = mapped_column(String(200))
    interpretation: Mapped[str | None] = mapped_column(String(16))  # FHIR v3 ObservationInterpretation code
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # patient-reported readings
    # release (lab results): sensitive category, when it may be released, when it was
    sensitive_category: Mapped[str | None] = mapped_column(String(32))
    wait_for_clinician: Mapped[bool] = mapped_column(Boolean, default=False)
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hold_reason: Mapped[str | None] = mapped_column(String(300))
    hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    held_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    report: Mapped[LabReport | None] = relationship()


class ResultComment(PatientOwnedMixin, db.Model):
    __tablename__ = "record_result_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("record_observations.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReleasePreference(db.Model):
    """A sensitive category the patient chose to see only after their clinician has released it."""

    __tablename__ = "record_release_prefs"
    __table_args__ = (UniqueConstraint("patient_id", "category", name="uq_record_release_prefs_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


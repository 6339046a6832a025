"""Declarative base with a constraint naming convention, UTC timestamps and opaque ids."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, MetaData, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_public_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC datetimes")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PublicIdMixin:
    """An opaque id for URLs; integer primary keys never leave the server."""

    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PatientOwnedMixin(PublicIdMixin):
    """A row that belongs to one patient: an opaque public id for URLs and an indexed patient_id.

    Load one with `core.access.owned_or_404(Model, public_id, user)` and filter lists with
    `core.access.scope_filter(Model, user)`; rows reached through a parent (a message of a thread)
    carry the patient_id too, so every lookup is one indexed query through the same scope."""

    @declared_attr
    def patient_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("patients.id"), index=True)


def capped_count(rows, cap: int):
    """COUNT(*) of a SELECT that reads at most cap + 1 of its rows (a scalar subquery, so several counts
    can share one statement): a count that stays cheap however large the table grows (PERFORMANCE.md G6/G8).
    A result above `cap` means "more than cap"."""
    from sqlalchemy import func, select

    return select(func.count()).select_from(rows.limit(cap + 1).subquery()).scalar_subquery()

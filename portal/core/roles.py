"""The one list of roles, with their labels. Everything else (forms, access rules, models, CLI,
templates, tests) reads it from here."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l


class Role(str, enum.Enum):
    PATIENT = "patient"
    CLINICIAN = "clinician"
    SUPPORT = "support"
    BILLING = "billing"
    ADMIN = "admin"

    def __str__(self) -> str:  # so f-strings and Jinja print "support", not "Role.SUPPORT"
        return self.value

    @property
    def label(self):
        return _LABELS[self]

    @property
    def is_staff(self) -> bool:
        return self is not Role.PATIENT

    @classmethod
    def staff(cls) -> tuple[Role, ...]:
        return STAFF_ROLES

    @classmethod
    def parse(cls, value: str | None) -> Role | None:
        try:
            return cls(value)
        except ValueError:
            return None


_LABELS = {
    Role.PATIENT: _l("Patient"),
    Role.CLINICIAN: _l("Clinician"),
    Role.SUPPORT: _l("Support staff"),
    Role.BILLING: _l("Billing staff"),
    Role.ADMIN: _l("Administrator"),
}

ALL_ROLES: tuple[Role, ...] = tuple(Role)
STAFF_ROLES: tuple[Role, ...] = (Role.CLINICIAN, Role.SUPPORT, Role.BILLING, Role.ADMIN)
# Plain strings, for SQL `IN (...)` and comparisons with the users.role column.
STAFF_ROLE_VALUES: tuple[str, ...] = tuple(r.value for r in STAFF_ROLES)


def role_label(role: str | Role | None) -> str:
    parsed = Role.parse(role.value if isinstance(role, Role) else role)
    return str(parsed.label) if parsed else (role or "")


def staff_role_choices() -> list[tuple[str, object]]:
    """(value, label) pairs for a staff-role select."""
    return [(r.value, r.label) for r in STAFF_ROLES]

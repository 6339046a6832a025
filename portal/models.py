"""Import every model so Alembic and create_all see the whole schema."""

from portal.accounts.models import (  # noqa: F401
    AccessGrant,
    LoginFailure,
    ActivationCode,
    RecoveryCode,
    SupportIdentityCheck,
    User,
    UserSession,
)
from portal.audit.models import AuditEvent  # noqa: F401
from portal.patients.models import Patient  # noqa: F401

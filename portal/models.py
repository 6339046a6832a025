"""Import every model so Alembic and create_all see the whole schema (one line per domain)."""

from portal.accounts.models import (  # noqa: F401
    ActivationCode,
    LoginFailure,
    Passkey,
    RecoveryCode,
    SupportIdentityCheck,
    User,
    UserSession,
    WebAuthnChallenge,
)
from portal.core.audit import AuditEvent  # noqa: F401
from portal.patients.models import AccessGrant, Patient  # noqa: F401
from portal.notifications.models import (  # noqa: F401
    InboundText, Notice, NoticeAttachment, NotificationSettings, PhoneVerification, SmsOptOut,
)
from portal.scheduling.models import (  # noqa: F401
    Appointment, AppointmentRequest, AvailabilityTemplate, CheckIn, InsuranceCard, LinkUse, Location, Provider,
    Reminder, ScheduleException, SlotClaim, VisitFeedback, VisitType, WaitlistEntry, WaitlistOffer)
from portal.messaging.models import (  # noqa: F401
    Attachment as MessageAttachment, CannedReply, Message, Pool, PoolMember, Thread)
from portal.records.models import (  # noqa: F401
    ClinicalDocument, Directory, Encounter, LabReport, Observation, RecordItem, ReleasePreference,
    ResultComment)
from portal.billing.models import (  # noqa: F401
    BillingAccount, LedgerEntry, PaymentAttempt, Statement, StatementRun, StripeEvent)

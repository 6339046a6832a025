"""Configuration classes, chosen by PORTAL_ENV (development | testing | production).

Every secret comes from the environment. Development and testing have safe, obviously
fake defaults so `make run` and `make test` work on a fresh clone; production refuses to
start without real values (see ProductionConfig.validate).
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Fernet keys are 32 url-safe base64 bytes. These two are for development/tests only;
# ProductionConfig refuses to run with either.
_DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="
_DEV_SECRET_KEY = "dev-only-secret-key-not-for-production"
_DEV_AUDIT_KEY = "dev-only-audit-chain-key-not-for-production"
INSECURE_DEFAULTS = {_DEV_FIELD_KEY, _DEV_SECRET_KEY, _DEV_AUDIT_KEY}
STRIPE_KEYS = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


class Config:
    ENV_NAME = "base"
    SECRET_KEY = os.environ.get("SECRET_KEY", _DEV_SECRET_KEY)
    # Comma-separated Fernet keys, newest first (MultiFernet: rotate by prepending a new key).
    FIELD_ENCRYPTION_KEYS = os.environ.get("FIELD_ENCRYPTION_KEYS", _DEV_FIELD_KEY)

    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.sqlite3'}"
    )
    # hide_parameters: SQL errors (and their log lines) never carry the bound values (names, emails, hashes).
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    CLINIC_NAME = os.environ.get("CLINIC_NAME", "Riverside Family Clinic")
    CLINIC_TIMEZONE = os.environ.get("CLINIC_TIMEZONE", "America/Chicago")
    # Numbers and money are written as in the clinic's region: in the US a Spanish reader sees $150.00 and 5.6
    # (es_US, as on US bills and labels), not Spain's 150,00 US$ and 5,6. Empty: the language's own format.
    CLINIC_REGION = os.environ.get("CLINIC_REGION", "US")
    # The clinic's contact details: shown on the help, sign-in and lockout pages and in emails.
    CLINIC_PHONE = os.environ.get("CLINIC_PHONE", "(555) 010-2000")
    CLINIC_HOURS = os.environ.get("CLINIC_HOURS", "Mon–Fri 8:00–17:00")
    CLINIC_ADDRESS = os.environ.get("CLINIC_ADDRESS", "1200 River Road, Springfield, IL 62701")
    CLINIC_EMERGENCY_NUMBER = os.environ.get("CLINIC_EMERGENCY_NUMBER", "911")
    CLINIC_EMAIL = os.environ.get("CLINIC_EMAIL")

    # Flask defaults are wrong for health data (SECURITY.md §0).
    SESSION_COOKIE_NAME = "portal_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)
    MAX_CONTENT_LENGTH = 10 * 1024 * 1024
    SESSION_IDLE_SECONDS = _env_int("SESSION_IDLE_SECONDS", 15 * 60)
    SESSION_WARNING_SECONDS = _env_int("SESSION_WARNING_SECONDS", 2 * 60)
    SESSION_ABSOLUTE_SECONDS = _env_int("SESSION_ABSOLUTE_SECONDS", 12 * 3600)
    REAUTH_SECONDS = 5 * 60

    # The audit chain's HMAC key: from the environment, never in the database. Signed checkpoints of the
    # chain are appended to AUDIT_CHECKPOINT_FILE (keep it off the database host, e.g. a WORM or
    # log-shipped volume) every AUDIT_CHECKPOINT_SECONDS by the Celery beat, and by `flask audit checkpoint`.
    AUDIT_HMAC_KEY = os.environ.get("AUDIT_HMAC_KEY", _DEV_AUDIT_KEY)
    AUDIT_CHECKPOINT_FILE = os.environ.get("AUDIT_CHECKPOINT_FILE", str(INSTANCE_DIR / "audit-checkpoints.jsonl"))
    AUDIT_CHECKPOINT_SECONDS = _env_int("AUDIT_CHECKPOINT_SECONDS", 300)

    WTF_CSRF_TIME_LIMIT = None  # bound to the session, which already expires
    PREFERRED_URL_SCHEME = "http"

    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ("en", "es")
    # The anonymous sign-in and help pages are rendered once per language and process (core/page_cache.py).
    ANONYMOUS_PAGE_CACHE = os.environ.get("ANONYMOUS_PAGE_CACHE", "1") not in ("0", "false", "no")
    ANONYMOUS_PAGE_CACHE_SIZE = 64

    # Throttling: per-IP via Flask-Limiter storage; per-account counter and lock in the DB.
    REDIS_URL = os.environ.get("REDIS_URL")
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL") or "memory://"
    RATELIMIT_HEADERS_ENABLED = False
    LOGIN_FAILURES_PER_WINDOW = _env_int("LOGIN_FAILURES_PER_WINDOW", 10)
    LOGIN_FAILURE_WINDOW_SECONDS = _env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
    IP_FAILURES_PER_WINDOW = _env_int("IP_FAILURES_PER_WINDOW", 30)
    ACCOUNT_LOCK_SECONDS = _env_int("ACCOUNT_LOCK_SECONDS", 15 * 60)

    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 64 * 1024  # KiB = 64 MiB
    ARGON2_PARALLELISM = 1

    ACTIVATION_CODE_DAYS = 14
    PASSWORD_RESET_SECONDS = 3600
    EMAIL_VERIFY_SECONDS = 48 * 3600

    # Mail: "file" writes .eml files to MAIL_FILE_DIR; "smtp" talks to MAIL_SERVER.
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "file")
    MAIL_FILE_DIR = os.environ.get("MAIL_FILE_DIR", str(INSTANCE_DIR / "mail"))
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USE_TLS = os.environ.get("MAIL_USE_TLS", "") == "1"
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "portal@clinic.example")
    # Links in emails and texts. `make run` sets it from PORT so links follow the port it serves on.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{os.environ.get('PORT', '5000')}")
    # Passkeys (WebAuthn): the relying-party id is PUBLIC_BASE_URL's host name and the origin its scheme,
    # host and port, unless set here. Browsers refuse an IP address as the id: on a bare `make run`
    # (127.0.0.1) passkeys are not offered; open http://localhost:5000 with WEBAUTHN_RP_ID=localhost.
    WEBAUTHN_RP_ID = os.environ.get("WEBAUTHN_RP_ID")
    WEBAUTHN_ORIGIN = os.environ.get("WEBAUTHN_ORIGIN")

    # Text messages (notifications domain). SMS_BACKEND: "file" (each text written to SMS_FILE_DIR, the
    # embedded default), "twilio" (credentials below) or "off" (no texts: patients are offered email only).
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "file")
    SMS_FILE_DIR = os.environ.get("SMS_FILE_DIR", str(INSTANCE_DIR / "sms"))
    SMS_DEFAULT_REGION = os.environ.get("SMS_DEFAULT_REGION", "US")  # how numbers without +country are read
    SMS_QUIET_HOURS = os.environ.get("SMS_QUIET_HOURS", "21:00-08:00")  # clinic time; "" = none
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN")  # also validates X-Twilio-Signature on /sms/inbound
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER")  # E.164 sender, or:
    TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID")
    TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL")  # only to reach Twilio through a proxy / tests
    NOTICE_RETRY_BASE_SECONDS = _env_int("NOTICE_RETRY_BASE_SECONDS", 30)  # doubles per attempt, max 1 h
    NOTICE_MAX_ATTEMPTS = _env_int("NOTICE_MAX_ATTEMPTS", 8)

    # Billing (portal/billing). Stripe keys come from the environment; without them the portal talks to
    # localstripe (a local Stripe fake, dev/test only) on STRIPE_API_BASE, which `make run` starts.
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "sk_test_localstripe_dev")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe_dev")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_localstripe_dev_only")
    # None = real Stripe (api.stripe.com, js.stripe.com). Development defaults to localstripe.
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:8420")
    STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL")  # default: <STRIPE_API_BASE>/js.stripe.com/v3/ or Stripe's
    STRIPE_MAX_NETWORK_RETRIES = _env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
    STRIPE_TIMEOUT_SECONDS = _env_int("STRIPE_TIMEOUT_SECONDS", 20)
    BILLING_CURRENCY = os.environ.get("BILLING_CURRENCY", "usd")
    BILLING_MIN_PAYMENT_CENTS = _env_int("BILLING_MIN_PAYMENT_CENTS", 500)
    BILLING_STATEMENT_DUE_DAYS = _env_int("BILLING_STATEMENT_DUE_DAYS", 30)
    BILLING_RUN_INLINE = False  # statement batch runs in the request (tests) instead of a worker/thread

    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", os.environ.get("REDIS_URL", "memory://"))
    CELERY_ALWAYS_EAGER = True

    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
    HSTS = False
    # Application logs: "json" (one object per line, with the request id) or "text".
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")

    @classmethod
    def validate(cls) -> None:
        """Hook for subclasses that must refuse unsafe settings."""


class DevelopmentConfig(Config):
    ENV_NAME = "development"


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    ARGON2_TIME_COST = 2
    ARGON2_MEMORY_COST = 19 * 1024  # the NIST/OWASP floor, to keep the suite quick
    MAIL_BACKEND = "memory"
    SMS_BACKEND = "file"
    AUDIT_CHECKPOINT_FILE = None  # tests that check checkpoints point it at their own file
    SMS_FILE_DIR = os.path.join(tempfile.gettempdir(), "portal-test-sms")  # tests point it at their own folder
    TWILIO_AUTH_TOKEN = "test-only-twilio-auth-token"  # tests sign /sms/inbound requests with it
    RATELIMIT_STORAGE_URI = "memory://"
    SERVER_NAME = None
    STRIPE_MAX_NETWORK_RETRIES = 0
    STRIPE_TIMEOUT_SECONDS = 10
    BILLING_RUN_INLINE = True


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_NAME = "__Host-portal_session"
    SESSION_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 1)
    HSTS = True
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
    CELERY_ALWAYS_EAGER = False
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "twilio" if os.environ.get("TWILIO_ACCOUNT_SID") else "off")
    # Real Stripe unless told otherwise; without keys online payment is shown as unavailable (never the fake).
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE") or None
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET")

    @classmethod
    def validate(cls) -> None:
        env = os.environ
        missing = []
        if problem := secret_key_problem(env.get("SECRET_KEY")):
            missing.append(f"SECRET_KEY ({problem}; e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        if not env.get("DATABASE_URL") or not env["DATABASE_URL"].startswith("postgresql"):
            missing.append("DATABASE_URL (a postgresql+psycopg:// URL)")
        if problem := fernet_keys_problem(env.get("FIELD_ENCRYPTION_KEYS")):
            missing.append(f"FIELD_ENCRYPTION_KEYS ({problem}; Fernet keys, newest first, comma-separated)")
        if not env.get("REDIS_URL", "").strip():
            # Without Redis the broker would be memory:// in every process: mail and notices queued by the web
            # would never reach a worker, and rate limits would not be shared between nodes. Refuse.
            missing.append("REDIS_URL (redis://host:6379/0: the Celery broker and the shared rate-limit store)")
        audit_key = env.get("AUDIT_HMAC_KEY", "")
        if problem := secret_key_problem(audit_key):
            missing.append(f"AUDIT_HMAC_KEY ({problem}; keep it out of the database)")
        if cls.SMS_BACKEND == "twilio" and not (env.get("TWILIO_ACCOUNT_SID") and env.get("TWILIO_AUTH_TOKEN") and (
                env.get("TWILIO_FROM_NUMBER") or env.get("TWILIO_MESSAGING_SERVICE_SID"))):
            missing.append("TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (or SMS_BACKEND=off)")
        if cls.SMS_BACKEND not in ("twilio", "off"):
            missing.append("SMS_BACKEND (twilio or off: the file backend is for development)")
        stripe_keys = {k: env.get(k, "").strip() for k in STRIPE_KEYS}
        if any(stripe_keys.values()) and not all(stripe_keys.values()):
            # A secret key without the webhook secret takes payments whose confirmations are then refused.
            missing.append("STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY and STRIPE_WEBHOOK_SECRET, all three "
                           "(or none: online payment is then shown as unavailable)")
        elif any(v in INSECURE_DEFAULTS or "localstripe" in v for v in stripe_keys.values()):
            missing.append("STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY and STRIPE_WEBHOOK_SECRET (the localstripe "
                           "keys are development defaults)")
        if cls.PROXY_FIX_HOPS < 1:
            missing.append("PROXY_FIX_HOPS (>= 1: the portal must run behind a TLS-terminating proxy)")
        if missing:
            raise RuntimeError("Refusing to start in production; set: " + "; ".join(missing))
        cls.SECRET_KEY = env["SECRET_KEY"]
        cls.SQLALCHEMY_DATABASE_URI = env["DATABASE_URL"]
        cls.FIELD_ENCRYPTION_KEYS = env["FIELD_ENCRYPTION_KEYS"]
        cls.AUDIT_HMAC_KEY = audit_key
        cls.REDIS_URL = cls.RATELIMIT_STORAGE_URI = env["REDIS_URL"].strip()
        cls.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or cls.REDIS_URL
        for k, v in stripe_keys.items():
            setattr(cls, k, v or None)


def _weak(value: str) -> str | None:
    if value != value.strip():
        return "has leading or trailing whitespace"
    if value.strip() in INSECURE_DEFAULTS:
        return "is a development default"
    if len(set(value)) < 12:
        return "is not random (too few distinct characters)"
    return None


def secret_key_problem(value: str | None) -> str | None:
    """Why a SECRET_KEY must be refused in production, or None. Catches the development key (also with
    stray whitespace), short keys and obviously non-random ones like 40 x "a"."""
    if not value:
        return "missing"
    if any(value.strip() == d.strip() for d in INSECURE_DEFAULTS):
        return "is a development default"
    if len(value) < 32:
        return "too short: at least 32 random characters"
    return _weak(value)


def fernet_keys_problem(value: str | None) -> str | None:
    """Why FIELD_ENCRYPTION_KEYS must be refused: missing, a development key, or not a valid Fernet key
    (32 url-safe base64 bytes) — found now rather than at the first decryption."""
    keys = [k for k in (value or "").split(",") if k.strip()]
    if not keys:
        return "missing"
    import base64
    import binascii

    for n, key in enumerate(keys, 1):
        if key.strip() in INSECURE_DEFAULTS:
            return f"key {n} is a development default"
        try:
            raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return f"key {n} is not url-safe base64"
        if len(raw) != 32:
            return f"key {n} is not a Fernet key (decodes to {len(raw)} bytes, not 32)"
        if len(set(raw)) < 8:
            return f"key {n} is not random"
    return None


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for_env(name: str | None = None) -> type[Config]:
    name = (name or os.environ.get("PORTAL_ENV") or "development").lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"Unknown PORTAL_ENV {name!r}; use one of {sorted(CONFIGS)}") from None

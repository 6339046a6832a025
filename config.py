"""Configuration classes, chosen by PORTAL_ENV (development | testing | production).

Every secret comes from the environment. Development and testing have safe, obviously
fake defaults so `make run` and `make test` work on a fresh clone; production refuses to
start without real values (see ProductionConfig.validate).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

# Fernet keys are 32 url-safe base64 bytes. These two are for development/tests only;
# ProductionConfig refuses to run with either.
_DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="
_DEV_SECRET_KEY = "dev-only-secret-key-not-for-production"
INSECURE_DEFAULTS = {_DEV_FIELD_KEY, _DEV_SECRET_KEY}


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
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    CLINIC_NAME = os.environ.get("CLINIC_NAME", "Riverside Family Clinic")
    CLINIC_TIMEZONE = os.environ.get("CLINIC_TIMEZONE", "America/Chicago")

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

    WTF_CSRF_TIME_LIMIT = None  # bound to the session, which already expires
    PREFERRED_URL_SCHEME = "http"

    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ("en", "es")

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
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", os.environ.get("REDIS_URL", "memory://"))
    CELERY_ALWAYS_EAGER = True

    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
    HSTS = False

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
    RATELIMIT_STORAGE_URI = "memory://"
    SERVER_NAME = None


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_NAME = "__Host-portal_session"
    SESSION_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 1)
    HSTS = True
    CELERY_ALWAYS_EAGER = False
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")

    @classmethod
    def validate(cls) -> None:
        env = os.environ
        missing = []
        if not env.get("SECRET_KEY") or env["SECRET_KEY"] in INSECURE_DEFAULTS or len(env["SECRET_KEY"]) < 32:
            missing.append("SECRET_KEY (at least 32 random characters)")
        if not env.get("DATABASE_URL") or not env["DATABASE_URL"].startswith("postgresql"):
            missing.append("DATABASE_URL (a postgresql+psycopg:// URL)")
        keys = [k for k in env.get("FIELD_ENCRYPTION_KEYS", "").split(",") if k.strip()]
        if not keys or any(k.strip() in INSECURE_DEFAULTS for k in keys):
            missing.append("FIELD_ENCRYPTION_KEYS (Fernet keys, newest first)")
        if cls.PROXY_FIX_HOPS < 1:
            missing.append("PROXY_FIX_HOPS (>= 1: the portal must run behind a TLS-terminating proxy)")
        if missing:
            raise RuntimeError("Refusing to start in production; set: " + "; ".join(missing))
        cls.SECRET_KEY = env["SECRET_KEY"]
        cls.SQLALCHEMY_DATABASE_URI = env["DATABASE_URL"]
        cls.FIELD_ENCRYPTION_KEYS = env["FIELD_ENCRYPTION_KEYS"]


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

"""Application factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, g, request
from flask_babel import get_locale
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from config import config_for_env
from portal.core.web import PortalFlask

PACKAGE_DIR = Path(__file__).resolve().parent


def domain_modules(name: str) -> list[str]:
    """Dotted names of every domain's `name` module that exists (e.g. "tasks", "demo"), sorted: how
    domains contribute Celery tasks and periodic jobs, and demo data, without editing a shared list."""
    return [f"portal.{d.name}.{name}" for d in sorted(PACKAGE_DIR.iterdir())
            if (d / "__init__.py").exists() and (d / f"{name}.py").exists()]


def translation_directories() -> list[str]:
    """The core catalog and every domain's own (portal/<domain>/translations), merged by Flask-Babel."""
    dirs = [PACKAGE_DIR / "translations"]
    dirs += sorted(d / "translations" for d in PACKAGE_DIR.iterdir() if (d / "translations").is_dir())
    return [str(d) for d in dirs]


def create_app(config_class=None, **overrides) -> Flask:
    config_class = config_class or config_for_env()
    config_class.validate()
    app = PortalFlask(__name__, instance_relative_config=False)
    app.config.from_object(config_class)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(translation_directories())
    app.config.update(overrides)
    from portal.core.session_cookie import PortalSessionInterface

    app.session_interface = PortalSessionInterface()
    from portal.core.headers import HealthCheck
    from portal.core.ops import ReadyCheck

    app.wsgi_app = ReadyCheck(app.wsgi_app, app, hsts=bool(app.config.get("HSTS")))
    app.wsgi_app = HealthCheck(app.wsgi_app, hsts=bool(app.config.get("HSTS")))
    if app.config.get("PROXY_FIX_HOPS"):
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    _configure_logging(app)
    from portal.core.headers import assign_request_id

    app.before_request(assign_request_id)  # before CSRFProtect's hook, so refused requests carry one too
    register_extensions(app)
    register_blueprints(app)
    register_request_hooks(app)
    register_cli(app)
    from portal.core.errors import register_error_handlers

    register_error_handlers(app)
    return app


class RequestIdFilter(logging.Filter):
    """Every log line carries the request id (never PHI: ids, not names)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def log_formatter(kind: str) -> logging.Formatter:
    """LOG_FORMAT=json: one JSON object per line (production default); text otherwise."""
    if kind == "json":
        from portal.core.ops import JSONFormatter

        return JSONFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def _configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(log_formatter(app.config.get("LOG_FORMAT", "text")))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    # WeasyPrint logs one INFO line per rendering step and page: a dozen lines per statement PDF
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    # pysqlite: foreign keys on, WAL for file databases, and let SQLAlchemy own BEGIN so SAVEPOINT
    # works (SQLAlchemy's documented recipe).
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        # writers wait at least 10 s for the lock (longer when the connection asked for it: connect timeout)
        current = cur.execute("PRAGMA busy_timeout").fetchone()[0]
        cur.execute(f"PRAGMA busy_timeout={max(10000, int(current))}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across app crashes; fsync at checkpoints
        cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    # BEGIN IMMEDIATE: a transaction that reads then writes cannot dead-lock with another writer
    # (SQLite would answer "database is locked" at once); writers queue on busy_timeout instead.
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def register_extensions(app: Flask) -> None:
    from portal.core import i18n
    from portal.core.mail import init_mail
    from portal.extensions import babel, celery, csrf, db, init_migrate, limiter, login_manager, throttle

    # SQL errors and their log lines never carry bound values (names, emails, hashes), whatever the config.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}), "hide_parameters": True}
    db.init_app(app)
    init_migrate(app, directory=os.path.join(os.path.dirname(app.root_path), "migrations"), render_as_batch=True,
                 compare_type=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)
    limiter.init_app(app)
    # Our Flask-Limiter limits are all on POSTs (sign-in, codes, resets); skip its per-request work
    # for every other request (it was the largest cost of /healthz).
    limiter.request_filter(lambda: request.method != "POST")
    throttle.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # server-side session records do this job
    login_manager.login_view = "auth.signin"
    from portal.accounts import sessions

    login_manager.request_loader(sessions.load_user_from_request)
    login_manager.user_loader(lambda _id: None)  # never trust a bare _user_id in the cookie
    init_mail(app)

    def configure_celery(celery):
        celery.conf.update(
            broker_url=app.config["CELERY_BROKER_URL"],
            task_always_eager=app.config["CELERY_ALWAYS_EAGER"],
            task_eager_propagates=False,
            task_ignore_result=True,
            broker_connection_retry_on_startup=True,
        )

        class AppContextTask(celery.Task):
            def __call__(self, *args, **kwargs):
                # A fresh app context of the app that runs the task: the worker's, or, for an eager call, the
                # caller's (Celery builds the task class once per process, so `app` is the first app created:
                # with several apps in one process, as in the tests, it would be the wrong one).
                from flask import current_app, has_app_context

                target = current_app._get_current_object() if has_app_context() else app
                with target.app_context():
                    return self.run(*args, **kwargs)

        celery.Task = AppContextTask

    celery.configure(configure_celery)  # now if Celery exists, else when first used (G9)
    app.extensions["celery"] = celery
    import importlib

    import portal.core.mail  # noqa: F401  (registers the mail task)

    beat = {}
    for module_name in domain_modules("tasks"):  # each domain's Celery tasks and periodic jobs
        beat.update(getattr(importlib.import_module(module_name), "PERIODIC", {}))
    celery.configure(lambda real: setattr(real.conf, "beat_schedule", beat))
    import portal.models  # noqa: F401  (every model, for migrations)
    from portal.core.access import configure_scope
    from portal.patients.models import AccessGrant, Patient

    configure_scope(Patient, AccessGrant)  # core's ownership scope, wired to the patient domain here


def register_blueprints(app: Flask) -> None:
    from portal.accounts.routes import account_bp, auth_bp
    from portal.admin.routes import bp as admin_bp
    from portal.billing.routes import bp as billing_bp
    from portal.billing.staff_routes import bp as billing_staff_bp
    from portal.audit.routes import bp as audit_bp
    from portal.main.routes import bp as main_bp
    from portal.messaging.routes import bp as messaging_bp
    from portal.messaging.staff_routes import bp as inbox_bp
    from portal.notifications.routes import bp as notifications_bp
    from portal.records.routes import bp as records_bp
    from portal.records.staff_routes import bp as records_staff_bp
    from portal.scheduling.routes import bp as appointments_bp
    from portal.scheduling.staff_routes import bp as schedule_bp
    from portal.support.routes import bp as support_bp

    for bp in (main_bp, auth_bp, account_bp, records_bp, support_bp, admin_bp, audit_bp, notifications_bp,
               appointments_bp, schedule_bp, messaging_bp, inbox_bp, records_staff_bp, billing_bp,
               billing_staff_bp):
        app.register_blueprint(bp)


def register_request_hooks(app: Flask) -> None:
    from flask_login import current_user

    from portal.accounts import sessions
    from portal.core import access, headers
    from portal.core.audit import category_label, tag_label
    from portal.core.i18n import LANGUAGE_NAMES, install_template_gettext, local_date, local_datetime
    from portal.core.registry import ask_about_url, nav
    from portal.core.roles import role_label

    @app.before_request
    def _before():
        if request.endpoint == "static":
            return None
        sessions.load_pending_user()
        return access.enforce_route_access()

    @app.after_request
    def _after(response):
        return headers.apply_headers(app, response)

    @app.context_processor
    def _context():
        return {
            "current_locale": str(get_locale() or "en"),
            "session_timeout": sessions.timeout_context(),
            "clinic_name": app.config["CLINIC_NAME"],
            "request_id": g.get("request_id"),
            "role_label": role_label,
            "can": access.can,
            "tag_label": tag_label,
            "category_label": category_label,
            "nav_items": lambda: nav.items_for(current_user),
            "ask_about_url": ask_about_url,
            "clinic": clinic_contact(app),
        }

    headers.add_static_version(app)  # /static/…?v=<content hash>: nginx caches static files for a year
    install_template_gettext(app.jinja_env)
    app.jinja_env.globals["language_names"] = LANGUAGE_NAMES  # endonyms: "English", "Español"
    app.jinja_env.filters["localdt"] = local_datetime
    app.jinja_env.filters["localdate"] = local_date


def clinic_contact(app: Flask) -> dict:
    """The clinic's contact details (configuration), for pages and emails."""
    cfg = app.config
    return {"name": cfg["CLINIC_NAME"], "phone": cfg["CLINIC_PHONE"], "hours": cfg["CLINIC_HOURS"],
            "address": cfg["CLINIC_ADDRESS"], "emergency": cfg["CLINIC_EMERGENCY_NUMBER"],
            "email": cfg.get("CLINIC_EMAIL")}


def register_cli(app: Flask) -> None:
    from portal.cli import register

    register(app)

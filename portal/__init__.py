"""Application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask, g, request
from flask_babel import get_locale
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from config import config_for_env


def create_app(config_class=None, **overrides) -> Flask:
    config_class = config_class or config_for_env()
    config_class.validate()
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config_class)
    app.config.update(overrides)
    from portal.core.headers import HealthCheck

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


def _configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("alembic").setLevel(logging.WARNING)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    # pysqlite: foreign keys on, WAL for file databases, and let SQLAlchemy own BEGIN so SAVEPOINT
    # works (SQLAlchemy's documented recipe).
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
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
    from portal.extensions import babel, celery, csrf, db, limiter, login_manager, migrate, throttle

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"),
                     render_as_batch=True, compare_type=True)
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
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        task_always_eager=app.config["CELERY_ALWAYS_EAGER"],
        task_eager_propagates=False,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )

    class AppContextTask(celery.Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery.Task = AppContextTask
    app.extensions["celery"] = celery
    import portal.core.tasks  # noqa: F401  (registers tasks)
    import portal.models  # noqa: F401  (every model, for migrations)


def register_blueprints(app: Flask) -> None:
    from portal.accounts.routes import account_bp, auth_bp
    from portal.admin.routes import bp as admin_bp
    from portal.audit.routes import bp as audit_bp
    from portal.main.routes import bp as main_bp
    from portal.records.routes import bp as records_bp
    from portal.support.routes import bp as support_bp

    for bp in (main_bp, auth_bp, account_bp, records_bp, support_bp, admin_bp, audit_bp):
        app.register_blueprint(bp)


def register_request_hooks(app: Flask) -> None:
    from portal.accounts import sessions
    from portal.core import access, headers
    from portal.core.i18n import (
        access_label,
        local_date,
        local_datetime,
        role_label,
        install_template_gettext,
    )

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
            "access_label": access_label,
        }

    install_template_gettext(app.jinja_env)
    app.jinja_env.filters["localdt"] = local_datetime
    app.jinja_env.filters["localdate"] = local_date


def register_cli(app: Flask) -> None:
    from portal.cli import register

    register(app)

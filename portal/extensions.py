"""Flask extensions, created unbound and initialised in create_app()."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal.core.db import Base
from portal.core.lazy_celery import LazyCelery
from portal.core.throttle import Throttle

# expire_on_commit=False: routes commit once and then render; without it every object the template
# touches is reloaded, opening a second transaction per request (on SQLite, a second write lock).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, in_memory_fallback_enabled=True)
throttle = Throttle()
celery = LazyCelery("portal")  # Celery itself is imported on first use (a .delay(), the worker): G9


def init_migrate(app, **options) -> None:
    """Flask-Migrate (and Alembic, ~11 MiB) only where migrations run: the `flask db` commands and the tests.
    The web app registers a placeholder that builds the real configuration on first use."""
    app.extensions["migrate"] = _LazyMigrateConfig(app, options)


class _LazyMigrateConfig:
    def __init__(self, app, options):
        self._app, self._options, self._real = app, options, None

    def _load(self):
        if self._real is None:
            from flask_migrate import Migrate

            Migrate().init_app(self._app, db, **self._options)  # replaces app.extensions["migrate"]
            self._real = self._app.extensions["migrate"]
        return self._real

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)

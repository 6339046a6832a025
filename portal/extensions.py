"""Flask extensions, created unbound and initialised in create_app()."""

from celery import Celery
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal.core.db import Base
from portal.core.throttle import Throttle

# expire_on_commit=False: routes commit once and then render; without it every object the template
# touches is reloaded, opening a second transaction per request (on SQLite, a second write lock).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, in_memory_fallback_enabled=True)
throttle = Throttle()
celery = Celery("portal")

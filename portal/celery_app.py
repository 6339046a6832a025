"""Celery entry point: `celery -A portal.celery_app worker` and `celery -A portal.celery_app beat`.

Celery looks for an attribute named `app` (then `celery`) holding a Celery instance, so both names
are the Celery app here; the Flask app it runs tasks in is `flask_app`. Periodic jobs come from each
domain's tasks.py (`PERIODIC`, collected in create_app)."""

from portal import create_app

flask_app = create_app()
# The real Celery instance (portal.extensions.celery stands for it until first use, so web workers never load it).
app = celery = flask_app.extensions["celery"].real

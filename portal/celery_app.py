"""Celery entry point for workers: `celery -A portal.celery_app worker` (production: Redis broker)."""

from portal import create_app

app = create_app()
celery = app.extensions["celery"]

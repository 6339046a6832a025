"""Friendly error pages (both languages) and domain exceptions shared across packages."""

from __future__ import annotations

import math

from flask import g, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


class DomainError(Exception):
    """A rule said no; the message is user-facing (already translated by the raiser)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Throttled(Exception):
    """Too many attempts: not a form error, so routes let it through to the app's 429 page."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def register_error_handlers(app) -> None:
    def render(code: int, **ctx):
        return render_template(f"errors/{code}.html", request_id=g.get("request_id"), **ctx), code

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return render(400, reason="csrf")

    for code in (400, 403, 404, 500):
        app.register_error_handler(code, lambda e, code=code: render(code))

    @app.errorhandler(405)
    def method_not_allowed(e):
        return render(404)

    @app.errorhandler(413)
    def too_large(e):
        return render(400, reason="too_large")

    @app.errorhandler(429)
    def too_many(e):
        retry = getattr(e, "retry_after", None) or 60
        return render(429, retry_minutes=max(1, math.ceil(retry / 60)))

    @app.errorhandler(Throttled)
    def throttled(e):
        return render(429, retry_minutes=e.minutes)

    @app.errorhandler(Exception)
    def unhandled(e):
        if isinstance(e, HTTPException):
            return e
        app.logger.exception("unhandled error request_id=%s", g.get("request_id"))
        from portal.extensions import db

        db.session.rollback()
        return render(500)

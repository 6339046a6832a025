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


class AccessError(Exception):
    """Not a form error: a refusal that becomes an error page (never caught by form_page)."""


class Forbidden(AccessError):
    """The acting user may not do this (a role rule). The app answers 403; services raise it instead
    of calling abort(), so they stay free of Flask's request machinery."""


class NotFound(AccessError):
    """The object does not exist or is not the actor's to see: the app answers 404 either way."""


class Throttled(Exception):
    """Too many attempts: not a form error, so routes let it through to the app's 429 page."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def describe_error(exc: BaseException) -> str:
    """What to log about an unhandled error without any request data: exception types, the SQL text
    (placeholders only; the engine hides parameters) and the traceback's frames, never the messages,
    which can quote values (a database's "Key (email)=(…) already exists", a parser's echo of input)."""
    import traceback

    def name(e):
        return f"{type(e).__module__}.{type(e).__qualname__}"

    parts = [name(exc)]
    orig = getattr(exc, "orig", None)
    if orig is not None:
        parts.append(f"from {name(orig)}")
    statement = getattr(exc, "statement", None)
    if statement:
        parts.append(f"in SQL: {' '.join(str(statement).split())[:500]}")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not orig:
        parts.append(f"caused by {name(cause)}")
    frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    return " ".join(parts) + "\nTraceback (most recent call last):\n" + frames


def register_error_handlers(app) -> None:
    def render(code: int, **ctx):
        return render_template(f"errors/{code}.html", request_id=g.get("request_id"), **ctx), code

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return render(400, reason="csrf")

    for code in (400, 403, 500):
        app.register_error_handler(code, lambda e, code=code: render(code))

    @app.errorhandler(405)
    def method_not_allowed(e):
        return render(404)

    @app.errorhandler(404)
    def page_not_found(e):  # the commonest anonymous error (bots, old links): from the store (G3)
        from portal.core.page_cache import render_not_found

        return render_not_found("errors/404.html", request_id=g.get("request_id")), 404

    @app.errorhandler(413)
    def too_large(e):
        return render(400, reason="too_large")

    @app.errorhandler(429)
    def too_many(e):
        retry = getattr(e, "retry_after", None) or 60
        return render(429, retry_minutes=max(1, math.ceil(retry / 60)))

    @app.errorhandler(Forbidden)
    def forbidden(e):
        return render(403)

    @app.errorhandler(NotFound)
    def not_found(e):
        return render(404)

    @app.errorhandler(Throttled)
    def throttled(e):
        return render(429, retry_minutes=e.minutes)

    from sqlalchemy.exc import DataError

    @app.errorhandler(DataError)
    def bad_data(e):
        """A value the database refuses (too long for its column, a byte it cannot store) is the
        sender's input, not our bug: a 400, logged without the value."""
        app.logger.warning("database refused a value request_id=%s %s", g.get("request_id"), describe_error(e))
        from portal.extensions import db

        db.session.rollback()
        return render(400)

    @app.errorhandler(Exception)
    def unhandled(e):
        if isinstance(e, HTTPException):
            return e
        app.logger.error("unhandled error request_id=%s %s", g.get("request_id"), describe_error(e))
        from portal.extensions import db

        db.session.rollback()
        return render(500)

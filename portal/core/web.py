"""The request frame every domain builds on.

- One unit of work per request (`PortalFlask`): when the before-request hooks or the view return, the
  transaction commits; when they raise (a 404, a 403, a bug) it rolls back. Routes and services never
  commit. Rows that must outlive a rollback (the "denied" audit row of a refused request) are kept
  with `keep_after_rollback()` and written in their own short transaction after the rollback.
- One form-page helper (`form_page`): validate → call a service → a DomainError becomes a field error
  (appended, never replacing) or a flash → status 200 / 400 / 401.
- Small helpers every route needs: `safe_next`, `home_for`, `external_url`.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, has_request_context, redirect, render_template, request, url_for

from portal.core.errors import DomainError


# --- unit of work ------------------------------------------------------------------------------

def _session():
    from portal.extensions import db

    return db.session


def commit_unit_of_work() -> None:
    g.pop("_durable_events", None)  # they are in this transaction: the commit keeps them
    session = _session()
    if not session.registry.has():  # the request never used the database (help, sign-in form): nothing to do
        return
    session.commit()


def rollback_unit_of_work() -> None:
    session = _session()
    session.rollback()
    durable = g.pop("_durable_events", None) if has_request_context() else None
    if durable:
        from portal.core.audit import append_event

        for fields in durable:
            append_event(fields, session)
        session.commit()


def keep_after_rollback(fields: dict) -> None:
    """Mark an audit row (fields from `core.audit.event_fields`) to be written again in its own
    transaction if this request's unit of work rolls back. The caller has already written it in the
    current transaction, so a request that commits keeps exactly one copy."""
    g.setdefault("_durable_events", []).append(fields)


class PortalFlask(Flask):
    """Flask with the request frame's unit of work around the hooks and the view."""

    def preprocess_request(self):
        try:
            rv = super().preprocess_request()
        except BaseException:
            rollback_unit_of_work()
            raise
        if rv is not None:  # a hook answered (a redirect to sign-in, a 403 page)
            commit_unit_of_work()
        return rv

    def dispatch_request(self):
        try:
            rv = super().dispatch_request()
        except BaseException:
            rollback_unit_of_work()
            raise
        commit_unit_of_work()
        return rv


# --- same-origin check ---------------------------------------------------------------------------

def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def same_origin_request() -> bool:
    """True when the browser says the request comes from one of our own pages: its Origin header (sent by
    every current browser on a POST), else its Referer (our Referrer-Policy is same-origin), equals this
    site's origin (as the proxy forwards it, ProxyFix) or PUBLIC_BASE_URL's. Neither header → False.
    The CSRF defence for the few POSTs that carry no token (OWASP: verifying origin with standard headers)."""
    ours = {_origin(request.host_url)}
    if current_app.config.get("PUBLIC_BASE_URL"):
        ours.add(_origin(current_app.config["PUBLIC_BASE_URL"]))
    origin = request.headers.get("Origin")
    if origin:  # "null" (a sandboxed or privacy-stripped context) is never ours
        return origin.strip().lower() in ours
    referer = request.headers.get("Referer")
    return bool(referer) and _origin(referer) in ours


# --- form pages --------------------------------------------------------------------------------

def field_error(form, err: DomainError, default_field: str | None = None) -> bool:
    """Show a refused rule next to its field (appended to any errors it has); a flash when it names
    no field of this form. Returns True when it went on a field."""
    name = err.field or default_field
    field = getattr(form, name, None) if name else None
    if field is not None and hasattr(field, "errors"):
        field.errors = list(field.errors) + [err.message]
        return True
    flash(err.message, "error")
    return False


def button_action(form, action: Callable[[Any], Any], success: str, back: str, invalid: str | None = None):
    """A POST that is one button (or a small form) on another page: validate it (CSRF included), call the
    service with the form, flash its DomainError or `success`, and go `back`. `invalid`: the flash when
    the form does not validate (none by default)."""
    if form.validate_on_submit():
        try:
            action(form)
        except DomainError as err:
            flash(err.message, "error")
        else:
            flash(success, "success")
    elif invalid:
        flash(invalid, "error")
    return redirect(back)


def form_page(
    form,
    template: str,
    action: Callable[[Any], Any],
    *,
    success: str | None = None,
    redirect_to: str | Callable[[Any], str] | None = None,
    on_success: Callable[[Any], Any] | None = None,
    failure_status: int = 400,
    default_field: str | None = None,
    keep: tuple[str, ...] = (),
    context: Callable[[], dict] | dict | None = None,
):
    """The one skeleton of a form view.

    GET renders the form (200). A valid POST calls `action(form)` (a service call); its result goes to
    `on_success(result)` (which returns the response), else a flash of `success` and a redirect to
    `redirect_to` (a URL, or a function of the result). A DomainError re-renders the form with the
    error on its field (or flashed) and `failure_status`; an invalid form answers 400. Password fields
    are emptied on re-render unless named in `keep`. `context` adds template variables (a dict, or a
    function called only when the page is rendered).
    """
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                result = action(form)
            except DomainError as err:
                field_error(form, err, default_field)
                status = failure_status
            else:
                if on_success is not None:
                    return on_success(result)
                if success:
                    flash(success, "success")
                target = redirect_to(result) if callable(redirect_to) else redirect_to
                return redirect(target or request.path)
    for field in form:
        if field.type == "PasswordField" and field.name not in keep:
            field.data = ""
    extra = context() if callable(context) else (context or {})
    return render_template(template, form=form, **extra), status


# --- links ------------------------------------------------------------------------------------

def safe_next(target: str | None) -> str | None:
    """Only same-site absolute paths (SECURITY.md §21): no scheme, no host, no '//' or '\\'."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    return target


HOME_ENDPOINTS = {"patient": "main.dashboard"}
STAFF_HOME_ENDPOINT = "main.staff_home"


def home_for(user) -> str:
    return url_for(HOME_ENDPOINTS.get(str(user.role), STAFF_HOME_ENDPOINT))


def external_url(endpoint: str, **values) -> str:
    """An absolute link for emails and texts: PUBLIC_BASE_URL + the route's path. Works outside a
    request too (Celery tasks, the CLI)."""
    if has_request_context():
        path = url_for(endpoint, **values)
    else:
        path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def current_lang() -> str:
    from flask_babel import get_locale

    return str(get_locale() or "en")

"""Locale selection: the signed-in user's saved choice, else the session's, else the browser's."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from jinja2.ext import _make_new_gettext, _make_new_ngettext

from flask import current_app, request, session
from flask_babel import format_datetime
from flask_login import current_user


def select_locale() -> str:
    langs = current_app.config["LANGUAGES"]
    if getattr(current_user, "is_authenticated", False) and current_user.preferred_language in langs:
        return current_user.preferred_language
    chosen = session.get("lang")
    if chosen in langs:
        return chosen
    return request.accept_languages.best_match(langs) or current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    return current_app.config["CLINIC_TIMEZONE"]


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def local_datetime(value, fmt: str = "medium") -> str:
    """Render an aware UTC datetime in the clinic's zone (Flask-Babel's timezone selector)."""
    if value is None:
        return ""
    return format_datetime(value, fmt)


def role_label(role: str | None) -> str:
    from flask_babel import gettext as _

    return {
        "patient": _("Patient"),
        "clinician": _("Clinician"),
        "support": _("Support staff"),
        "billing": _("Billing staff"),
        "admin": _("Administrator"),
    }.get(role or "", role or "")


def category_label(category: str | None) -> str:
    from flask_babel import gettext as _

    return {
        "demographics": _("Contact and personal details"),
        "dashboard": _("Home page summary"),
        "access_history": _("Access history"),
    }.get(category or "", category or _("Record"))


def access_label(action: str | None, category: str | None) -> str:
    """Plain words for a staff action on a patient's record, for the patient's "who viewed" list."""
    from flask_babel import gettext as _

    if action == "patient.view":
        return _("Viewed: %(what)s", what=category_label(category))
    return {
        "account.activation.issued": _("Issued an activation code"),
        "account.unlocked": _("Unlocked your portal account"),
        "auth.mfa.reset": _("Reset your two-step verification"),
    }.get(action or "", _("Used your record"))


def local_date(value, fmt: str = "medium") -> str:
    from flask_babel import format_date

    return "" if value is None else format_date(value, fmt)


def _request_translations():
    from flask import g
    from flask_babel import get_translations

    tr = g.get("_portal_translations")
    if tr is None:
        tr = g._portal_translations = get_translations()
    return tr


def forget_request_translations() -> None:
    """Call around force_locale() blocks that render templates (emails in the recipient's language)."""
    from flask import g, has_app_context

    if has_app_context():
        g.pop("_portal_translations", None)


def install_template_gettext(jinja_env) -> None:
    """Replace Flask-Babel's Jinja gettext/ngettext with ones bound to the request's catalogue.

    Flask-Babel's callables look up the context, domain, locale and catalogue on every string (about
    40% of rendering a simple page); the catalogue cannot change within a request, so it is resolved
    once and kept on `g`. Same behaviour: Jinja's new-style autoescaping and %(name)s formatting."""
    gettext = _make_new_gettext(lambda s: _request_translations().ugettext(s))
    ngettext = _make_new_ngettext(lambda s, p, n: _request_translations().ungettext(s, p, n))
    jinja_env.globals.update(gettext=gettext, _=gettext, ngettext=ngettext)

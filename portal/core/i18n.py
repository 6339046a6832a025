"""Locale selection: the signed-in user's saved choice, else the session's, else the browser's."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app, request, session
from flask import g as _g
from flask_babel import format_datetime, get_locale
from flask_babel import get_translations as _get_translations
from flask_login import current_user


LANG_COOKIE_SECONDS = 365 * 24 * 3600
LANGUAGE_NAMES = {"en": "English", "es": "Español"}  # each language in its own words (config LANGUAGES)


def lang_cookie_name() -> str:
    """The language choice's own cookie (not the session: anonymous pages set no session cookie)."""
    return "__Host-portal_lang" if current_app.config["SESSION_COOKIE_NAME"].startswith("__Host-") \
        else "portal_lang"


def remember_language(lang: str) -> None:
    """Use `lang` from this request on, and set its cookie on the response (core/headers.apply_headers)."""
    from flask import g

    if lang in current_app.config["LANGUAGES"]:
        g.language_choice = lang
        forget_request_translations()


def set_language_cookie(response) -> None:
    from flask import g

    lang = g.get("language_choice")
    if lang and request.cookies.get(lang_cookie_name()) != lang:
        response.set_cookie(lang_cookie_name(), lang, max_age=LANG_COOKIE_SECONDS, path="/",
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")


def select_locale() -> str:
    from flask import g

    langs = current_app.config["LANGUAGES"]
    if getattr(current_user, "is_authenticated", False) and current_user.preferred_language in langs:
        return current_user.preferred_language
    for chosen in (g.get("language_choice"), request.cookies.get(lang_cookie_name()), session.get("lang")):
        if chosen in langs:
            return chosen
    return request.accept_languages.best_match(langs) or current_app.config["BABEL_DEFAULT_LOCALE"]


@lru_cache(maxsize=32)
def _format_locale(lang: str, region: str) -> str:
    from babel import Locale, UnknownLocaleError

    if not region:
        return lang
    try:
        Locale.parse(f"{lang}_{region}")
    except (UnknownLocaleError, ValueError):
        return lang
    return f"{lang}_{region}"


def format_locale(lang: str | None = None) -> str:
    """The locale numbers and money are written in: the reader's language as written in the clinic's region
    (config CLINIC_REGION), e.g. "es_US" ($150.00, 5.6) for a Spanish reader of a US clinic."""
    return _format_locale(lang or str(get_locale() or "en"), current_app.config.get("CLINIC_REGION") or "")


@lru_cache(maxsize=32)
def decimal_symbol(locale: str) -> str:
    from babel.numbers import get_decimal_symbol

    return get_decimal_symbol(locale)


def select_timezone() -> str:
    return current_app.config["CLINIC_TIMEZONE"]


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def local_datetime(value, fmt: str = "medium") -> str:
    """Render an aware UTC datetime in the clinic's zone (Flask-Babel's timezone selector)."""
    if value is None:
        return ""
    return format_datetime(value, fmt)


def local_date(value, fmt: str = "medium") -> str:
    from flask_babel import format_date

    return "" if value is None else format_date(value, fmt)


def _request_translations():
    # Called for every string a template translates: no imports or proxy lookups beyond the one `g` read.
    d = _g._get_current_object().__dict__
    tr = d.get("_portal_translations")
    if tr is None:
        tr = d["_portal_translations"] = _get_translations()
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
    once and kept on `g`. Installed through Jinja's public i18n API (new-style: autoescaping and
    %(name)s formatting)."""
    jinja_env.install_gettext_callables(
        lambda s: _request_translations().ugettext(s),
        lambda s, p, n: _request_translations().ungettext(s, p, n),
        newstyle=True,
    )

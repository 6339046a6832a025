"""Anonymous pages rendered once per language (PERFORMANCE.md G3, issue 12).

The sign-in form and the help page are the same for every visitor who is not signed in: only the language
and, on the sign-in form, the CSRF token differ. Rendering the full layout (header, navigation, footer, about
thirty translated strings) cost ~1 ms a request, three times a bare Jinja page of the same size. So
`@anonymous_page` keeps the rendered HTML per (path, language) in process memory and, on the next anonymous
visit, serves it with a fresh CSRF token put in place of the one it was rendered with.

Served from the cache only when nothing can make the page differ for this visitor:
- GET or HEAD, no query string (a `?next=` or `?reason=` page is rendered as usual);
- no session cookie (a signed-in visitor, a sign-in half done, a pending flash message all live there);
- the language is this request's own (`get_locale()`: the language cookie or Accept-Language).
Stored only when the view answered 200 with HTML and no header of its own, the session holds nothing but the
CSRF secret, and the cache is not full (bounded: at most `ANONYMOUS_PAGE_CACHE_SIZE` entries, the paths
being fixed routes). `ANONYMOUS_PAGE_CACHE = False` turns it off. Nothing in these pages comes from the
database (the clinic's contact details are configuration), so an entry never goes stale within a process;
a deploy restarts the workers.

The token is never shared: the cached copy holds a placeholder, and each visitor gets `generate_csrf()`
under their own secret (their `portal_csrf` cookie, or a new one), exactly as a render would.
"""

from __future__ import annotations

import functools
import threading

from flask import current_app, g, make_response, render_template, request, session
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf

from portal.core.session_cookie import CSRF_FIELD

_TOKEN = "\x00portal-csrf-token\x00"  # cannot occur in a rendered page: Jinja escapes nothing to NUL


class _Store:
    def __init__(self):
        self.pages: dict[tuple, object] = {}
        self.lock = threading.Lock()

    def clear(self):
        with self.lock:
            self.pages.clear()

    def keep(self, key, value) -> None:
        with self.lock:
            if len(self.pages) < current_app.config.get("ANONYMOUS_PAGE_CACHE_SIZE", 64):
                self.pages[key] = value


store = _Store()


def _anonymous_get() -> bool:
    """The store is on, this is a GET or HEAD, and the visitor has no session (no sign-in, no flash)."""
    return (current_app.config.get("ANONYMOUS_PAGE_CACHE", True) and request.method in ("GET", "HEAD")
            and not request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]))


def _eligible() -> bool:
    return _anonymous_get() and not request.query_string


def anonymous_page(view):
    """Decorate a public view whose anonymous GET page is the same for every visitor in one language."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not _eligible():
            return view(*args, **kwargs)
        key = (request.path, str(get_locale() or "en"))
        hit = store.pages.get(key)
        if hit is not None:
            html, mimetype, has_token = hit
            if has_token:
                html = html.replace(_TOKEN, generate_csrf())
            return make_response(html, 200, {"Content-Type": mimetype})
        rv = make_response(view(*args, **kwargs))
        _remember(key, rv)
        return rv

    return wrapper


_NEXT = "\x00portal-next\x00"


def render_not_found(template: str, **context):
    """The 404 page for an anonymous visitor, rendered once per language: only the language form's `next`
    (this request's path) differs, and it is put in escaped on the way out. Any other visitor, or the store
    turned off: rendered as usual."""
    from markupsafe import escape

    if not _anonymous_get():
        return render_template(template, **context)
    key = ("404", template, str(get_locale() or "en"))
    html = store.pages.get(key)
    if html is None:
        html = render_template(template, lang_next=_NEXT, **context)
        if not (set(session.keys()) - {CSRF_FIELD} or g.get(CSRF_FIELD)):  # nothing of this visitor's in it
            store.keep(key, html)
    return html.replace(_NEXT, str(escape(request.full_path)))


def _remember(key, response) -> None:
    if response.status_code != 200 or response.mimetype != "text/html" or response.direct_passthrough:
        return
    if set(response.headers.keys()) - {"Content-Type", "Content-Length"}:
        return  # the view set something of its own (a cookie, a policy): not the same for everyone
    if set(session.keys()) - {CSRF_FIELD}:
        return  # a flash message or other state for this visitor only
    html = response.get_data(as_text=True)
    token = g.get(CSRF_FIELD)  # Flask-WTF keeps the token it rendered in g
    has_token = bool(token) and token in html
    if has_token:
        html = html.replace(token, _TOKEN)
    store.keep(key, (html, response.headers["Content-Type"], has_token))

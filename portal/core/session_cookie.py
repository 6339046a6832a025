"""Anonymous pages without a session cookie (PERFORMANCE.md G3, issue 12).

Flask-WTF keeps a form's CSRF secret in the session, so every page with a form used to create, serialise,
sign and set a session cookie for anonymous visitors too. Here an anonymous visitor's only state, the CSRF
secret, travels in a small cookie of its own (`portal_csrf`, `__Host-portal_csrf` in production: HttpOnly,
SameSite=Lax, Secure there, no expiry) holding the raw random secret: no JSON, no zlib, no signature, and
nothing at all for pages that render no CSRF-protected form (help, errors, the language form, which is
Origin-checked instead: main/routes.py).

Flask-WTF is unchanged: the form still carries the *signed*, timed token it always did, validated against
the secret, which this interface hands it as `session["csrf_token"]`. Forging a token means knowing the
victim's secret (HttpOnly, never in a page) and SECRET_KEY. Planting a secret of the attacker's own needs
cookie injection, which the `__Host-` prefix blocks in production; the same was true of the session cookie.

As soon as the session holds anything else (a sign-in's `sid`, a flash message), the normal signed session
cookie is written, with the CSRF secret inside it as before, and the separate cookie is dropped.
"""

from __future__ import annotations

import re

from flask.sessions import SecureCookieSessionInterface

CSRF_FIELD = "csrf_token"  # Flask-WTF's WTF_CSRF_FIELD_NAME default: the session key of the secret
_SECRET = re.compile(r"^[0-9a-f]{40}$")  # Flask-WTF: sha1(os.urandom(64)).hexdigest()


def csrf_cookie_name(app) -> str:
    return "__Host-portal_csrf" if app.config["SESSION_COOKIE_NAME"].startswith("__Host-") else "portal_csrf"


class PortalSessionInterface(SecureCookieSessionInterface):
    def open_session(self, app, request):
        session = super().open_session(app, request)
        if session is not None and not session:
            secret = request.cookies.get(csrf_cookie_name(app), "")
            if _SECRET.match(secret):
                session[CSRF_FIELD] = secret
                session.modified = False  # read, not changed: nothing to write back
            request.environ["portal.csrf_cookie"] = secret
        return session

    def save_session(self, app, session, response):
        from flask import request

        name = csrf_cookie_name(app)
        had = request.environ.get("portal.csrf_cookie")
        only_csrf = bool(session) and set(session) == {CSRF_FIELD}
        if only_csrf:
            secret = session[CSRF_FIELD]
            if had != secret:
                response.set_cookie(name, secret, path="/", secure=self.get_cookie_secure(app), httponly=True,
                                    samesite="Lax")
            if request.cookies.get(self.get_cookie_name(app)):  # a session cookie from before: now empty
                response.delete_cookie(self.get_cookie_name(app), domain=self.get_cookie_domain(app),
                                       path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
                                       httponly=True, samesite=self.get_cookie_samesite(app))
            response.vary.add("Cookie")
            return None
        if had and session:  # the secret now lives in the signed session cookie
            response.delete_cookie(name, path="/", secure=self.get_cookie_secure(app), httponly=True,
                                   samesite="Lax")
        if session and not session.modified and had and set(session) != {CSRF_FIELD}:
            session.modified = True  # write the merged session once
        return super().save_session(app, session, response)

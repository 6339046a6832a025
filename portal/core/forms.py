"""Base form: Flask-WTF with WTForms' own messages translated, the catalogue loaded once per locale.

Flask-WTF re-reads WTForms' .mo file on every request (it caches on the request object), which
showed up as the largest single cost of rendering the sign-in form; the catalogues never change
while the process runs, so they are cached here per locale.
"""

from __future__ import annotations

from functools import lru_cache

from babel import support
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path


@lru_cache(maxsize=8)
def _wtforms_translations(locale: str):
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class _Translations:
    def gettext(self, string):
        return _wtforms_translations(str(get_locale() or "en")).ugettext(string)

    def ngettext(self, singular, plural, n):
        return _wtforms_translations(str(get_locale() or "en")).ungettext(singular, plural, n)


_TRANSLATIONS = _Translations()


class PortalForm(FlaskForm):
    class Meta(FlaskForm.Meta):
        def get_translations(self, form):
            return _TRANSLATIONS

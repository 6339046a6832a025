"""Base form: Flask-WTF with WTForms' own messages translated, the catalogue loaded once per locale,
and one rule every text field of every form keeps: no control characters (a NUL byte reaching
PostgreSQL is a 500; the rest are never typed by a person). Multi-line fields keep tab and line breaks.

Flask-WTF re-reads WTForms' .mo file on every request (it caches on the request object), which
showed up as the largest single cost of rendering the sign-in form; the catalogues never change
while the process runs, so they are cached here per locale.
"""

from __future__ import annotations

import re
from functools import lru_cache

from babel import support
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.i18n import messages_path

# C0 and C1 control characters and DEL (Unicode category Cc); multi-line fields keep \t \n \r.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_CHARACTER_MESSAGE = _l("Remove the invisible control characters from this field (they can come from "
                               "copying and pasting), then try again.")


def has_control_characters(value: str, multiline: bool = False) -> bool:
    return bool((_CONTROL_MULTILINE if multiline else _CONTROL).search(value))


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

    def validate(self, extra_validators=None) -> bool:
        """WTForms' validation, then: every text field (single-line, password, email, text area, hidden)
        refuses control characters with a field error, appended to any it has."""
        ok = super().validate(extra_validators)
        for field in self:
            values = [field.data] + list(getattr(field, "raw_data", None) or [])
            if isinstance(field, StringField) and any(
                    isinstance(v, str) and has_control_characters(v, isinstance(field, TextAreaField))
                    for v in values):
                field.errors = list(field.errors) + [str(CONTROL_CHARACTER_MESSAGE)]
                ok = False
        return ok


class EmptyForm(PortalForm):
    """CSRF-only form for buttons that POST."""

"""Forms of the site-wide pages."""

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, SelectField

from portal.core.forms import PortalForm


class LanguageForm(PortalForm):
    lang = SelectField(_l("Language"), choices=[("en", "English"), ("es", "Español")])
    next = HiddenField()

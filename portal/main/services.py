"""Site-wide rules: the language choice, and the home pages' cards."""

from __future__ import annotations

from flask_babel import gettext as _

from portal.core.audit import EventTag, record_event
from portal.core.errors import DomainError
from portal.core.registry import PATIENT_HOME, STAFF_HOME, home_cards
from portal.extensions import db
from portal.patients.services import own_patient

LANGUAGES = ("en", "es")


def set_language(user, lang: str) -> None:
    """Remember the language on the account of a signed-in user (the session keeps it for anyone)."""
    if lang not in LANGUAGES:
        raise DomainError(_("Choose English or Spanish."))
    if user is not None and getattr(user, "is_authenticated", False):
        user.preferred_language = lang
        record_event(EventTag.LANGUAGE_CHANGED, actor=user, detail={"lang": lang})
        db.session.flush()


def patient_home(user) -> list:
    """The patient's home page: each domain's card ("what needs your attention")."""
    patient = own_patient(user)  # 404 unless the account still has its record
    return home_cards.render_for(PATIENT_HOME, user, patient)


def staff_home(user) -> list:
    return home_cards.render_for(STAFF_HOME, user, None)

"""Texts patients send us: the registry other domains add their reply handlers to.

    from portal.notifications import inbound

    def confirm_or_reschedule(ctx: inbound.InboundContext) -> str | None:
        if ctx.keyword not in ("C", "R"):
            return None                     # not mine: the next handler (or the support queue) gets it
        ...                                 # act for ctx.patient (services; flush, never commit)
        with inbound.language(ctx):          # gettext now answers in the patient's language
            return confirmed_text()

    inbound.register("scheduling.confirm", confirm_or_reschedule, order=50)

Order of play for one text (portal.notifications.services.receive_text): the built-in keywords first
(STOP and the carrier opt-out words, START, HELP), then the handlers by `order` (then name), only for a
number that belongs to a patient (a confirmed mobile number). The first handler that returns a reply
wins; the reply is texted back as is (write it in ctx.language; no PHI: a text can be read by anyone
holding the phone). A handler runs inside a savepoint: if it raises, its writes are undone, the error
is logged and the next handler is asked. A text nobody takes is kept as an "unhandled" row, shown to
support staff and passed to services.route_unrecognised() — a patient's text is never dropped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Callable


@dataclass(frozen=True)
class InboundContext:
    patient: object  # portal.patients.models.Patient (handlers only run for known patients)
    user: object | None  # the patient's own portal account, if it is active
    phone: str  # the sender, E.164
    text: str  # the body as received (control characters removed)
    keyword: str  # text stripped and upper-cased
    received_at: datetime  # aware UTC
    language: str = "en"  # the patient's language: write replies in it
    inbound_id: int | None = None  # the InboundText row


Handler = Callable[[InboundContext], "str | None"]


@dataclass(frozen=True)
class _Registered:
    name: str
    handler: Handler
    order: int


_handlers: dict[str, _Registered] = {}


def register(name: str, handler: Handler, order: int = 100) -> None:
    """Add (or replace, by name) a handler. Handlers run in (order, name) order after STOP/START/HELP."""
    if not name or not callable(handler):
        raise ValueError("register(name, handler): a name and a callable")
    _handlers[name] = _Registered(name, handler, int(order))


def unregister(name: str) -> None:
    _handlers.pop(name, None)


def handlers() -> list[_Registered]:
    return sorted(_handlers.values(), key=lambda h: (h.order, h.name))


@contextlib.contextmanager
def language(ctx: InboundContext):
    """Write a reply in the patient's language: `with inbound.language(ctx):` then gettext as usual."""
    from flask_babel import force_locale

    from portal.core.i18n import forget_request_translations

    forget_request_translations()
    try:
        with force_locale(ctx.language or "en"):
            yield
    finally:
        forget_request_translations()

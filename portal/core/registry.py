"""What each domain contributes to the shared pages, without editing them: navigation links and the
cards on the patient's home page ("what needs your attention") and the staff home page.

A domain registers at import time (in its package's __init__.py or routes.py):

    nav.add("records.summary", label, order=20, show=for_patients)
    home_cards.add("results", order=10, audience=PATIENT_HOME, template="records/_card_results.html",
                   scalars=services.results_card_scalars,
                   build=lambda user, patient, values: {"new": values["new"]})

`build(user, patient)` returns the card's template context, or None when the card has nothing to show.
A card that only needs counts or single values gives `scalars(user, patient)` too: a dict of name ->
scalar subquery (`select(...).scalar_subquery()`, ownership scope included), or None; the registry puts
every card's scalars into ONE SELECT and then calls `build(user, patient, values)` with that card's
values by name. Otherwise keep `build` to one query: the patient dashboard, with every card showing data,
is held to <= 6 statements in all (PERFORMANCE.md G2; tests/main/test_dashboard.py). Registration is
idempotent by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from portal.core.roles import Role

PATIENT_HOME = "patient"
STAFF_HOME = "staff"


# --- who sees a link ---------------------------------------------------------------------------

def for_anonymous(user) -> bool:
    return not getattr(user, "is_authenticated", False)


def for_signed_in(user) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def for_everyone(user) -> bool:
    return True


def for_patients(user) -> bool:
    return for_signed_in(user) and str(user.role) == Role.PATIENT.value


def for_function(function: str) -> Callable[[object], bool]:
    """Shown to staff whose role may use the function (the same rule the routes enforce)."""
    from portal.core.access import STAFF_FUNCTIONS, may_use

    if function not in STAFF_FUNCTIONS:
        raise ValueError(f"unknown staff function {function!r}")
    return lambda user: may_use(user, function)


# --- navigation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object  # a lazy string
    order: int
    show: Callable[[object], bool]
    badge: Callable[[object], int | None] | None = None  # e.g. the unread-message count


class _Nav:
    def __init__(self):
        self._items: dict[str, NavItem] = {}
        self._sorted: tuple[NavItem, ...] | None = None  # sorted once, not on every page

    def add(self, endpoint: str, label, *, order: int, show: Callable[[object], bool],
            badge: Callable[[object], int | None] | None = None) -> None:
        self._items[endpoint] = NavItem(endpoint, label, order, show, badge)
        self._sorted = None

    def items_for(self, user) -> list[NavItem]:
        items = self._sorted
        if items is None:
            items = self._sorted = tuple(sorted(self._items.values(), key=lambda i: (i.order, i.endpoint)))
        return [i for i in items if i.show(user)]

    def endpoints(self) -> set[str]:
        return set(self._items)


nav = _Nav()


# --- home-page cards ----------------------------------------------------------------------------

@dataclass(frozen=True)
class HomeCard:
    key: str
    order: int
    audience: str  # PATIENT_HOME or STAFF_HOME
    template: str
    build: Callable[..., dict | None]
    show: Callable[[object], bool] = for_signed_in
    scalars: Callable[[object, object], dict | None] | None = None  # (user, patient) -> {name: scalar subquery}


@dataclass(frozen=True)
class RenderedCard:
    key: str
    template: str
    data: dict


class _Cards:
    def __init__(self):
        self._cards: dict[str, HomeCard] = {}
        self._sorted: tuple[HomeCard, ...] | None = None

    def add(self, key: str, *, order: int, audience: str, template: str, build: Callable[..., dict | None],
            show: Callable[[object], bool] = for_signed_in,
            scalars: Callable[[object, object], dict | None] | None = None) -> None:
        if audience not in (PATIENT_HOME, STAFF_HOME):
            raise ValueError(audience)
        self._cards[key] = HomeCard(key, order, audience, template, build, show, scalars)
        self._sorted = None

    def render_for(self, audience: str, user, patient=None) -> list[RenderedCard]:
        ordered = self._sorted
        if ordered is None:
            ordered = self._sorted = tuple(sorted(self._cards.values(), key=lambda c: (c.order, c.key)))
        cards = [c for c in ordered if c.audience == audience and c.show(user)]
        values = _scalar_values(cards, user, patient)
        out = []
        for card in cards:
            data = card.build(user, patient) if card.scalars is None else \
                card.build(user, patient, values.get(card.key, {}))
            if data is not None:
                out.append(RenderedCard(card.key, card.template, data))
        return out

    def keys(self) -> set[str]:
        return set(self._cards)


home_cards = _Cards()


def _scalar_values(cards, user, patient) -> dict[str, dict]:
    """Every card's scalar subqueries in one SELECT (one round trip for all the dashboard's counts):
    {card key: {name: value}}; a card whose `scalars` returned None gets {}."""
    wanted: list[tuple[str, str, object]] = []
    for card in cards:
        if card.scalars is not None:
            wanted.extend((card.key, name, sub) for name, sub in (card.scalars(user, patient) or {}).items())
    values: dict[str, dict] = {c.key: {} for c in cards if c.scalars is not None}
    if wanted:
        from sqlalchemy import select

        from portal.extensions import db

        row = db.session.execute(select(*(sub.label(f"v{i}") for i, (_k, _n, sub) in enumerate(wanted)))).one()
        for (key, name, _sub), value in zip(wanted, row):
            values[key][name] = value
    return values


# --- sections of the staff patient page (support/patients/<id>) ------------------------------------

@dataclass(frozen=True)
class PatientPanel:
    key: str
    order: int
    template: str
    build: Callable[[object, object], dict | None]  # (staff user, patient) -> context or None
    show: Callable[[object], bool]


class _Panels:
    """What each domain shows staff about one patient (notification channel, appointments, open
    threads, balance…) on the support patient page. `show` must follow the access table (e.g.
    for_function("schedule")); `build` must record its own audit event when it shows patient data."""

    def __init__(self):
        self._panels: dict[str, PatientPanel] = {}

    def add(self, key: str, *, order: int, template: str, build, show) -> None:
        self._panels[key] = PatientPanel(key, order, template, build, show)

    def render_for(self, user, patient) -> list[RenderedCard]:
        out = []
        for panel in sorted(self._panels.values(), key=lambda p: (p.order, p.key)):
            if panel.show(user):
                data = panel.build(user, patient)
                if data is not None:
                    out.append(RenderedCard(panel.key, panel.template, data))
        return out


staff_patient_panels = _Panels()


# --- references from one domain's object to another's ------------------------------------------

@dataclass(frozen=True)
class ResolvedRef:
    label: str  # what the object is, in words the patient understands (e.g. "Lipid panel, 3 May 2026")
    url: str  # the page that shows it to this user
    patient_id: int  # whose it is (callers check it matches the thread/statement's patient)


class _Refs:
    """A reference to another domain's object, written "kind:public_id" (e.g. "result:3f2a…",
    "medication:…", "statement:…"). The owning domain registers a resolver that loads the object
    through the ownership scope for `user` and returns a ResolvedRef, or None when the user may not
    see it. Messaging uses it to show what a question is about, without importing records or billing."""

    def __init__(self):
        self._resolvers: dict[str, Callable[[object, str], ResolvedRef | None]] = {}

    def add(self, kind: str, resolve: Callable[[object, str], ResolvedRef | None]) -> None:
        self._resolvers[kind] = resolve

    def kinds(self) -> set[str]:
        return set(self._resolvers)

    def resolve(self, ref: str | None, user) -> ResolvedRef | None:
        kind, _, public_id = (ref or "").partition(":")
        resolver = self._resolvers.get(kind)
        if resolver is None or not public_id or len(public_id) > 64:
            return None
        return resolver(user, public_id)


refs = _Refs()


def ask_about_url(ref: str | None = None, topic: str | None = None) -> str | None:
    """The link "Ask your care team about this" for an object of another domain: the messaging
    compose page (endpoint ``messaging.compose`` at ``/messages/new``) with ``?ref=kind:public_id``
    and an optional ``topic`` (e.g. "billing", "medical", "refill"). None while no messaging domain
    is registered, so records and billing can link to it without importing messaging."""
    from flask import current_app, url_for

    if "messaging.compose" not in current_app.view_functions:
        return None
    args = {k: v for k, v in (("ref", ref), ("topic", topic)) if v}
    return url_for("messaging.compose", **args)

"""Internationalisation: every Spanish catalog is complete, well formed, compiled, and actually used.

Catalogs: the core one (portal/translations) and one per domain that has portal/<domain>/translations
(scripts/i18n.py says which files each owns). How a missing translation is caught:
test_every_extracted_message_is_translated runs a fresh extraction of each catalog's files (the same
function scripts/i18n.py uses) into a temporary .pot, so a string someone just wrapped in _() is seen even
if nobody re-ran the script; every msgid found there must have a non-empty, non-fuzzy msgstr (all plural
forms) in that catalog's es/LC_MESSAGES/messages.po. The failure lists each missing msgid with its
file:line. Fix: `.venv/bin/python scripts/i18n.py [domain]`, translate the empty entries, run it again.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"

_spec = importlib.util.spec_from_file_location("portal_i18n_script", ROOT / "scripts" / "i18n.py")
i18n = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = i18n
_spec.loader.exec_module(i18n)

CATALOGS = i18n.catalogs()
CATALOG_IDS = [c.name for c in CATALOGS]

# A printf-style conversion as Python's % operator reads it (Flask-Babel and Jinja's newstyle
# gettext both apply `translation % variables`, so a stray "%" in a translation breaks the page).
FORMAT_SPEC = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?P<conv>[diouxXeEfFgGcrsa%])"
)


# --- helpers ----------------------------------------------------------------------------------

def load_po(catalog=None):
    path = (catalog or CATALOGS[0]).po("es")
    with path.open("rb") as fh:
        return read_po(fh, locale="es")


def is_translated(message) -> bool:
    if isinstance(message.string, (tuple, list)):
        return bool(message.string) and all(s.strip() for s in message.string)
    return bool(message.string and message.string.strip())


def where(message, limit: int = 3) -> str:
    locs = [f"{path}:{line}" for path, line in message.locations[:limit]]
    more = len(message.locations) - limit
    return ", ".join(locs) + (f" (+{more} more)" if more > 0 else "")


def _key(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def compiled_entries(catalog) -> dict:
    """msgid -> msgstr for what a .mo built from this catalog must contain (plurals as tuples)."""
    return {_key(m.id): _key(m.string) for m in catalog if m.id and not m.fuzzy and is_translated(m)}


def mo_entries(path: Path) -> dict:
    with path.open("rb") as fh:
        return {_key(m.id): _key(m.string) for m in read_mo(fh) if m.id}


def format_specs(text: str) -> tuple[list, bool]:
    """(sorted placeholders as (name, conversion), whether a stray '%' is left over)."""
    specs = sorted((m.group("name") or "", m.group("conv")) for m in FORMAT_SPEC.finditer(text))
    return specs, "%" in FORMAT_SPEC.sub("", text)


# --- fixtures ---------------------------------------------------------------------------------

def _compile(catalog_dir) -> Path:
    """Make sure es/LC_MESSAGES/messages.mo exists and matches the .po (it is build output, ignored
    by git): compile it here when it is missing or stale. Written atomically (safe under xdist)."""
    po_path = catalog_dir.po("es")
    mo_path = po_path.with_suffix(".mo")
    catalog = load_po(catalog_dir)
    wanted = compiled_entries(catalog)
    current = mo_entries(mo_path) if mo_path.exists() else None
    if current != wanted:
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, prefix=".messages-", suffix=".mo")
        try:
            with os.fdopen(fd, "wb") as fh:
                write_mo(fh, catalog, use_fuzzy=False)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600
            os.replace(tmp, mo_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return mo_path


@pytest.fixture(scope="session")
def compiled_catalog():
    for c in CATALOGS:
        _compile(c)
    return CATALOGS[0].po("es").with_suffix(".mo")


@pytest.fixture()
def spanish_app(app, compiled_catalog):
    """The app, with Flask-Babel's translation cache emptied in case an earlier test loaded the
    catalog before it was compiled."""
    from flask_babel import get_domain

    with app.test_request_context():
        get_domain().cache.clear()
    return app


_EXTRACTED: dict[str, object] = {}


def fresh_extraction(catalog, tmp_path_factory):
    """A new extraction of the catalog's files, independent of the committed messages.pot."""
    if catalog.name not in _EXTRACTED:
        out = tmp_path_factory.mktemp("i18n") / f"{catalog.name}.pot"
        i18n.extract(catalog, out)
        with out.open("rb") as fh:
            _EXTRACTED[catalog.name] = read_po(fh)
    return _EXTRACTED[catalog.name]


# --- (a) the compiled catalogs ----------------------------------------------------------------

@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_IDS)
def test_compiled_catalog_matches_the_po(catalog, compiled_catalog):
    assert mo_entries(catalog.po("es").with_suffix(".mo")) == compiled_entries(load_po(catalog))


def test_merged_catalogs_translate(compiled_catalog):
    translations = Translations.load(str(TRANSLATIONS), ["es"])
    for c in CATALOGS[1:]:
        translations.merge(Translations.load(str(c.directory), ["es"]))
    assert translations.gettext("Sign in") == "Iniciar sesión"
    assert translations.ngettext("%(num)d event", "%(num)d events", 1) == "%(num)d evento"
    assert translations.ngettext("%(num)d event", "%(num)d events", 3) == "%(num)d eventos"


def test_the_app_merges_every_catalog(app):
    from portal import translation_directories

    dirs = {Path(d).resolve() for d in translation_directories()}
    assert dirs == {c.directory.resolve() for c in CATALOGS}


@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_IDS)
def test_po_header_declares_spanish_plural_rule(catalog):
    po = load_po(catalog)
    assert str(po.locale) == "es"
    assert po.num_plurals == 2
    assert po.plural_expr.replace(" ", "") in {"(n!=1)", "n!=1"}


# --- (b) every extracted message is translated ------------------------------------------------

@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_IDS)
def test_every_extracted_message_is_translated(catalog, tmp_path_factory):
    extracted = fresh_extraction(catalog, tmp_path_factory)
    po = load_po(catalog)
    problems = []
    for message in extracted:
        if not message.id:
            continue
        label = f"{message.id!r}  [{where(message)}]"
        found = po.get(message.id, message.context)
        if found is None:
            problems.append(f"missing from {catalog.name} es messages.po: {label}")
        elif message.pluralizable != found.pluralizable or (
                message.pluralizable and tuple(message.id) != tuple(found.id)):
            problems.append(f"plural form differs from the source (re-run scripts/i18n.py): {label}")
        elif found.fuzzy:
            problems.append(f"fuzzy (needs review): {label}")
        elif not is_translated(found):
            problems.append(f"empty Spanish translation: {label}")
    assert not problems, (
        f"{len(problems)} message(s) lack a Spanish translation. Run `.venv/bin/python scripts/i18n.py "
        f"{catalog.name}`, translate {catalog.po('es').relative_to(ROOT)}, then run it again:\n  "
        + "\n  ".join(problems)
    )


def test_every_template_and_module_using_gettext_is_extracted(tmp_path_factory):
    """Guards babel.cfg, the catalog split and the extract options: Babel silently skips files its
    mapping or directory filter misses (by default every directory starting with "_", such as
    templates/_macros)."""
    extracted = {path for c in CATALOGS for message in fresh_extraction(c, tmp_path_factory)
                 for path, _line in message.locations}
    calls = re.compile(r"\b(?:_|_l|gettext|ngettext|lazy_gettext)\(\s*['\"]")
    sources = [p for p in (ROOT / "portal").rglob("*") if p.suffix in {".py", ".html", ".txt"} and p.is_file()]
    skipped = sorted(str(p.relative_to(ROOT)) for p in sources
                     if calls.search(p.read_text(encoding="utf-8", errors="replace"))
                     and str(p.relative_to(ROOT)) not in extracted)
    assert not skipped, "files with gettext calls that the extraction did not read:\n  " + "\n  ".join(skipped)


@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_IDS)
def test_no_fuzzy_or_empty_entries_in_po(catalog):
    bad = [f"{m.id!r} [{where(m)}]" for m in load_po(catalog) if m.id and (m.fuzzy or not is_translated(m))]
    assert not bad, f"fuzzy or empty entries in {catalog.name} es messages.po:\n  " + "\n  ".join(bad)


# --- (c) placeholders survive translation -----------------------------------------------------

@pytest.mark.parametrize("catalog", CATALOGS, ids=CATALOG_IDS)
def test_placeholders_match_the_source(catalog):
    problems = []
    for message in load_po(catalog):
        if not message.id or not is_translated(message):
            continue
        if message.pluralizable:
            singular, plural = message.id[0], message.id[1]
            pairs = [(singular if i == 0 else plural, s) for i, s in enumerate(message.string)]
        else:
            pairs = [(message.id, message.string)]
        for source, translated in pairs:
            want, source_stray = format_specs(source)
            got, stray = format_specs(translated)
            if got != want:
                problems.append(f"{source!r}: expected placeholders {want}, translation {translated!r} has {got}")
            elif stray and not source_stray:
                problems.append(f"{source!r}: stray '%' in translation {translated!r} (write %% for a literal %)")
    assert not problems, "placeholder mismatches:\n  " + "\n  ".join(problems)


# --- (d) the app renders and remembers the language -------------------------------------------

def html_lang(html: str) -> str:
    m = re.search(r"<html[^>]*\blang=\"([^\"]+)\"", html)
    assert m, "no <html lang> attribute"
    return m.group(1)


def test_accept_language_spanish_renders_spanish(spanish_app, client):
    html = client.get("/signin", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert html_lang(html) == "es"
    assert "Iniciar sesión" in html
    assert "¿Olvidó su contraseña?" in html
    assert "Forgot your password?" not in html
    # Language names are autonyms in every language.
    assert "English" in html and "Español" in html


def test_accept_language_english_renders_english(spanish_app, client):
    html = client.get("/signin", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert html_lang(html) == "en"
    assert "Forgot your password?" in html


def test_language_choice_persists_for_the_session(spanish_app, client, csrf_token):
    r = client.post("/language", data={"lang": "es", "next": "/signin"},
                    headers={"Accept-Language": "en", "Origin": "http://localhost"})
    assert r.status_code == 302 and r.location.endswith("/signin")

    for path in ("/signin", "/help"):  # later requests, browser still asking for English
        html = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert html_lang(html) == "es", path
    assert "Iniciar sesión" in client.get("/signin", headers={"Accept-Language": "en"}).get_data(as_text=True)

    client.post("/language", data={"lang": "en", "next": "/signin"}, headers={"Referer": "http://localhost/signin"})
    html = client.get("/signin", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert html_lang(html) == "en"


def test_language_post_without_origin_or_referer_changes_nothing(spanish_app, client):
    # /language takes no CSRF token: it is Origin-checked (tests/ops/test_anonymous_pages.py)
    assert client.post("/language", data={"lang": "es", "next": "/signin"}).status_code == 400
    html = client.get("/signin", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html_lang(html) == "en"


def test_unknown_language_is_ignored(spanish_app, client, csrf_token):
    client.post("/language", data={"lang": "xx", "next": "/signin"}, headers={"Origin": "http://localhost"})
    html = client.get("/signin", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html_lang(html) == "en"


def test_signed_in_choice_is_stored_on_the_account(spanish_app, db, login_as, csrf_token):
    from portal.accounts.models import User
    from tests.conftest import sign_in_session

    client, user = login_as("patient", preferred_language="en")
    r = client.post("/language", data={"lang": "es", "next": "/help"}, headers={"Origin": "http://localhost"})
    assert r.status_code == 302

    db.session.expire_all()
    assert db.session.get(User, user.id).preferred_language == "es"

    # A new session on another device (no session choice, browser in English) follows the account.
    other = spanish_app.test_client()
    sign_in_session(other, db.session.get(User, user.id))
    html = other.get("/help", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html_lang(html) == "es"
    assert "Cerrar sesión" in html


def test_email_is_rendered_in_the_recipients_language(spanish_app):
    from portal.core.mail import build_message

    with spanish_app.test_request_context(headers={"Accept-Language": "en"}):
        es = build_message("p@test.example", "activation", "es", code="ABCD-EFGH-JKLM",
                           link="https://portal.example/activate", days=14)
        en = build_message("p@test.example", "activation", "en", code="ABCD-EFGH-JKLM",
                           link="https://portal.example/activate", days=14)
    assert es["Subject"] == "Su código de activación del portal del paciente"
    body = es.get_content()
    assert "Abra https://portal.example/activate e ingrese el código" in body and "durante 14 días" in body
    assert en["Subject"] == "Your patient portal activation code"

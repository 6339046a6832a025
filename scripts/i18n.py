"""Extract, update and compile the portal's message catalogs (English is the source language).

    .venv/bin/python scripts/i18n.py            # every catalog
    .venv/bin/python scripts/i18n.py records    # one domain's catalog
    LOCALES="es fr" .venv/bin/python scripts/i18n.py

Each domain package may own its catalog: `portal/<domain>/translations/` holds the strings of
`portal/<domain>/**.py` and `portal/templates/<domain>/**`, so domains built side by side never edit
the same .po file. The core catalog `portal/translations/` holds everything else. Flask-Babel merges
them all (portal.translation_directories()).

Steps per catalog: extract (babel.cfg's methods, restricted to the catalog's files) into its
messages.pot, sorted by file; update each locale's messages.po (init when missing) with fuzzy matching
OFF, so a new or changed English string arrives untranslated, never guessed; compile to .mo (build
output, ignored by git). Then translate the new empty msgstr entries; tests/test_i18n.py fails while any
is missing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"
KEYWORDS = ["_l", "lazy_gettext", "lazy_ngettext:1,2"]  # plus Babel's defaults (_, gettext, ngettext…)
IGNORE_DIRS = ".* __pycache__ node_modules"  # not Babel's default ".* _*", which skips templates/_macros
WIDTH = 100


@dataclass(frozen=True)
class Catalog:
    name: str  # "core" or the domain package name
    directory: Path  # …/translations

    @property
    def pot(self) -> Path:
        return self.directory / "messages.pot"

    def po(self, locale: str) -> Path:
        return self.directory / locale / "LC_MESSAGES" / "messages.po"


def catalogs() -> list[Catalog]:
    found = [Catalog("core", PORTAL / "translations")]
    for d in sorted(PORTAL.iterdir()):
        if (d / "translations").is_dir() and (d / "__init__.py").exists():
            found.append(Catalog(d.name, d / "translations"))
    return found


def domain_names() -> list[str]:
    return [c.name for c in catalogs() if c.name != "core"]


def mapping_text(catalog: Catalog) -> str:
    """Babel's mapping for one catalog: a domain's own files, or core = everything else."""
    if catalog.name != "core":
        d = catalog.name
        return (f"[python: portal/{d}/**.py]\n"
                f"[jinja2: portal/templates/{d}/**.html]\nencoding = utf-8\n"
                f"[jinja2: portal/templates/{d}/**.txt]\nencoding = utf-8\n")
    ignores = "".join(f"[ignore: portal/{d}/**]\n[ignore: portal/templates/{d}/**]\n" for d in domain_names())
    return ignores + (ROOT / "babel.cfg").read_text()


def extract_args(catalog: Catalog, mapping_file: str, output: str) -> list[str]:
    args = ["extract", f"--mapping-file={mapping_file}", f"--ignore-dirs={IGNORE_DIRS}", "--sort-by-file",
            "--project=Clinic portal", "--version=1.0", "--copyright-holder=Clinic portal", f"--width={WIDTH}",
            f"--output-file={output}"]
    for kw in KEYWORDS:
        args += ["-k", kw]
    return args + ["."]


def _babel(args: list[str]) -> None:
    from babel.messages.frontend import CommandLineInterface

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        CommandLineInterface().run(["pybabel", *args])
    finally:
        os.chdir(cwd)


def extract(catalog: Catalog, output: Path) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as fh:
        fh.write(mapping_text(catalog))
        mapping = fh.name
    try:
        _babel(extract_args(catalog, mapping, str(output)))
    finally:
        os.unlink(mapping)


def update(catalog: Catalog, locales: list[str]) -> None:
    catalog.directory.mkdir(parents=True, exist_ok=True)
    extract(catalog, catalog.pot)
    for lang in locales:
        if catalog.po(lang).exists():
            _babel(["update", f"--input-file={catalog.pot}", f"--output-dir={catalog.directory}", f"--locale={lang}",
                    "--no-fuzzy-matching", "--ignore-obsolete", f"--width={WIDTH}"])
        else:
            _babel(["init", f"--input-file={catalog.pot}", f"--output-dir={catalog.directory}", f"--locale={lang}",
                    f"--width={WIDTH}"])
    _babel(["compile", f"--directory={catalog.directory}", "--statistics"])


def compile_all() -> None:
    for catalog in catalogs():
        _babel(["compile", f"--directory={catalog.directory}"])


def main(argv: list[str]) -> int:
    locales = os.environ.get("LOCALES", "es").split()
    if argv[:1] == ["--compile"]:
        compile_all()
        return 0
    wanted = set(argv)
    for catalog in catalogs():
        if not wanted or catalog.name in wanted:
            print(f"== {catalog.name}: {catalog.directory.relative_to(ROOT)}")
            update(catalog, locales)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# Extract, update and compile the portal's message catalogs.
#
#   VENV=/path/to/venv bash scripts/i18n.sh      # default VENV=.venv (the Makefile's)
#   PYBABEL=/usr/bin/pybabel bash scripts/i18n.sh
#   LOCALES="es fr" bash scripts/i18n.sh         # default: es
#
# English is the source language. Steps:
#   1. extract every _() / gettext / ngettext / _l / lazy_gettext call from portal/**.py and the
#      Jinja templates (babel.cfg) into portal/translations/messages.pot, sorted by file;
#   2. update each locale's messages.po from it (init when it does not exist yet), with fuzzy
#      matching OFF: a new or changed English string arrives untranslated, never guessed;
#   3. compile the .po files to .mo (the .mo files are build output, ignored by git).
# Then translate the new empty msgstr entries; tests/test_i18n.py fails while any is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-.venv}"
PYBABEL="${PYBABEL:-$VENV/bin/pybabel}"
LOCALES="${LOCALES:-es}"
TRANSLATIONS="portal/translations"
POT="$TRANSLATIONS/messages.pot"
WIDTH=100

if ! command -v "$PYBABEL" >/dev/null 2>&1; then
    echo "i18n.sh: pybabel not found at '$PYBABEL' (set VENV=path/to/venv or PYBABEL=path/to/pybabel)" >&2
    exit 1
fi

# Babel's default keywords already include _, gettext and ngettext (and pgettext, npgettext, N_).
# --ignore-dirs replaces Babel's default ".* _*", which would silently skip portal/templates/_macros.
# tests/test_i18n.py reads the -k and --ignore-dirs options below: keep one "-k NAME" per line.
"$PYBABEL" extract \
    --mapping-file=babel.cfg \
    --ignore-dirs=".* __pycache__ node_modules" \
    -k _l \
    -k lazy_gettext \
    -k lazy_ngettext:1,2 \
    --sort-by-file \
    --project="Clinic portal" \
    --version="1.0" \
    --copyright-holder="Clinic portal" \
    --width="$WIDTH" \
    --output-file="$POT" \
    .

for lang in $LOCALES; do
    po="$TRANSLATIONS/$lang/LC_MESSAGES/messages.po"
    if [ -f "$po" ]; then
        "$PYBABEL" update --input-file="$POT" --output-dir="$TRANSLATIONS" --locale="$lang" \
            --no-fuzzy-matching --ignore-obsolete --width="$WIDTH"
    else
        "$PYBABEL" init --input-file="$POT" --output-dir="$TRANSLATIONS" --locale="$lang" --width="$WIDTH"
    fi
done

"$PYBABEL" compile --directory="$TRANSLATIONS" --statistics

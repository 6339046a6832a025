#!/usr/bin/env bash
# Extract, update and compile the portal's message catalogs.
#
#   VENV=/path/to/venv bash scripts/i18n.sh      # default VENV=.venv
#   PYBABEL=/usr/bin/pybabel bash scripts/i18n.sh
#
# English is the source language; every locale in LOCALES gets a catalog under
# portal/translations/<lang>/LC_MESSAGES/messages.po (created with `init` if missing).
# Fuzzy matching is off: a changed string must be translated again, never guessed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-.venv}"
PYBABEL="${PYBABEL:-$VENV/bin/pybabel}"
LOCALES="${LOCALES:-es}"
TRANSLATIONS="portal/translations"
POT="$TRANSLATIONS/messages.pot"

if [ ! -x "$PYBABEL" ] && ! command -v "$PYBABEL" >/dev/null 2>&1; then
    echo "i18n.sh: pybabel not found at '$PYBABEL' (set VENV or PYBABEL)" >&2
    exit 1
fi

"$PYBABEL" extract \
    --mapping-file=babel.cfg \
    --keywords="_ gettext ngettext:1,2 lazy_gettext _l lazy_ngettext:1,2" \
    --sort-by-file \
    --project="Clinic portal" \
    --copyright-holder="Clinic portal" \
    --msgid-bugs-address="" \
    --width=100 \
    --output-file="$POT" \
    .

for lang in $LOCALES; do
    po="$TRANSLATIONS/$lang/LC_MESSAGES/messages.po"
    if [ -f "$po" ]; then
        "$PYBABEL" update --input-file="$POT" --output-dir="$TRANSLATIONS" --locale="$lang" \
            --no-fuzzy-matching --ignore-obsolete --width=100
    else
        "$PYBABEL" init --input-file="$POT" --output-dir="$TRANSLATIONS" --locale="$lang" --width=100
    fi
done

"$PYBABEL" compile --directory="$TRANSLATIONS" --statistics

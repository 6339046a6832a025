#!/usr/bin/env bash
# Extract, update and compile every message catalog (see scripts/i18n.py for how catalogs are split).
#   VENV=/path/to/venv bash scripts/i18n.sh [domain ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
exec "$VENV/bin/python" "$ROOT/scripts/i18n.py" "$@"

#!/usr/bin/env bash
# Backup and restore drill: dump the portal's PostgreSQL database, restore it into a scratch database,
# and prove the copy is whole (same row count in every table, audit chain intact), then drop the copy.
#
#   DATABASE_URL=postgresql://user@host:5432/portal scripts/backup-drill.sh [DUMP_DIR]
#
# Run it monthly (docs/operations.md). The dump holds PHI: DUMP_DIR must be on encrypted storage; the
# dump is deleted at the end unless KEEP_DUMP=1. Needs pg_dump/pg_restore/psql of the server's major
# version and the project's virtualenv (for `flask audit verify`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL (the database to back up)}"
dump_dir=${1:-$(mktemp -d)}
libpq_url=${DATABASE_URL/postgresql+psycopg:/postgresql:}
scratch="portal_restore_drill_$$"
admin_url="${libpq_url%/*}/postgres"
restored_url="${libpq_url%/*}/$scratch"
dump="$dump_dir/portal-$(date -u +%Y%m%dT%H%M%SZ).dump"

cleanup() {
  psql "$admin_url" -q -c "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)" >/dev/null 2>&1 || true
  [ "${KEEP_DUMP:-0}" = 1 ] || rm -f "$dump"
}
trap cleanup EXIT

start=$(date +%s)
pg_dump --format=custom --no-owner --file="$dump" "$libpq_url"
echo "dump: $(du -h "$dump" | cut -f1) in $(( $(date +%s) - start )) s"

psql "$admin_url" -q -c "CREATE DATABASE \"$scratch\"" >/dev/null
start=$(date +%s)
pg_restore --no-owner --exit-on-error --dbname="$restored_url" "$dump"
echo "restore: $(( $(date +%s) - start )) s"

count_rows() {
  psql "$1" -At -c "SELECT table_name FROM information_schema.tables WHERE table_schema='public' AND table_type='BASE TABLE' ORDER BY 1" |
    while read -r t; do echo "$t $(psql "$1" -At -c "SELECT count(*) FROM \"$t\"")"; done
}
if ! diff <(count_rows "$libpq_url") <(count_rows "$restored_url") >/dev/null; then
  echo "restore drill FAILED: row counts differ"; diff <(count_rows "$libpq_url") <(count_rows "$restored_url") || true
  exit 1
fi
echo "row counts match in $(count_rows "$restored_url" | wc -l) tables"

DATABASE_URL="${restored_url/postgresql:/postgresql+psycopg:}" FLASK_APP=wsgi.py .venv/bin/flask audit verify
echo "restore drill passed"

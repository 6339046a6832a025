"""G8 (PERFORMANCE.md): no page scans a large table from end to end. The demo clinic is loaded; a patient and
each staff role walk every page reachable by links from their home page (two clicks deep, downloads left
out); every SELECT those pages ran is explained, and none may read a large table without an index.

PostgreSQL is asked with `enable_seqscan = off`: the planner then takes any index that can serve the query,
so a `Seq Scan` left in the plan means no index can. SQLite's `EXPLAIN QUERY PLAN` says `SCAN <table>`
(without `USING INDEX`) for the same thing. Scans bounded by a LIMIT right above them (the newest 50
audit rows in id order) are fine; a LIMIT above a sort or an aggregate bounds nothing. Nested loops only on
PostgreSQL: the test's tables are tiny, and a real clinic's statistics turn a join from a small table (pool
members) into index lookups where tiny tables give a merge join. Small set-up tables (pools, providers, visit types, locations)
may be scanned: they hold tens of rows at any clinic size."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from sqlalchemy import event, select, text

from portal.accounts.models import User
from portal.extensions import db as _db
from tests.conftest import sign_in_session

# Tables that grow with patients or with time.
LARGE = {"users", "user_sessions", "patients", "access_grants", "audit_events", "notices", "billing_accounts",
         "billing_entries", "billing_statements", "billing_payment_attempts", "msg_threads", "msg_messages",
         "msg_attachments", "record_items", "record_encounters", "record_documents", "record_reports",
         "record_observations", "record_result_comments", "record_result_questions", "record_refill_requests",
         "appointments", "sched_slot_claims", "appointment_reminders", "appointment_requests",
         "appointment_checkins", "waitlist_entries", "notification_settings", "passkeys", "recovery_codes"}
SKIP = re.compile(r"\.(pdf|ics|png|jpe?g|heic|txt|csv)$|/download|/attachments?/|/signout|/export|/static/")
MAX_PAGES = 45
BLOCKING = {"Sort", "Incremental Sort", "Aggregate", "Hash", "Materialize", "SetOp", "WindowAgg", "Unique",
            "Gather Merge"}


def _walk(client, start: str) -> list[str]:
    seen, queue, visited = {start}, [(start, 0)], []
    while queue and len(visited) < MAX_PAGES:
        path, depth = queue.pop(0)
        r = client.get(path)
        visited.append(f"{path} {r.status_code}")
        if r.status_code in (301, 302, 303) and depth < 2:
            loc = urlsplit(r.headers["Location"])
            link = loc.path + (f"?{loc.query}" if loc.query else "")
            if not loc.netloc and link not in seen and not SKIP.search(loc.path):
                seen.add(link)
                queue.append((link, depth))
            continue
        if r.status_code != 200 or not r.mimetype == "text/html" or depth >= 2:
            continue
        for href in re.findall(r'href="([^"#]+)"', r.get_data(as_text=True)):
            parts = urlsplit(href.replace("&amp;", "&"))
            if parts.netloc or not parts.path.startswith("/") or SKIP.search(parts.path):
                continue
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if link not in seen:
                seen.add(link)
                queue.append((link, depth + 1))
    return visited


def _unbounded_scans(node: dict, limited: bool = False) -> list[str]:
    """Large tables this plan reads without an index condition: a Seq Scan, or an index scanned end to end
    (no Index Cond), unless a Limit above it bounds the rows read (ORDER BY id DESC LIMIT 50 is fine)."""
    kind = node.get("Node Type")
    if kind in BLOCKING:
        limited = False  # a Limit above a sort, an aggregate or a hash does not bound what is read below it
    limited = limited or kind == "Limit"
    found = []
    table = node.get("Relation Name")
    if table in LARGE and not limited:
        if kind == "Seq Scan" or (kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node):
            found.append(f"{table} ({kind})")
    for child in node.get("Plans", []):
        found += _unbounded_scans(child, limited)
    return found


def _full_scans(conn, statement: str, params) -> list[str]:
    if conn.dialect.name == "postgresql":
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return _unbounded_scans(plan[0]["Plan"])
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    found = []
    for row in rows:
        detail = str(row[-1])
        m = re.match(r"SCAN (?:TABLE )?(\w+)", detail)
        if m and m.group(1) in LARGE and "USING" not in detail:
            table = m.group(1)
            flat = " ".join(statement.split())
            if " WHERE " not in flat and re.search(rf"ORDER BY {table}\.id( DESC)? LIMIT", flat):
                continue  # rowid order, bounded by the LIMIT (the newest audit rows): SQLite says SCAN for it
            found.append(table)
    return found


def test_no_page_reads_a_large_table_without_an_index(app, db):
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    db.session.commit()
    statements: dict[str, object] = {}

    def capture(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and statement not in statements:
            statements[statement] = params

    walked = []
    engine = _db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        users = [db.session.execute(select(User).where(User.email == "gladys@patient.example")).scalar_one()]
        for role in ("support", "clinician", "billing", "admin"):
            users.append(db.session.execute(select(User).where(User.role == role).order_by(User.id).limit(1))
                         .scalar_one())
        for user in users:
            client = app.test_client()
            sign_in_session(client, user)
            walked += _walk(client, "/")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert sum(" 200" in w for w in walked) >= 60, walked  # the walk did reach the domains' pages
    assert any("/record/results/" in w for w in walked) and any("/inbox/" in w for w in walked), walked
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        # Nested loops only: with the test's tiny tables the planner would otherwise merge- or hash-join a
        # big table end to end where a real clinic's statistics give index lookups (pool members -> users).
        for setting in ("enable_seqscan", "enable_mergejoin", "enable_hashjoin"):
            conn.execute(text(f"SET LOCAL {setting} = off"))
    offenders = {}
    for statement, params in statements.items():
        if "pg_" in statement or "sqlite_" in statement:
            continue
        scans = _full_scans(conn, statement, params)
        if scans:
            offenders[" ".join(statement.split())[:3000]] = scans
    assert not offenders, "\n\n".join(f"{v}: {k}" for k, v in offenders.items())

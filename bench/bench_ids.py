"""A helper for domains' bench seed steps (bench/registry.py): COPY with explicit ids."""


def next_ids(ctx, table: str, n: int) -> int:
    """Reserve n ids of table's serial sequence (so a COPY can carry ids other rows refer to); returns the
    first. The sequence ends past them, so later inserts by the application do not collide."""
    with ctx.conn.cursor() as cur:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + %s) - %s + 1", (n, n))
        return cur.fetchone()[0]

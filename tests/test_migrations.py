"""Migrations produce exactly the models' schema (no autogenerate diff), on SQLite and PostgreSQL,
and downgrade cleanly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from config import TestingConfig
from tests.conftest import create_pg_database, drop_pg_database

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def _fresh_app(url):
    from portal import create_app

    return create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url)


def _assert_no_drift(url):
    from portal.extensions import db

    app = _fresh_app(url)
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        engine = create_engine(url)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            diff = compare_metadata(ctx, db.metadata)
            tables = set(inspect(conn).get_table_names())
        engine.dispose()
        assert diff == [], f"models and migrations differ: {diff}"
        assert {"users", "patients", "audit_events", "user_sessions", "access_grants"} <= tables
        downgrade(directory=MIGRATIONS, revision="base")
        engine = create_engine(url)
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        engine.dispose()
        assert left == set()
        db.engine.dispose()


def test_sqlite_migrations_match_models(tmp_path):
    _assert_no_drift(f"sqlite:///{tmp_path / 'mig.sqlite3'}")


def test_postgresql_migrations_match_models(pg_admin_url):
    name = f"portal_mig_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(name)
    try:
        _assert_no_drift(url)
    finally:
        drop_pg_database(name)


def test_revision_files_are_date_prefixed():
    files = [p.name for p in Path(MIGRATIONS, "versions").glob("*.py")]
    assert files, "no migrations"
    for name in files:
        assert name[:8].isdigit() and name[8] == "_", name


@pytest.mark.parametrize("table", ["audit_events"])
def test_append_only_trigger_exists_after_upgrade(app, db, table):
    from sqlalchemy import text

    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        names = db.session.execute(text("select name from sqlite_master where type='trigger'")).scalars().all()
    else:
        names = db.session.execute(text("select tgname from pg_trigger where not tgisinternal")).scalars().all()
    assert "audit_events_no_update" in names


def test_exactly_one_head_and_date_prefixed_revisions():
    """Domains built side by side must merge their migrations: one head, and every file date-prefixed."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    migrations = Path(__file__).resolve().parents[1] / "migrations"
    cfg = Config(str(migrations / "alembic.ini"))
    cfg.set_main_option("script_location", str(migrations))
    script = ScriptDirectory.from_config(cfg)
    heads = script.get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: add a merge revision (flask db merge heads)"
    undated = [p.name for p in (migrations / "versions").glob("*.py") if not p.name[:8].isdigit()]
    assert not undated, f"migration files without a YYYYMMDD_ prefix: {undated}"

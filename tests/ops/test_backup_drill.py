"""scripts/backup-drill.sh: pg_dump → pg_restore into a scratch database → same row counts, audit chain
intact (docs/operations.md, issue 12). Runs against a real PostgreSQL database of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.conftest import create_pg_database, drop_pg_database, unavailable

ROOT = Path(__file__).resolve().parents[2]


def test_backup_and_restore_drill(pg_admin_url, tmp_path):
    for tool in ("pg_dump", "pg_restore", "psql"):
        if not shutil.which(tool):
            unavailable(tool, "PostgreSQL client tools not installed")
    name = f"portal_drill_{uuid.uuid4().hex[:8]}"
    url = create_pg_database(name)
    try:
        env = dict(os.environ, DATABASE_URL=url, PORTAL_ENV="development", PYTHONPATH=str(ROOT),
                   FLASK_APP="wsgi.py", MAIL_BACKEND="file", MAIL_FILE_DIR=str(tmp_path / "mail"))
        env.pop("TEST_DATABASE_URL", None)
        flask = str(ROOT / ".venv" / "bin" / "flask")
        steps = [(["db", "upgrade"], None)] + [
            (["users", "create-staff", f"drill{i}@clinic.example", "--role", "admin", "--password-stdin"],
             "drill restore lantern 2026\n") for i in range(3)]  # rows in several tables, audit rows too
        for args, stdin in steps:
            out = subprocess.run([flask, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                                 input=stdin)
            assert out.returncode == 0, out.stderr[-2000:]
        out = subprocess.run([str(ROOT / "scripts" / "backup-drill.sh"), str(tmp_path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert "row counts match" in out.stdout and "chain intact" in out.stdout
        assert "restore drill passed" in out.stdout
        assert not list(tmp_path.glob("*.dump"))  # the PHI-bearing dump is removed
    finally:
        drop_pg_database(name)

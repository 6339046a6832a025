"""Eager Celery tasks run in the calling app's context. Core fix: Celery builds a task's class once per
process, from the AppContextTask of the app created last before that, so with several apps in one process
(as in the tests: the session app, committing_app, the e2e live server) an eager task pushed another
app's context, whose database is another one. Checked in a fresh interpreter, where the order of app
creation and task evaluation is known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
from config import TestingConfig
from portal import create_app
first = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
second = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
from flask import current_app
from portal.notifications.tasks import sweep
seen = []
sweep.run = lambda: seen.append(current_app._get_current_object())
for target in (first, second):
    with target.app_context():
        sweep.apply()
print(seen[0] is first, seen[1] is second)
"""


def test_an_eager_task_runs_in_the_callers_app():
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=repo, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo), "PORTAL_ENV": "testing"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]

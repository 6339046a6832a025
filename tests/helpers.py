"""Small helpers for driving the real forms in tests."""

from __future__ import annotations

import re
import time

import pyotp


_CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"|value="([^"]+)"[^>]*?name="csrf_token"')


def form_token(html: str) -> str:
    """The CSRF token of the page's hidden csrf_token input."""
    m = _CSRF_INPUT.search(html)
    assert m, "no hidden csrf_token input in the page"
    return m.group(1) or m.group(2)


def post_form(client, path: str, data: dict, get_path: str | None = None, **kw):
    """GET the form page (for its CSRF token), then POST the data with the token; `kw` (headers,
    environ_base…) go with both requests, as from one browser."""
    html = client.get(get_path or path, **kw).get_data(as_text=True)
    return client.post(path, data={"csrf_token": form_token(html), **data}, **kw)


def totp_now(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(at or time.time())


def sign_in(client, email: str, password: str, secret: str | None = None, at: float | None = None):
    """Run the real two-step sign-in; returns the last response."""
    r = post_form(client, "/signin", {"email": email, "password": password})
    if secret is None or r.status_code != 302 or not r.location.endswith("/signin/verify"):
        return r
    return post_form(client, "/signin/verify", {"code": totp_now(secret, at)})


def start_app_script(tmp_path, name: str, source: str):
    """Run `source` (a script that builds its own app, e.g. a Celery worker with non-eager settings that must
    stay out of the test process) in a subprocess from the repository root; stdout and stderr piped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / f"{name}.py"
    script.write_text(source)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PORTAL_ENV="testing", PYTHONPATH=str(repo))
    env.pop("TEST_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, str(script)], env=env, cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def stop_process(proc) -> None:
    import subprocess

    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()

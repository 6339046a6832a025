"""`make run`'s local Stripe: start localstripe (scripts/localstripe_server.py: 127.0.0.1 only, state in
memory) on 127.0.0.1:8420 in the background unless it is already answering, and register the portal's
webhook with it (POST /_config/webhooks/portal with the URL and the development secret).

    python scripts/localstripe_dev.py start   # idempotent; PORT (default 5000) is the portal's port
    python scripts/localstripe_dev.py stop

Skipped when STRIPE_API_BASE points elsewhere (real Stripe keys from the environment).
Development only: localstripe is GPL-3.0 and installed from requirements-dev.txt, never shipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
PID_FILE = INSTANCE / "localstripe.pid"
DEFAULT_BASE = "http://127.0.0.1:8420"


def _base() -> str | None:
    base = os.environ.get("STRIPE_API_BASE", DEFAULT_BASE)
    host = urlsplit(base).hostname
    return base if host in ("127.0.0.1", "localhost") else None


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/js.stripe.com/v3/", timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def start() -> int:
    base = _base()
    if base is None:
        print("STRIPE_API_BASE is not local: not starting localstripe")
        return 0
    if not _up(base):
        INSTANCE.mkdir(exist_ok=True)
        port = urlsplit(base).port or 8420
        log = open(INSTANCE / "localstripe.log", "ab")
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "localstripe_server.py"), "--port", str(port)],
                                stdout=log, stderr=log, start_new_session=True)
        PID_FILE.write_text(str(proc.pid))
        deadline = time.monotonic() + 20
        while not _up(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                print("localstripe did not start; see instance/localstripe.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"localstripe (local Stripe fake) on {base}, pid {proc.pid}")
    portal = os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_localstripe_dev_only")
    requests.post(base + "/_config/webhooks/portal", json={"url": portal.rstrip("/") + "/billing/stripe/webhook",
                                                            "secret": secret}, timeout=5).raise_for_status()
    return 0


def stop() -> int:
    if PID_FILE.exists():
        try:
            os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        PID_FILE.unlink()
    return 0


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]())

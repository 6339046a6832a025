"""localstripe for the tests: one process per test session on a free port (bound to 127.0.0.1, state in
memory: scripts/localstripe_server.py), emptied with DELETE /_config/data where a test needs a clean slate.
Never a mock: the Stripe library talks HTTP to it like it would to Stripe."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import free_port, unavailable

REPO = Path(__file__).resolve().parents[2]
PK = "pk_test_portal_tests"
SK = "sk_test_portal_tests"
WHSEC = "whsec_portal_tests_only"


class LocalStripe:
    def __init__(self, state: Path | None = None):
        """`state`: keep localstripe's data in this file, so that `stop()` then `start()` (an outage) loses
        nothing, as with real Stripe."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state
        self.start()

    def start(self) -> None:
        extra = ["--state", str(self.state)] if self.state else []
        self.proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "localstripe_server.py"),
                                      "--port", str(self.port), "--quiet", *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONPATH=str(REPO)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/js.stripe.com/v3/", timeout=0.5)
                return
            except requests.RequestException:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        unavailable("localstripe", "did not start")

    def config(self) -> dict:
        return {"STRIPE_API_BASE": self.url, "STRIPE_SECRET_KEY": SK, "STRIPE_PUBLISHABLE_KEY": PK,
                "STRIPE_WEBHOOK_SECRET": WHSEC, "STRIPE_JS_URL": None, "STRIPE_MAX_NETWORK_RETRIES": 0}

    def flush(self) -> None:
        requests.delete(self.url + "/_config/data", timeout=5)

    def register_webhook(self, url: str, secret: str = WHSEC) -> None:
        requests.post(self.url + "/_config/webhooks/portal", json={"url": url, "secret": secret},
                      timeout=5).raise_for_status()

    # what Stripe.js would do in the browser -------------------------------------------------------
    def confirm_setup(self, client_secret: str, number: str, *, authenticate: bool = True) -> str:
        """confirmCardSetup with a card number (as the Card Element sends it); returns the PaymentMethod."""
        seti = client_secret.split("_secret_")[0]
        body = {"key": PK, "client_secret": client_secret, "use_stripe_sdk": True,
                "payment_method_data": {"type": "card", "card": {"number": number, "exp_month": "12",
                                                                  "exp_year": "2034", "cvc": "123"}}}
        r = requests.post(f"{self.url}/v1/setup_intents/{seti}/confirm", json=body, timeout=5)
        data = r.json()
        if data.get("status") == "requires_action" and authenticate:
            data = requests.post(f"{self.url}/v1/setup_intents/{seti}/confirm",
                                 json={"key": PK, "client_secret": client_secret}, timeout=5).json()
        return data["payment_method"]

    def authenticate(self, client_secret: str, success: bool) -> dict:
        """confirmCardPayment's 3-D Secure dialog: complete (True) or fail (False)."""
        pi = client_secret.split("_secret_")[0]
        return requests.post(f"{self.url}/v1/payment_intents/{pi}/_authenticate?success={str(success).lower()}",
                             json={"key": PK, "client_secret": client_secret}, timeout=5).json()

    def get(self, path: str, **params) -> dict:
        return requests.get(self.url + path, params=params, auth=(SK, ""), timeout=5).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

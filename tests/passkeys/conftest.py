from __future__ import annotations

import re

import pytest

from tests.helpers import form_token
from tests.passkeys.authenticator import SoftAuthenticator

RP_ID = "portal.clinic.example"
ORIGIN = "https://portal.clinic.example"


@pytest.fixture()
def rp(app, monkeypatch):
    """The relying party as a real deployment has it: PUBLIC_BASE_URL's host name and origin."""
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", ORIGIN)
    monkeypatch.setitem(app.config, "WEBAUTHN_RP_ID", None)
    monkeypatch.setitem(app.config, "WEBAUTHN_ORIGIN", None)
    return RP_ID, ORIGIN


@pytest.fixture()
def authenticator(rp):
    return lambda **kw: SoftAuthenticator(RP_ID, ORIGIN, **kw)


def page_token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    return m.group(1) if m else form_token(html)


def options(client, path: str, page: str) -> dict:
    """POST for a ceremony's options, as passkeys.js does (CSRF header from the page's meta tag)."""
    r = client.post(path, headers={"X-CSRFToken": page_token(client, page), "Accept": "application/json"})
    assert r.status_code == 200, (r.status_code, r.get_data(as_text=True)[:300])
    return r.get_json()


def submit(client, path: str, page: str, credential: str, **fields):
    """The form post passkeys.js makes with the browser's answer."""
    return client.post(path, data={"csrf_token": page_token(client, page), "credential": credential, **fields})

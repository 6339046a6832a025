"""Field encryption (Fernet; MultiFernet so keys rotate) and keyed hashes for one-time codes."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, MultiFernet
from flask import current_app


def _fernet() -> MultiFernet:
    app = current_app._get_current_object()
    cached = app.extensions.get("portal_fernet")
    if cached is None:
        keys = [k.strip() for k in app.config["FIELD_ENCRYPTION_KEYS"].split(",") if k.strip()]
        cached = MultiFernet([Fernet(k.encode()) for k in keys])
        app.extensions["portal_fernet"] = cached
    return cached


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt under the newest key (first in FIELD_ENCRYPTION_KEYS)."""
    return _fernet().rotate(token.encode()).decode()


def keyed_hash(value: str, purpose: str) -> str:
    """HMAC-SHA256 with the app secret: for high-entropy one-time codes and session tokens."""
    key = hashlib.sha256((current_app.config["SECRET_KEY"] + "|" + purpose).encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

"""A software WebAuthn authenticator for tests: a real EC P-256 key (cryptography), "none"
attestation, real clientDataJSON and authenticatorData, real ECDSA signatures — no mocks. It answers
the options our server makes exactly as a browser + platform authenticator would (WebAuthn L3 §6.1,
§6.5.4, §8.7), and lets a test bend one thing at a time (origin, RP id, user verification, counter)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(self, rp_id: str, origin: str, *, backup_eligible: bool = True, counts: bool = True):
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.backup_eligible = backup_eligible
        self.counts = counts  # synced passkeys often keep the counter at 0
        self.sign_count = 0
        self.user_handle: bytes | None = None

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, uv: bool, extra: int = 0) -> int:
        flags = UP | extra
        if uv:
            flags |= UV
        if self.backup_eligible:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: str | dict, *, origin: str | None = None, rp_id: str | None = None,
               uv: bool = True) -> str:
        """navigator.credentials.create(): the JSON a browser posts back (the form's `credential`)."""
        opts = json.loads(options) if isinstance(options, str) else options
        self.user_handle = unb64url(opts["user"]["id"])
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([self._flags(uv, AT)])
                     + self.sign_count.to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({"id": self.id, "rawId": self.id, "type": "public-key",
                           "authenticatorAttachment": "platform", "clientExtensionResults": {},
                           "response": {"clientDataJSON": b64url(client_data),
                                        "attestationObject": b64url(attestation), "transports": ["internal"]}})

    def get(self, options: str | dict, *, origin: str | None = None, rp_id: str | None = None, uv: bool = True,
            counter: int | None = None, user_handle: bytes | None = None) -> str:
        """navigator.credentials.get(): an assertion signed with this authenticator's private key."""
        opts = json.loads(options) if isinstance(options, str) else options
        if counter is not None:
            self.sign_count = counter
        elif self.counts:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([self._flags(uv)])
                     + self.sign_count.to_bytes(4, "big"))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        handle = user_handle if user_handle is not None else self.user_handle
        response = {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature)}
        if handle is not None:
            response["userHandle"] = b64url(handle)
        return json.dumps({"id": self.id, "rawId": self.id, "type": "public-key", "authenticatorAttachment": "platform",
                           "clientExtensionResults": {}, "response": response})

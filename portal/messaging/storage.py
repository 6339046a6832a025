"""Where attachment bytes live: a small interface with one implementation, a folder outside the web
root (default `instance/uploads/messages`, or MESSAGING_STORAGE_DIR). Names are random hex chosen
here, never the upload's name, and a read resolves the path and refuses anything outside the folder.

Several app nodes share attachments by mounting one shared volume (NFS, EFS, a Kubernetes
ReadWriteMany volume) at MESSAGING_STORAGE_DIR on every node; an object store (S3 and friends) is a
second class with the same three methods, chosen by configuration (docs/messaging.md)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import current_app


class LocalFolderStorage:
    def __init__(self, root: Path):
        self.root = Path(root)

    def save(self, data: bytes, extension: str) -> str:
        name = f"{secrets.token_hex(20)}.{extension}"
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (name + ".part")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, self.root / name)  # never a half-written file under the final name
        return name

    def path(self, name: str) -> Path:
        root = self.root.resolve()
        path = (root / name).resolve()
        if path.parent != root or not path.is_file():
            raise FileNotFoundError(name)
        return path

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass


def storage() -> LocalFolderStorage:
    configured = current_app.config.get("MESSAGING_STORAGE_DIR") or os.environ.get("MESSAGING_STORAGE_DIR")
    if configured:
        return LocalFolderStorage(Path(configured))
    from config import INSTANCE_DIR

    return LocalFolderStorage(INSTANCE_DIR / "uploads" / "messages")

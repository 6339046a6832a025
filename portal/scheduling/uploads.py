"""Insurance-card uploads: the type is decided by the content (Pillow must open and verify the image;
a PDF must start with its signature), never by the name or the browser's claim. Files are stored
outside the web root under a random name and served only through an access-checked view as an
attachment with nosniff. Archives, SVG, HTML and anything else are refused."""

from __future__ import annotations

import hashlib
import io
import secrets
from pathlib import Path

from flask_babel import gettext as _

from portal.core.errors import DomainError
from portal.scheduling.settings import setting, upload_dir

IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "application/pdf": "pdf"}
MAX_PIXELS = 40_000_000


def sniff(data: bytes) -> str | None:
    """The content type by content, or None when it is not an accepted kind."""
    if data.startswith(b"%PDF-"):
        return "application/pdf" if b"%%EOF" in data[-2048:] else None
    from PIL import Image, UnidentifiedImageError  # only where a file is uploaded (G9)

    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = img.format
            if img.width * img.height > MAX_PIXELS:
                return None
            img.verify()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    return IMAGE_TYPES.get(kind)


def store(data: bytes, field: str = "front") -> tuple[str, str, int, str]:
    """Check and write one upload; returns (stored name, content type, size, sha256)."""
    limit = int(setting("SCHEDULING_UPLOAD_MAX_BYTES"))
    if not data:
        raise DomainError(_("Choose a photo of your card."), field=field)
    if len(data) > limit:
        raise DomainError(_("The file is too large (at most %(mb)s MB).", mb=limit // (1024 * 1024)), field=field)
    content_type = sniff(data)
    if content_type is None:
        raise DomainError(_("Upload a photo (JPEG, PNG or WebP) or a PDF of your card."), field=field)
    name = f"{secrets.token_hex(20)}.{EXTENSIONS[content_type]}"
    folder = upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return name, content_type, len(data), hashlib.sha256(data).hexdigest()


def path_of(stored_name: str) -> Path:
    folder = upload_dir().resolve()
    path = (folder / stored_name).resolve()
    if path.parent != folder:
        raise FileNotFoundError(stored_name)
    return path

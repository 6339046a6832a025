"""Attachment checks: PDF, JPEG, PNG or HEIC, decided by the content (magic bytes and a parse), never
by the name or the browser's claim; size limits; names cleaned of paths and tricks. Anything else
(archives, SVG, HTML, scripts, polyglots that carry markup, empty files) is refused with a clear
message. Stored through storage.py; served only by access-checked views as attachments with nosniff."""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

from portal.core.errors import DomainError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 3
MAX_PIXELS = 60_000_000
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/heic": "heic"}
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
# markup a browser (or a PDF viewer's JS engine) might act on, looked for in the head and tail
_MARKUP = re.compile(rb"<\s*(script|html|svg|iframe|object|embed|body|meta|!doctype)\b|javascript:", re.I)


@dataclass(frozen=True)
class Checked:
    data: bytes
    filename: str
    content_type: str
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)


def max_bytes() -> int:
    return int(current_app.config.get("MESSAGING_ATTACHMENT_MAX_BYTES")
               or os.environ.get("MESSAGING_ATTACHMENT_MAX_BYTES") or DEFAULT_MAX_BYTES)


def _image_type(data: bytes, fmt: str) -> bool:
    from PIL import Image, UnidentifiedImageError  # only where a file is attached (G9: not in every web worker)

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != fmt or img.width * img.height > MAX_PIXELS:
                return False
            img.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


def sniff(data: bytes) -> str | None:
    """The content type by content, or None when it is not an accepted kind (or smells of markup)."""
    head, tail = data[:4096], data[-4096:]
    if _MARKUP.search(head) or _MARKUP.search(tail):
        return None
    if data.startswith(b"%PDF-"):
        return "application/pdf" if b"%%EOF" in data[-1024:] else None
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg" if data.rstrip(b"\x00").endswith(b"\xff\xd9") and _image_type(data, "JPEG") else None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png" if data.endswith(b"IEND\xaeB`\x82") and _image_type(data, "PNG") else None
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in HEIC_BRANDS:
        return "image/heic"
    return None


def clean_filename(name: str | None, content_type: str) -> str:
    """A display name: no directories (either slash), no control/bidi characters, a safe character set,
    and the extension of the type we found (never the one it came with)."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]", "", name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = re.sub(r"[^\w\- ()]+", "_", stem, flags=re.UNICODE).strip(" ._")[:80]
    return f"{stem or 'attachment'}.{EXTENSIONS[content_type]}"


def check(data: bytes, filename: str | None, field: str = "attachments") -> Checked:
    limit = max_bytes()
    if not data:
        raise DomainError(_("“%(name)s” is empty. Choose the file again.", name=(filename or "?")[:60]), field=field)
    if len(data) > limit:
        raise DomainError(_("“%(name)s” is too large: files can be at most %(mb)s MB.",
                            name=(filename or "?")[:60], mb=limit // (1024 * 1024)), field=field)
    content_type = sniff(data)
    if content_type is None:
        raise DomainError(_("“%(name)s” is not a PDF, JPEG, PNG or HEIC file we can accept. "
                            "Your message has not been sent; it is kept below.", name=(filename or "?")[:60]),
                          field=field)
    return Checked(data, clean_filename(filename, content_type), content_type, hashlib.sha256(data).hexdigest())


def read_uploads(files) -> list[tuple[bytes, str]]:
    """(bytes, name) of the files a form sent (empty file inputs are skipped); at most MAX_FILES, each
    read up to the limit + 1 byte so an oversized one is refused without holding it all."""
    out = []
    limit = max_bytes()
    for f in files or []:
        if f is None or not getattr(f, "filename", None):
            continue
        out.append((f.read(limit + 1), f.filename))
    if len(out) > MAX_FILES:
        raise DomainError(_("Attach at most %(n)s files to one message.", n=MAX_FILES), field="attachments")
    return out

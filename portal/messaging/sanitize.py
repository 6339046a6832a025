"""Message bodies: plain text with light formatting in, a tiny HTML allow-list out (bleach).

On the way in (`to_html`): unicode tricks are removed (bidi overrides and isolates, zero-width
characters, control characters); any HTML the writer typed is cleaned against the allow-list (tags
outside it are stripped, their text kept and escaped); blank lines make paragraphs, lines starting
with "- " or "* " make a list, "1. " a numbered list; bare web addresses become links; every link is
http(s) or mailto only and gets rel="nofollow noopener noreferrer". On the way out (`render`) the
stored HTML is cleaned again with the same allow-list, so a row written by anything else (an old
version, a direct insert) cannot carry markup past it. Templates use `|msg_body`, never `|safe`.
"""

from __future__ import annotations

import html
import re
import unicodedata

import bleach
from bleach.linkifier import Linker
from markupsafe import Markup

ALLOWED_TAGS = frozenset({"p", "br", "ul", "ol", "li", "a", "strong", "em", "b", "i"})
ALLOWED_ATTRIBUTES = {"a": ["href", "rel"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})
REL = "nofollow noopener noreferrer"

# bidi embeddings/overrides/isolates, zero-width and word-joiner characters, BOM
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BULLET = re.compile(r"^\s*[-*•]\s+")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+")
_BLOCK_START = re.compile(r"^\s*<(p|ul|ol)\b", re.I)


def clean_text(value: str | None, *, multiline: bool = True) -> str:
    """Normalise typed text: NFC, no invisible or control characters, \\n line ends, trimmed."""
    value = unicodedata.normalize("NFC", value or "")
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _INVISIBLE.sub("", value)
    value = _CONTROL.sub("", value.replace("\t", " ") if multiline else value.replace("\n", " "))
    if not multiline:
        value = value.replace("\n", " ")
    return value.strip()


def _set_rel(attrs, new=False):
    href_key = (None, "href")
    href = attrs.get(href_key, "")
    if not re.match(r"^(https?:|mailto:)", href, re.I):
        attrs.pop(href_key, None)
        return attrs
    attrs[(None, "rel")] = REL
    attrs.pop((None, "target"), None)
    return attrs


_linker = Linker(callbacks=[_set_rel], skip_tags={"a"}, parse_email=False)


def _clean(fragment: str) -> str:
    return bleach.clean(fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS,
                        strip=True, strip_comments=True)


def _blocks(text: str) -> str:
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines:
            continue
        if all(_BULLET.match(ln) for ln in lines):
            out.append("<ul>" + "".join(f"<li>{_BULLET.sub('', ln)}</li>" for ln in lines) + "</ul>")
        elif all(_NUMBERED.match(ln) for ln in lines):
            out.append("<ol>" + "".join(f"<li>{_NUMBERED.sub('', ln)}</li>" for ln in lines) + "</ol>")
        elif _BLOCK_START.match(lines[0]):
            out.append("\n".join(lines))
        else:
            out.append("<p>" + "<br>".join(ln.strip() for ln in lines) + "</p>")
    return "".join(out)


def to_html(raw: str | None) -> str:
    """Typed text (with at most the allow-listed tags) → the HTML stored in Message.body_html."""
    text = clean_text(raw)
    cleaned = _clean(text)  # disallowed markup stripped or escaped before any structure is added
    structured = _blocks(cleaned)
    linked = _linker.linkify(structured)
    final = _clean(linked)
    # a link bleach kept must carry the rel (clean() may drop our rel if it did not come from linkify)
    return _enforce_rel(final)


def _enforce_rel(fragment: str) -> str:
    return re.sub(r"<a\b([^>]*)>", lambda m: _rewrite_anchor(m.group(1)), fragment)


def _rewrite_anchor(attrs: str) -> str:
    href = re.search(r'href="([^"]*)"', attrs)
    if href is None:
        return "<a>"
    return f'<a href="{href.group(1)}" rel="{REL}">'


def to_text(body_html: str) -> str:
    """Plain text of stored HTML (for previews and search)."""
    stripped = bleach.clean(re.sub(r"</(p|li)>|<br>", " ", body_html or ""), tags=set(), strip=True)
    return re.sub(r"\s+", " ", html.unescape(stripped)).strip()


def preview(body_html: str, length: int = 140) -> str:
    text = to_text(body_html)
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def render(body_html: str | None) -> Markup:
    """The template filter `msg_body`: stored HTML cleaned again with the allow-list, then marked safe."""
    return Markup(_enforce_rel(_clean(body_html or "")))

"""Statement PDFs, rendered on demand with WeasyPrint.

The `url_fetcher` refuses everything but our own static files (CSS, the logo, fonts) read from disk: no
network, no file:// outside portal/static, so a URL in a description fetches nothing. Output is a tagged
PDF (pdf_tags) with the document language from <html lang>; HarfBuzz subsetting is used when
libharfbuzz-subset is installed (checked once, logged when missing). Long statements paginate with a
repeated table header and "page N of M" in the footer (CSS paged media in statement_pdf.css).
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path

from flask import render_template

log = logging.getLogger("portal.billing")
STATIC_DIR = (Path(__file__).resolve().parent.parent / "static").resolve()
ALLOWED_DIRS = ("css/", "img/", "fonts/")
STATIC_PREFIX = "portal-static:/"


def harfbuzz_subset_available() -> bool:
    try:
        from weasyprint.text.ffi import harfbuzz_subset

        return harfbuzz_subset is not None
    except Exception:  # pragma: no cover - depends on the machine
        return False


_checked = False


def _check_once() -> None:
    global _checked
    if not _checked:
        _checked = True
        if not harfbuzz_subset_available():
            log.warning("libharfbuzz-subset is missing: statement PDFs will render 2-4x slower "
                        "(install libharfbuzz-subset0)")


def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnlyFetcher(URLFetcher):
        """Serves portal-static:/css/…, /img/…, /fonts/… from portal/static; refuses anything else."""

        def fetch(self, url, headers=None):
            if not url.startswith(STATIC_PREFIX):
                raise ValueError(f"refused URL: {url[:80]}")
            rel = url[len(STATIC_PREFIX):].split("?", 1)[0].split("#", 1)[0].lstrip("/")
            if not rel.startswith(ALLOWED_DIRS):
                raise ValueError("refused path")
            path = (STATIC_DIR / rel).resolve()
            if not path.is_relative_to(STATIC_DIR) or not path.is_file():
                raise ValueError("refused path")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})

    return StaticOnlyFetcher


def url_fetcher():
    return _fetcher_class()(timeout=1)


def write_pdf(html: str) -> bytes:
    """HTML → PDF bytes with our fetcher, tagged, subset fonts."""
    from weasyprint import HTML

    _check_once()
    return HTML(string=html, base_url=STATIC_PREFIX, url_fetcher=url_fetcher()).write_pdf(pdf_tags=True)


def statement_html(ctx: dict, lang: str) -> str:
    return render_template("billing/pdf/statement.html", lang=lang, **ctx)


def render_statement(ctx: dict, lang: str) -> bytes:
    return write_pdf(statement_html(ctx, lang))

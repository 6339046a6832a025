"""The record as a PDF (WeasyPrint). The URL fetcher refuses everything but our own static files
(read from disk, never over the network), so nothing in a stored document can make the server fetch a
URL or read another file."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import current_app
from weasyprint.urls import URLFetcher, URLFetcherResponse

BASE = "https://portal.invalid/static/"  # relative links in the template resolve under this


class StaticOnlyFetcher(URLFetcher):
    def __init__(self, static_folder: str):
        super().__init__(allowed_protocols=("https",), allow_redirects=False)
        self.static = Path(static_folder).resolve()
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        path = None
        if url.startswith(BASE):
            path = (self.static / url[len(BASE):].split("?")[0].split("#")[0]).resolve()
        if path is None or self.static not in path.parents or not path.is_file():
            self.refused.append(url[:200])
            raise ValueError(f"refused: {url[:80]}")
        return URLFetcherResponse(url, path.read_bytes(),
                                  {"Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream"})


def render_pdf(html: str) -> bytes:
    import logging

    from weasyprint import HTML

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per page otherwise

    fetcher = StaticOnlyFetcher(current_app.static_folder)
    return HTML(string=html, base_url=BASE, url_fetcher=fetcher).write_pdf()

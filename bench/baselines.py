"""Bare Flask baselines for bench/run.py, served by gunicorn exactly like the portal.

    gunicorn -w 2 --worker-class sync --pythonpath bench baselines:hello_app
    gunicorn -w 2 --worker-class sync --pythonpath bench baselines:page_app

hello_app  GET /hello            -> "Hello, World!" (13 bytes, text/html). The floor for /healthz (G4).
page_app   GET /page/<nbytes>    -> a Flask + Jinja page of exactly <nbytes> bytes: a base layout
                                    ({% extends %}, a nav loop) and a results table rendered from rows held
                                    in memory (autoescaped), padded with an HTML comment to the exact size.
                                    No database, no session, no cookie. The floor for pages without
                                    database work (G3), sized to each portal page that run.py captures.

pdf_app    GET /pdf/<name>          -> weasyprint.HTML(string=$BENCH_PDF_DIR/<name>.html).write_pdf() (tagged, as the
                                    portal's), the floor for PDF endpoints (G5); load.py writes the HTML the
                                    portal renders, its static URLs pointed at the files on disk.

Nothing here imports the portal: these are what "Flask + Jinja with nothing else" costs on this machine.
"""

from __future__ import annotations

import os
import random

from flask import Flask, abort, render_template

HERE = os.path.dirname(os.path.abspath(__file__))

# --- (a) hello --------------------------------------------------------------------------------

hello_app = Flask("bare_hello")


@hello_app.get("/hello")
def hello():
    return "Hello, World!"


# --- (b) Flask + Jinja page of a given size ------------------------------------------------------

page_app = Flask("bare_page", template_folder=os.path.join(HERE, "templates"))

_rng = random.Random(20260101)
_TESTS = [("Hemoglobin A1c", "%", "< 5.7"), ("LDL cholesterol", "mg/dL", "< 100"),
          ("Sodium", "mmol/L", "135-145"), ("Potassium", "mmol/L", "3.5-5.1"),
          ("Creatinine", "mg/dL", "0.6-1.3"), ("TSH", "mIU/L", "0.4-4.0"),
          ("Hemoglobin", "g/dL", "12.0-16.0"), ("Glucose (fasting)", "mg/dL", "70-99")]
ROWS = [
    {
        "date": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "name": name,
        "value": f"{_rng.uniform(0.5, 150):.1f}",
        "unit": unit,
        "range": ref,  # '<' is escaped on output, as in a real page
        "flag": _rng.choice(["", "", "", "H", "L"]),
    }
    for i in range(4000)
    for name, unit, ref in [_TESTS[i % len(_TESTS)]]
]
CONTEXT = {
    "site_name": "Bare Clinic",
    "year": 2026,
    "nav": [{"href": f"/section/{n}", "label": label}
            for n, label in enumerate(["Home", "Results", "Messages", "Appointments", "Billing", "Help"])],
}
_layout: dict[int, tuple[int, str]] = {}  # nbytes -> (rows, pad), found on the first request for a size


def _render(n_rows: int, pad: str) -> str:
    return render_template("bare_page.html", rows=ROWS[:n_rows], pad=pad, **CONTEXT)


def _size(n_rows: int) -> int:
    return len(_render(n_rows, "").encode())


def _fit(nbytes: int) -> tuple[int, str]:
    """Most table rows that fit in nbytes, then a comment pad to hit nbytes exactly."""
    if _size(0) > nbytes:
        abort(416, f"smallest bare page is {_size(0)} bytes")
    lo, hi = 0, len(ROWS)  # invariant: _size(lo) <= nbytes
    if _size(hi) <= nbytes:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _size(mid) <= nbytes:
            lo = mid
        else:
            hi = mid
    return lo, "x" * (nbytes - _size(lo))


@page_app.get("/page/<int:nbytes>")
def page(nbytes: int):
    if nbytes not in _layout:
        _layout[nbytes] = _fit(nbytes)
    n_rows, pad = _layout[nbytes]
    return _render(n_rows, pad)



# --- (c) bare WeasyPrint render of a given HTML ----------------------------------------------------

pdf_app = Flask("bare_pdf")
_html: dict[str, str] = {}


@pdf_app.get("/pdf/<name>")
def pdf(name: str):
    from weasyprint import HTML

    if name not in _html:
        if not name.isalnum():
            abort(404)
        with open(os.path.join(os.environ["BENCH_PDF_DIR"], f"{name}.html"), encoding="utf-8") as f:
            _html[name] = f.read()
    body = HTML(string=_html[name], base_url=os.environ["BENCH_PDF_DIR"] + "/").write_pdf(pdf_tags=True)
    return body, 200, {"Content-Type": "application/pdf"}

"""The bench registry: what `bench/load.py` measures and what `bench/seed.py` inserts, contributed by each
domain in a few lines (docs: bench/README.md, "Adding a domain's pages").

A domain's `bench/<domain>.py` defines

    def bench_register(reg):
        reg.scenario("lab list", "/records/labs", role="patient", baseline="orm", goal="G1", min_ratio=0.50)
        reg.scenario("lab detail", lambda ctx: f"/records/labs/{ctx.first('SELECT public_id FROM ...')}",
                     role="patient", baseline="orm")
        reg.seed_step("records", seed_records, order=30)   # def seed_records(ctx): bulk-insert per patient

and nothing else is edited: load.py and seed.py import every bench/*.py that defines `bench_register`.

Scenario fields
- `path`: a string, or a function of the SeedContext returning one (ids that only exist after seeding).
- `role`: None (anonymous), "patient" (a seeded patient's bench session) or a staff role ("clinician",
  "support", "billing", "admin").
- `baseline`: "hello" (13 bytes), "jinja" (bare Flask + Jinja page of the portal page's byte size, data in
  memory) or "orm" (the same, from one SQLAlchemy 2 ORM query: newest 50 of the patient's rows, 2-table join,
  on the same PostgreSQL database) — PERFORMANCE.md's floors — or "weasyprint" (a bare
  `weasyprint.HTML(string=...).write_pdf()` of the same HTML, for PDF pages: give `baseline_html`, a function
  (app, ctx, path) returning the HTML the portal renders into that PDF; G5).
- `goal`, `min_ratio`: the PERFORMANCE.md goal the ratio is held to (e.g. "G2", 0.30), or "info".

Seed steps receive a SeedContext: `ctx.conn` (a psycopg 3 connection: use `ctx.copy(table, columns, rows)`
for bulk rows), `ctx.size` (patients), `ctx.patient_ids`, `ctx.user_ids` (the patients' own accounts, same
order), `ctx.per_patient` (the issue's volumes: observations 100, appointments 5, threads 5, ledger 10),
`ctx.rng` (seeded: the data set is the same on every run), `ctx.now`.
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
HARNESS = {"registry.py", "load.py", "seed.py", "run.py", "baselines.py", "baseline_orm.py"}
PER_PATIENT = {"observations": 100, "appointments": 5, "threads": 5, "ledger_entries": 10}


@dataclass
class Scenario:
    name: str
    path: str | Callable
    role: str | None = None
    baseline: str = "jinja"
    goal: str = "info"
    min_ratio: float | None = None
    domain: str = "core"
    baseline_html: Callable | None = None  # baseline "weasyprint": (app, ctx, path) -> the PDF's HTML
    status: int = 200  # the answer the page gives (404 for the error page); any other is reported as an error


@dataclass
class SeedStep:
    domain: str
    fn: Callable
    order: int = 50


@dataclass
class SeedContext:
    conn: object  # psycopg.Connection
    size: int
    patient_ids: list = field(default_factory=list)
    user_ids: list = field(default_factory=list)
    per_patient: dict = field(default_factory=lambda: dict(PER_PATIENT))
    rng: random.Random = field(default_factory=lambda: random.Random(20261130))
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    notes: list = field(default_factory=list)

    def copy(self, table: str, columns: list[str], rows) -> int:
        """COPY rows (an iterable of tuples) into table; returns the count."""
        n = 0
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
                    n += 1
        return n

    def first(self, sql: str, *params):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return row[0] if row else None


class Registry:
    def __init__(self):
        self.scenarios: list[Scenario] = []
        self.seed_steps: list[SeedStep] = []
        self._domain = "core"

    def scenario(self, name: str, path, **kw) -> None:
        kw.setdefault("domain", self._domain)
        self.scenarios.append(Scenario(name, path, **kw))

    def seed_step(self, domain: str, fn: Callable, order: int = 50) -> None:
        self.seed_steps.append(SeedStep(domain, fn, order))


def load_registry() -> Registry:
    """The core scenarios and seed (bench/core_pages.py) plus every domain's bench/<domain>.py."""
    reg = Registry()
    for path in sorted(BENCH.glob("*.py")):
        if path.name in HARNESS or "def bench_register" not in path.read_text(errors="replace"):
            continue
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        reg._domain = "core" if path.stem == "core_pages" else path.stem
        module.bench_register(reg)
    reg._domain = "core"
    reg.seed_steps.sort(key=lambda s: s.order)
    return reg

"""Bare baseline (c) for bench/load.py: the same page as baselines.page_app, from one SQLAlchemy 2 ORM query.

    BENCH_DATABASE_URL=postgresql+psycopg://... gunicorn -w 2 --pythonpath bench baseline_orm:orm_app

GET /orm/<nbytes>: a random seeded patient's newest 50 observations (bench_obs joined to bench_obs_codes, index
on (patient_id, effective_at)), rendered by the same template as page_app and padded to nbytes when smaller.
bench/seed.py builds the tables. The floor for pages that read the database (G1, G2) and, with no domain code,
"a bare Flask + SQLAlchemy worker" for G9's memory ratio. Imports nothing from the portal.
"""

from __future__ import annotations

import os
import random
from datetime import datetime

from flask import Flask, render_template
from sqlalchemy import ForeignKey, Numeric, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import DateTime

from baselines import CONTEXT, HERE


class Base(DeclarativeBase):
    pass


class Code(Base):
    __tablename__ = "bench_obs_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(20))
    ref_range: Mapped[str] = mapped_column(String(40))


class Obs(Base):
    __tablename__ = "bench_obs"
    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int]
    code_id: Mapped[int] = mapped_column(ForeignKey("bench_obs_codes.id"))
    value: Mapped[float] = mapped_column(Numeric(10, 2))
    flag: Mapped[str] = mapped_column(String(2))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    code: Mapped[Code] = relationship()


orm_app = Flask("bare_orm", template_folder=os.path.join(HERE, "templates"))
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=5, pool_pre_ping=True)
_range: list[int] = []


@orm_app.get("/orm/<int:nbytes>")
def orm_page(nbytes: int):
    with Session(engine) as s:
        if not _range:
            _range.extend(s.execute(select(func.min(Obs.patient_id), func.max(Obs.patient_id))).one())
        pid = random.randint(*_range)
        found = s.execute(select(Obs, Code).join(Code, Obs.code_id == Code.id).where(Obs.patient_id == pid)
                          .order_by(Obs.effective_at.desc()).limit(50)).all()
    rows = [{"date": ob.effective_at.date().isoformat(), "name": c.name, "value": f"{ob.value}", "unit": c.unit,
             "range": c.ref_range, "flag": ob.flag} for ob, c in found]
    html = render_template("bare_page.html", rows=rows, pad="", **CONTEXT)
    short = nbytes - len(html.encode())
    return html if short <= 0 else render_template("bare_page.html", rows=rows, pad="x" * short, **CONTEXT)

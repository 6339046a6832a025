"""The admin audit report: findings 9 (page and date bounds never 500) and 12 (CSV cells that start
with whitespace or a look-alike of a formula character are neutralised), and the walk's items: event
names and outcomes in words (Spanish too), names rather than ids, a filter by outcome, a reversed date
range explained, CSV times in the clinic's zone with the offset."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

import pytest
import time_machine

from portal.audit.services import CSV_COLUMNS, _csv_safe, parse_page
from portal.core.audit import EventTag, record_event


@pytest.fixture()
def events(db, make_user):
    sam = make_user("support", display_name="Sam Helper")
    patient = make_user("patient")._patient
    patient.given_name, patient.family_name = "Gladys", "Schumm"
    with time_machine.travel(datetime(2026, 7, 1, 17, 30, tzinfo=timezone.utc), tick=False):
        record_event(EventTag.PATIENT_VIEW, actor=sam, patient=patient, category="demographics")
        record_event(EventTag.ACCESS_DENIED, actor=sam, object_type="patient", object_id="nope", outcome="denied")
    db.session.commit()
    return sam, patient


@pytest.mark.parametrize("query", ["page=1e20", "page=100000000000000000000000", "page=-3", "page=abc",
                                   "page=99999", "end=9999-12-31", "start=0001-01-01", "start=9999-12-31",
                                   "end=9999-12-31&page=1e20"])
def test_page_and_dates_are_validated_and_clamped(app, db, login_as, events, query):
    admin, _ = login_as("admin")
    r = admin.get(f"/admin/audit?{query}")
    assert r.status_code in (200, 400), (query, r.status_code)
    if "9999-12-31" in query or "0001" in query:
        assert r.status_code == 400 and "Enter a date between 2000 and 2099" in r.get_data(as_text=True)
    else:
        assert r.status_code == 200
    r = admin.get(f"/admin/audit/export.csv?{query}")
    assert r.status_code in (200, 400), (query, r.status_code)
    if r.status_code == 400:
        assert r.mimetype == "text/html"  # an unparsed filter never exports everything


def test_parse_page():
    assert [parse_page(v) for v in ("1", "7", None, "", "1e20", "-5", "10" * 20, " 3 ", "0")] == \
        [1, 7, 1, 1, 1, 1, 1, 3, 0]


def test_a_page_past_the_end_shows_the_last_page(app, db, login_as, events):
    admin, _ = login_as("admin")
    body = admin.get("/admin/audit?page=500").get_data(as_text=True)
    assert "Sam Helper" in body


@pytest.mark.parametrize("cell", ["=1+1", " =1+1", "\u00a0=1+1", "\x0b=1+1", "\x0c=1+1", "\n=1+1", "\r=1",
                                  "\t=1", "\uff1d1+1", "\uff0bcmd", "\uff0d2", "\uff20SUM(A1)", "\ufe661",
                                  "\u2212 2", "\u3000=1", "\u200b=1", "+1", "-1", "@A1", "|calc"])
def test_csv_neutralises_whitespace_and_look_alikes(cell):
    assert _csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Gladys", "patient.view", "2026-07-01T12:30:00-05:00", "127.0.0.1", "", "ñandú"])
def test_csv_leaves_plain_cells_alone(cell):
    assert _csv_safe(cell) == cell


def test_csv_export_neutralises_whitespace_led_formulas_end_to_end(app, db, login_as, make_user):
    sam = make_user("support")
    for i, evil in enumerate(("\u00a0=HYPERLINK(1)", "\uff1dcmd()", " @SUM(1)")):
        record_event(EventTag.ACCESS_DENIED, actor=sam, object_type="patient", object_id=evil, outcome="denied")
    db.session.commit()
    admin, _ = login_as("admin")
    rows = list(csv.reader(io.StringIO(admin.get(f"/admin/audit/export.csv?actor={sam.email}")
                                       .get_data(as_text=True))))
    ids = [r[CSV_COLUMNS.index("object_id")] for r in rows[1:]]
    assert sorted(ids) == sorted(["'\u00a0=HYPERLINK(1)", "'\uff1dcmd()", "' @SUM(1)"]), ids


def test_report_shows_names_words_and_filters_by_outcome(app, db, login_as, events):
    sam, patient = events
    admin, _ = login_as("admin")
    body = admin.get("/admin/audit?start=2026-07-01&end=2026-07-01").get_data(as_text=True)
    table = body.split('id="audit-events"', 1)[1]
    assert "Sam Helper" in table and "Gladys Schumm" in table and patient.mrn in table
    assert "Viewed patient data" in table and "Access refused" in table
    assert "Succeeded" in table and "Refused" in table
    assert "patient.view" not in table and ">success<" not in table
    body = admin.get("/admin/audit?start=2026-07-01&end=2026-07-01&outcome=denied").get_data(as_text=True)
    assert re.search(r"\b1 event\b", body) and "Access refused" in body
    assert admin.get("/admin/audit?outcome=nonsense").status_code == 400


def test_report_in_spanish(app, db, login_as, events):
    admin, user = login_as("admin")
    user.preferred_language = "es"
    db.session.commit()
    body = admin.get("/admin/audit?start=2026-07-01&end=2026-07-01").get_data(as_text=True)
    table = body.split('id="audit-events"', 1)[1]
    assert "Acceso denegado" in table and "Correcto" in table and "Denegado" in table
    assert "Succeeded" not in table and "Access refused" not in table


def test_a_reversed_date_range_says_so(app, db, login_as, events):
    admin, _ = login_as("admin")
    r = admin.get("/admin/audit?start=2026-07-10&end=2026-07-01")
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "The end date is before the start date" in body
    assert 'class="error-summary"' in body


def test_csv_times_in_the_clinic_zone_with_offset_and_names(app, db, login_as, events):
    sam, patient = events
    admin, _ = login_as("admin")
    rows = list(csv.DictReader(io.StringIO(admin.get("/admin/audit/export.csv?start=2026-07-01&end=2026-07-01")
                                           .get_data(as_text=True))))
    view = next(r for r in rows if r["action"] == "patient.view")
    assert view["occurred_at"] == "2026-07-01T12:30:00-05:00"  # America/Chicago in July: UTC-5
    assert view["actor_name"] == "Sam Helper" and view["patient_name"] == "Gladys Schumm"
    assert view["event"] == "Viewed patient data" and view["patient_mrn"] == patient.mrn


def test_the_count_stops_at_its_cap_and_says_so(app, db, login_as, events, monkeypatch):
    """G8: the report never counts the whole table (every page view adds a row); past the cap it says
    "more than N" and how to narrow it, in both languages; below it, the exact number."""
    from portal.audit import services

    admin, user = login_as("admin")
    exact = admin.get("/admin/audit").get_data(as_text=True)
    n = int(re.search(r"<p>(\d+) events</p>", exact).group(1))
    assert n >= 2
    monkeypatch.setattr(services, "COUNT_CAP", 1)
    body = admin.get("/admin/audit").get_data(as_text=True)
    assert "More than 1 events: narrow the dates or filters" in body and "<p>%d events</p>" % n not in body
    assert "Sam Helper" in body  # the newest page still shows
    user.preferred_language = "es"
    db.session.commit()
    assert "Más de 1 eventos: acote las fechas" in admin.get("/admin/audit").get_data(as_text=True)

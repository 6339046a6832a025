"""Records services: what the patient and the care team see and do. Every read goes through core's
ownership scope (patient_for / owned_or_404 / scope_filter) and every view of health data writes an
audit row with its category. Services flush, never commit; the request frame commits.

Billing and support never reach results or the clinical record: those staff pages and panels need the
clinician functions `clinical_record` / `results_review` (core.access.STAFF_FUNCTIONS)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from portal.core.access import owned_or_404, patient_for, require_function, scope_filter
from portal.core.audit import EventTag, record_event
from portal.core.db import capped_count, utcnow
from portal.core.errors import DomainError, NotFound
from portal.extensions import db
from portal.patients.services import view_demographics
from portal.records import release, rules
from portal.records.events import RecordTag
from portal.records.models import (LAB, PATIENT_REPORTED, VITALS, ClinicalDocument, Encounter, LabReport,
                                   Observation, RecordItem, ReleasePreference, ResultComment)

__all__ = ["view_demographics"]
PER_PAGE = 25
HISTORY_LIMIT = 60  # points on the trend chart and rows of its table


def _view(actor, patient_id: int, category: str, object_type: str | None = None, object_id: str | None = None,
          **detail) -> None:
    record_event(EventTag.PATIENT_VIEW, actor=actor, patient_id=patient_id, category=category,
                 object_type=object_type, object_id=object_id, detail=detail or None)


# --- one result, as shown ------------------------------------------------------------------------------

@dataclass
class Shown:
    """A result with its range and flag worked out (rules.py)."""

    obs: Observation
    range: rules.Range
    flag: str | None

    @property
    def bar(self):
        return rules.range_bar(self.obs.value_num, self.range) if self.obs.value_num2 is None else None


def shown(obs: Observation) -> Shown:
    if obs.code == "85354-9" and obs.value_num2 is not None:
        return Shown(obs, rules.Range(None, None, ""), rules.bp_flag(obs.value_num, obs.value_num2))
    rng = rules.range_for(obs.code, obs.ref_low, obs.ref_high, obs.unit)
    return Shown(obs, rng, rules.flag(obs.value_num, rng, obs.interpretation))


def _visible_results(actor, *columns):
    """Lab results the actor may see (whole rows, or only `columns`): patients only released ones."""
    stmt = select(*(columns or (Observation,))).where(Observation.category == LAB, scope_filter(Observation, actor))
    if str(actor.role) == "patient":
        stmt = stmt.where(Observation.released_at.is_not(None))
    return stmt


# What the results list shows of each result (rows as plain tuples, not ORM objects: no identity map, no
# type processing of the columns it never shows, no FHIR `raw` JSON), with its panel's name.
_LIST_COLUMNS = (Observation.id, Observation.public_id, Observation.report_id, Observation.category,
                 Observation.code, Observation.display, Observation.value_num, Observation.value_num2,
                 Observation.value_text, Observation.unit, Observation.ref_low, Observation.ref_high,
                 Observation.ref_text, Observation.interpretation, Observation.effective_at,
                 LabReport.display.label("report_display"))


# --- patient pages ---------------------------------------------------------------------------------

def summary(actor, patient=None) -> dict:
    """The health summary: demographics, active problems, medicines, allergies, immunizations, latest
    vital signs. A constant number of statements."""
    if patient is None:  # the patient's own page: demographics are shown (and audited) too
        patient = patient_for(actor)
        _view(actor, patient.id, "health_summary", "record", patient.public_id)
        # patients.services.view_demographics(actor)'s audit row, for the patient loaded above (it would
        # load the same patient again: one statement more on every summary)
        _view(actor, patient.id, "demographics", "patient", patient.public_id)
    else:
        _view(actor, patient.id, "health_summary", "record", patient.public_id)
    items = db.session.execute(
        select(RecordItem).where(RecordItem.patient_id == patient.id, scope_filter(RecordItem, actor),
                                 RecordItem.kind.in_(("condition", "medication", "allergy", "immunization")),
                                 RecordItem.active.is_(True))
        .order_by(RecordItem.recorded_at.desc().nulls_last()).limit(1000)).scalars().all()
    by_kind: dict[str, list[RecordItem]] = {k: [] for k in ("condition", "noted", "medication", "allergy",
                                                            "immunization", "procedure")}
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.kind in ("immunization", "condition"):  # once each, the newest (one per visit in the source)
            key = (item.kind, item.code or item.display)
            if key in seen or not item.active:
                continue
            seen.add(key)
        elif not item.active and item.kind != "procedure":
            continue
        kind = "noted" if item.kind == "condition" and rules.is_noted_circumstance(item.display) else item.kind
        by_kind.setdefault(kind, []).append(item)
    vitals = db.session.execute(
        select(Observation).where(Observation.patient_id == patient.id, scope_filter(Observation, actor),
                                  Observation.category.in_((VITALS, PATIENT_REPORTED)))
        .order_by(Observation.effective_at.desc().nulls_last()).limit(200)).scalars().all()
    latest: OrderedDict[str, Shown] = OrderedDict()
    for obs in vitals:
        key = obs.code or obs.display
        if key not in latest:
            latest[key] = shown(obs)
    return {"patient": patient, "items": by_kind, "vitals": list(latest.values())[:12]}


def results_page(actor, page: int = 1) -> dict:
    """Released lab results, newest first, grouped by report (panel), paginated: one statement for
    the page (PER_PAGE + 1 rows tell whether an older page exists; no count over the whole history).
    Each group's "report" is its panel's name (None for a result without a panel); its results are
    Shown rows whose `obs` is a plain row of _LIST_COLUMNS."""
    patient = patient_for(actor)
    page = max(1, page)
    base = _visible_results(actor, *_LIST_COLUMNS).where(Observation.patient_id == patient.id)
    rows = db.session.execute(
        base.outerjoin(LabReport, LabReport.id == Observation.report_id)
        .order_by(Observation.effective_at.desc().nulls_last(), Observation.report_id, Observation.id)
        .limit(PER_PAGE + 1).offset((page - 1) * PER_PAGE)).all()
    has_older = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    groups: list[dict] = []
    for obs in rows:
        key = ("r", obs.report_id) if obs.report_id else ("o", obs.id)
        if not groups or groups[-1]["key"] != key:
            groups.append({"key": key, "report": obs.report_display if obs.report_id is not None else None,
                           "when": obs.effective_at, "results": []})
        groups[-1]["results"].append(shown(obs))
    _view(actor, patient.id, "lab_results", "results", None, page=page, shown=len(rows))
    return {"patient": patient, "groups": groups, "page": page, "has_older": has_older}


def _new_results_select(actor, patient):
    """Released in the last 14 days (the home card's count)."""
    since = utcnow() - timedelta(days=14)
    return select(func.count(Observation.id)).where(Observation.patient_id == patient.id, Observation.category == LAB,
                                                    Observation.released_at >= since, scope_filter(Observation, actor))


def _load_result(actor, public_id: str) -> Observation:
    obs = owned_or_404(Observation, public_id, actor, options=(joinedload(Observation.report),))
    if obs.category != LAB and obs.category != VITALS and obs.category != PATIENT_REPORTED:
        raise NotFound()
    if str(actor.role) == "patient" and obs.released_at is None:
        from portal.core.access import deny

        deny("record_observations", public_id, actor=actor)
        raise NotFound()
    return obs


def result_detail(actor, public_id: str) -> dict:
    """One result: value, range, flag, range bar, the history of the same test (trend chart and
    table), the explanation, comments. A constant number of statements."""
    obs = _load_result(actor, public_id)
    hist_stmt = _visible_results(actor) if obs.category == LAB else \
        select(Observation).where(scope_filter(Observation, actor), Observation.category == obs.category)
    history = db.session.execute(
        hist_stmt.where(Observation.patient_id == obs.patient_id, Observation.code == obs.code)
        .order_by(Observation.effective_at.desc().nulls_last()).limit(HISTORY_LIMIT)).scalars().all()
    history = [h for h in reversed(history) if h.effective_at is not None]
    main = shown(obs)
    chart = rules.trend([(h.effective_at, h.value_num, h.value_num2) for h in history], main.range)
    comments = db.session.execute(
        select(ResultComment).where(ResultComment.observation_id == obs.id, ResultComment.patient_id == obs.patient_id)
        .order_by(ResultComment.created_at)).scalars().all()
    _view(actor, obs.patient_id, "lab_results" if obs.category == LAB else "readings", "observation", obs.public_id)
    return {"result": main, "history": [shown(h) for h in history], "chart": chart, "comments": comments}


def visits(actor, page: int = 1) -> dict:
    patient = patient_for(actor)
    base = select(Encounter).where(Encounter.patient_id == patient.id, scope_filter(Encounter, actor))
    total = db.session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(1, page), pages)
    rows = db.session.execute(base.order_by(Encounter.start.desc().nulls_last())
                              .limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    notes: dict[int, list[ClinicalDocument]] = {}
    if rows:
        for doc in db.session.execute(
                select(ClinicalDocument).where(ClinicalDocument.encounter_id.in_([e.id for e in rows]),
                                               scope_filter(ClinicalDocument, actor))
                .order_by(ClinicalDocument.date)).scalars():
            notes.setdefault(doc.encounter_id, []).append(doc)
    _view(actor, patient.id, "visits", "visits", None, page=page)
    return {"visits": rows, "notes": notes, "page": page, "pages": pages}


def documents(actor, page: int = 1) -> dict:
    patient = patient_for(actor)
    base = select(ClinicalDocument).where(ClinicalDocument.patient_id == patient.id,
                                          scope_filter(ClinicalDocument, actor))
    total = db.session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(1, page), pages)
    rows = db.session.execute(base.order_by(ClinicalDocument.date.desc().nulls_last())
                              .limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    _view(actor, patient.id, "documents", "documents", None, page=page)
    return {"documents": rows, "page": page, "pages": pages}


def document(actor, public_id: str, *, download: bool = False) -> ClinicalDocument:
    doc = owned_or_404(ClinicalDocument, public_id, actor)
    if download:
        record_event(RecordTag.DOCUMENT_DOWNLOADED, actor=actor, patient_id=doc.patient_id, category="documents",
                     object_type="document", object_id=doc.public_id)
    else:
        _view(actor, doc.patient_id, "documents", "document", doc.public_id)
    return doc


def note_html(doc: ClinicalDocument) -> str:
    """A note's text as safe HTML: decoded, HTML stripped by bleach, line breaks kept."""
    import bleach
    from markupsafe import Markup, escape

    raw = (doc.content or b"").decode("utf-8", errors="replace")
    if doc.content_type.startswith("text/html"):
        raw = bleach.clean(raw, tags=[], strip=True)
    paragraphs = [p.strip() for p in raw.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return Markup("".join(f"<p>{'<br>'.join(escape(line) for line in p.splitlines())}</p>" for p in paragraphs))


# --- readings ---------------------------------------------------------------------------------------

def readings(actor) -> dict:
    patient = patient_for(actor)
    rows = db.session.execute(
        select(Observation).where(Observation.patient_id == patient.id, scope_filter(Observation, actor),
                                  Observation.category == PATIENT_REPORTED)
        .order_by(Observation.effective_at.desc()).limit(100)).scalars().all()
    by_kind: dict[str, list[Shown]] = {}
    for obs in rows:
        by_kind.setdefault(obs.code, []).append(shown(obs))
    charts = {}
    for code, items in by_kind.items():
        series = [(s.obs.effective_at, s.obs.value_num, s.obs.value_num2) for s in reversed(items)]
        charts[code] = rules.trend(series, items[0].range)
    _view(actor, patient.id, "readings", "readings", None)
    return {"readings": by_kind, "charts": charts}


def add_reading(actor, kind: str, value: float | None, value2: float | None = None, unit: str | None = None,
                when: datetime | None = None) -> Observation:
    from flask_babel import gettext as _

    patient = patient_for(actor)
    if kind == rules.WEIGHT and unit == "lb" and value is not None:
        value = round(value / rules.LB_PER_KG, 1)
    problem = rules.check_reading(kind, value, value2)
    if problem:
        messages = {
            "missing": _("Enter the reading."),
            "implausible": _("That number looks out of range. Check it and try again."),
            "order": _("The top number (systolic) must be higher than the bottom number (diastolic)."),
        }
        raise DomainError(messages[problem], field="value")
    code, display, unit_code = rules.READING_KINDS[kind]
    now = utcnow()
    obs = Observation(patient_id=patient.id, source="portal", fhir_id=None, category=PATIENT_REPORTED,
                      code_system="http://loinc.org", code=code, display=display, status="final",
                      value_num=value, value_num2=value2, unit=unit_code, effective_at=when or now, issued_at=now,
                      entered_by_id=actor.id, released_at=now)
    db.session.add(obs)
    db.session.flush()
    obs.fhir_id = obs.public_id
    record_event(RecordTag.READING_ADDED, actor=actor, patient_id=patient.id, category="readings",
                 object_type="observation", object_id=obs.public_id, detail={"kind": kind})
    return obs


# --- medications and refills -------------------------------------------------------------------------

def medication(actor, public_id: str) -> RecordItem:
    item = owned_or_404(RecordItem, public_id, actor)
    if item.kind != "medication":
        raise NotFound()
    _view(actor, item.patient_id, "medications", "medication", item.public_id)
    return item


def request_refill(actor, public_id: str, pharmacy: str, note: str | None, client_key: str | None = None,
                   team: str | None = None):
    """A refill request is a message to the care team: a thread in the shared inbox (topic "refill", about
    "medication:<id>"), so it is claimed, answered and closed where staff work, and the patient reads the
    answer in Messages. `team`: the care team the patient chose (a pool's public id), else the first that
    takes refills. One open request per medicine; a double submit returns the first thread."""
    from flask_babel import gettext as _

    from portal.messaging.services import open_thread, route
    from portal.patients.models import Patient

    item = owned_or_404(RecordItem, public_id, actor)
    if item.kind != "medication":
        raise NotFound()
    if not item.active:
        raise DomainError(_("Only an active medicine can be refilled. Ask your care team about this one."))
    parts = [_("Please refill %(name)s.", name=item.display),
             _("Pharmacy: %(pharmacy)s", pharmacy=pharmacy.strip()[:200])]
    if note and note.strip():
        parts.append(note.strip()[:1000])
    patient = db.session.get(Patient, item.patient_id)
    return open_thread(patient, subject=_("Refill request: %(name)s", name=item.display), body="\n\n".join(parts),
                       topic="refill", actor=actor, ref=f"medication:{item.public_id}", ref_label=item.display,
                       client_key=client_key, pool=route("refill", team or None),
                       already_open=_("You already asked for a refill of this medicine; the care team will answer "
                                      "in your messages."))


def my_refills(actor) -> list:
    """The patient's refill requests (their inbox threads about a medicine), newest first."""
    from portal.messaging.services import threads_about

    return threads_about(actor, "medication", "refill")


# --- release preferences ------------------------------------------------------------------------------

def release_preferences(actor) -> set[str]:
    patient = patient_for(actor)
    return set(db.session.execute(select(ReleasePreference.category)
                                  .where(ReleasePreference.patient_id == patient.id)).scalars())


def set_release_preferences(actor, categories: list[str]) -> set[str]:
    patient = patient_for(actor)
    wanted = {c for c in categories if c in rules.SENSITIVE_CATEGORIES}
    current = {p.category: p for p in db.session.execute(
        select(ReleasePreference).where(ReleasePreference.patient_id == patient.id)).scalars()}
    for cat, row in current.items():
        if cat not in wanted:
            db.session.delete(row)
    for cat in wanted - set(current):
        db.session.add(ReleasePreference(patient_id=patient.id, category=cat))
    db.session.flush()
    record_event(RecordTag.RELEASE_PREFS, actor=actor, patient_id=patient.id, category="lab_results",
                 detail={"wait_for": sorted(wanted)})
    return wanted


# --- registry hooks ----------------------------------------------------------------------------------

def results_card_scalars(user, patient) -> dict | None:
    """The home card's count, as a scalar subquery for the dashboard's one SELECT (core.registry)."""
    if patient is None:
        return None
    return {"new": _new_results_select(user, patient).scalar_subquery()}


def results_card(user, patient, values: dict) -> dict | None:
    if patient is None:
        return None
    return {"new": int(values["new"] or 0)}


def resolve_result_ref(user, public_id: str):
    from flask_babel import format_date

    from portal.core.registry import ResolvedRef
    from portal.core.web import current_lang
    from flask import url_for

    try:
        obs = _load_result(user, public_id)
    except NotFound:
        return None
    when = format_date(obs.effective_at) if obs.effective_at else ""
    name = rules.plain_name(obs.code, obs.display, current_lang())
    return ResolvedRef(f"{name}, {when}".strip(", "), url_for("records.result", public_id=obs.public_id),
                       obs.patient_id)


def resolve_medication_ref(user, public_id: str):
    from flask import url_for

    from portal.core.registry import ResolvedRef

    try:
        item = owned_or_404(RecordItem, public_id, user)
    except NotFound:
        return None
    if item.kind != "medication":
        return None
    return ResolvedRef(item.display, url_for("records.medication", public_id=item.public_id), item.patient_id)


# --- staff: the clinical record and the results queue -----------------------------------------------------

def patient_panel(user, patient) -> dict | None:
    """The clinical-record panel on the staff patient page (clinicians only)."""
    require_function(user, "clinical_record")
    counts = dict(db.session.execute(
        select(Observation.category, func.count(Observation.id)).where(Observation.patient_id == patient.id)
        .group_by(Observation.category)).all())
    unreleased = db.session.execute(
        select(func.count(Observation.id)).where(Observation.patient_id == patient.id, Observation.category == LAB,
                                                 Observation.released_at.is_(None))).scalar_one()
    _view(user, patient.id, "health_summary", "record_panel", patient.public_id)
    return {"patient": patient, "labs": counts.get(LAB, 0), "unreleased": unreleased}


def staff_record(actor, patient_public_id: str) -> dict:
    require_function(actor, "clinical_record")
    from portal.core.access import patient_for as load_patient

    patient = load_patient(actor, patient_public_id)
    data = summary(actor, patient)
    rows = db.session.execute(
        select(Observation).options(joinedload(Observation.report))
        .where(Observation.patient_id == patient.id, Observation.category == LAB, scope_filter(Observation, actor))
        .order_by(Observation.effective_at.desc().nulls_last()).limit(100)).scalars().all()
    data["results"] = [shown(o) for o in rows]
    _view(actor, patient.id, "lab_results", "results", None, staff=True)
    return data


QUEUE_SIZE = 200


def _queue_rows(actor, limit: int = QUEUE_SIZE):
    from portal.patients.models import Patient

    return db.session.execute(
        select(Observation, Patient).join(Patient, Patient.id == Observation.patient_id)
        .options(joinedload(Observation.report))
        .where(Observation.category == LAB, scope_filter(Observation, actor),
               or_(Observation.released_at.is_(None), Observation.reviewed_at.is_(None)))
        .order_by(Observation.released_at.is_(None).desc(), Observation.effective_at.desc().nulls_last())
        .limit(limit)).all()


CARD_CAP = 99


def queue_card(user, patient) -> dict:
    """The staff home card: lab results not yet shown to their patients (held, or waiting for the
    clinician), counted up to CARD_CAP through the release index."""
    n = db.session.execute(select(capped_count(select(Observation.id).where(
        Observation.released_at.is_(None), Observation.category == LAB, scope_filter(Observation, user)),
        cap=CARD_CAP))).scalar_one()
    return {"waiting": f"{CARD_CAP}+" if n > CARD_CAP else str(n), "any": n > 0}


def _normal_unreviewed(s: Shown) -> bool:
    """Shown to the patient, nobody has reviewed it, and its flag says normal (not unknown: a result
    without a range is read by a person)."""
    return s.obs.released_at is not None and s.obs.reviewed_at is None and s.flag == rules.NORMAL


def review_queue(actor) -> dict:
    """Held, waiting and unreviewed results with their patients (one statement; at most QUEUE_SIZE rows):
    not yet shown to the patient first, then out-of-range ones, then normal ones, newest first within
    each; the normal ones can be marked reviewed together."""
    require_function(actor, "results_review")
    items = [{"result": shown(o), "patient": p} for o, p in _queue_rows(actor)]
    items.sort(key=lambda it: (it["result"].obs.released_at is not None, _normal_unreviewed(it["result"])))
    record_event(EventTag.PATIENT_VIEW, actor=actor, category="lab_results", object_type="results_queue",
                 detail={"shown": len(items)})
    return {"items": items, "more": len(items) >= QUEUE_SIZE, "normal_ids": [it["result"].obs.public_id for it in items
                                                           if _normal_unreviewed(it["result"])]}


def mark_normal_reviewed(actor, public_ids: list[str]) -> int:
    """Mark reviewed, among the given results, those that are shown to the patient, unreviewed and normal
    by the server's own reading (what the page listed is never trusted); one audit row each."""
    require_function(actor, "results_review")
    wanted = {str(p)[:32] for p in public_ids[:QUEUE_SIZE]}
    if not wanted:
        return 0
    now, done = utcnow(), 0
    rows = db.session.execute(select(Observation).where(
        Observation.public_id.in_(wanted), Observation.category == LAB, scope_filter(Observation, actor),
        Observation.released_at.is_not(None), Observation.reviewed_at.is_(None))).scalars().all()
    for obs in rows:
        if not _normal_unreviewed(shown(obs)):
            continue
        obs.reviewed_at, obs.reviewed_by_id = now, actor.id
        record_event(RecordTag.RESULT_REVIEWED, actor=actor, patient_id=obs.patient_id, category="lab_results",
                     object_type="observation", object_id=obs.public_id, detail={"batch": True})
        done += 1
    return done


def staff_result(actor, public_id: str) -> dict:
    require_function(actor, "results_review")
    data = result_detail(actor, public_id)
    from portal.patients.models import Patient

    data["patient"] = db.session.get(Patient, data["result"].obs.patient_id)
    return data


def hold_result(actor, public_id: str, reason: str, until: datetime | None) -> Observation:
    from flask_babel import gettext as _

    require_function(actor, "results_review")
    obs = owned_or_404(Observation, public_id, actor)
    if obs.category != LAB:
        raise NotFound()
    now = utcnow()
    problem = rules.check_hold(reason, until, now)
    if problem == "reason":
        raise DomainError(_("Give the reason for holding this result."), field="reason")
    if problem == "future":
        raise DomainError(_("The hold must end in the future."), field="until")
    if problem == "too_long":
        raise DomainError(_("A hold can last at most %(days)d days.", days=rules.MAX_HOLD_DAYS), field="until")
    obs.hold_reason, obs.hold_until, obs.held_by_id = reason.strip()[:300], until, actor.id
    obs.released_at = None
    if obs.available_at is None or obs.available_at > until:
        obs.available_at = until
    db.session.flush()
    record_event(RecordTag.RESULT_HELD, actor=actor, patient_id=obs.patient_id, category="lab_results",
                 object_type="observation", object_id=obs.public_id, detail={"until": until.isoformat()})
    return obs


def release_result(actor, public_id: str) -> bool:
    require_function(actor, "results_review")
    obs = owned_or_404(Observation, public_id, actor)
    if obs.category != LAB:
        raise NotFound()
    done = release.release_now(obs, actor)
    if obs.reviewed_at is None:
        obs.reviewed_at, obs.reviewed_by_id = utcnow(), actor.id
    return done


def mark_reviewed(actor, public_id: str) -> None:
    require_function(actor, "results_review")
    obs = owned_or_404(Observation, public_id, actor)
    obs.reviewed_at, obs.reviewed_by_id = utcnow(), actor.id
    record_event(RecordTag.RESULT_REVIEWED, actor=actor, patient_id=obs.patient_id, category="lab_results",
                 object_type="observation", object_id=obs.public_id)


def comment_result(actor, public_id: str, body: str) -> ResultComment:
    require_function(actor, "results_review")
    obs = owned_or_404(Observation, public_id, actor)
    c = ResultComment(patient_id=obs.patient_id, observation_id=obs.id, author_id=actor.id,
                      author_name=(actor.display_name or "")[:120], body=body.strip()[:4000])
    db.session.add(c)
    db.session.flush()
    record_event(RecordTag.RESULT_COMMENTED, actor=actor, patient_id=obs.patient_id, category="lab_results",
                 object_type="observation", object_id=obs.public_id)
    return c


# --- import (staff upload and CLI) ---------------------------------------------------------------------

def import_upload(actor, data: bytes, filename: str, source: str = "ehr"):
    """Import one uploaded file in the request's transaction. ImportFailed → DomainError (the page
    shows the message; the request frame rolls back, so nothing from the file is kept)."""
    from portal.records.fhir.importer import ImportFailed, import_bytes

    require_function(actor, "records_import")
    savepoint = db.session.begin_nested()  # the page answers normally on failure: undo the file's writes here
    try:
        result = import_bytes(data, filename, source=source)
    except ImportFailed as err:
        savepoint.rollback()
        record_event(RecordTag.IMPORT_FAILED, actor=actor, object_type="fhir_file",
                     detail={"entry": (err.entry or "")[:80], "field": (err.field or "")[:80]})
        raise DomainError(str(err), field="file") from None
    savepoint.commit()
    record_event(RecordTag.IMPORTED, actor=actor, category=None, object_type="fhir_file",
                 detail={"resources": result.total, "created": result.created, "updated": result.updated,
                         "patients": len(result.patients)})
    return result

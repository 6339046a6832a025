"""Patient pages of the record (/record): summary, lab results and one result, visits and notes,
documents, home readings, medicines and refills, result-release preferences, and the downloads.
Routes parse, call one service (which loads through the ownership scope and audits), and render."""

from __future__ import annotations

import secrets
from datetime import datetime, time, timezone

from flask import Blueprint, Response, abort, flash, has_request_context, redirect, render_template, request, url_for
from flask import g as _g
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape

from portal.core.access import access_rule
from portal.core.audit import record_event
from portal.core.i18n import _request_translations, clinic_tz, decimal_symbol, format_locale
from portal.core.registry import PATIENT_HOME, for_patients, home_cards, nav, refs
from portal.core.web import current_lang, form_page
from portal.records import rules, services
from portal.records.events import RecordTag
from portal.records.forms import (CATEGORY_LABELS, MEDICATION_STATUS_LABELS, READING_LABELS, ExportForm,
                                  ReadingForm, RefillForm, ReleasePrefsForm)

bp = Blueprint("records", __name__, url_prefix="/record")
nav.add("records.summary", _l("My record"), order=20, show=for_patients)
nav.add("records.results", _l("Test results"), order=21, show=for_patients)
home_cards.add("results", order=3, audience=PATIENT_HOME, template="records/_card_results.html",
               scalars=services.results_card_scalars, build=services.results_card)
home_cards.add("record", order=80, audience=PATIENT_HOME, template="records/_card_record.html",
               build=lambda user, patient: {})
refs.add("result", services.resolve_result_ref)
refs.add("medication", services.resolve_medication_ref)

FLAG_WORDS = {
    rules.NORMAL: _l("Normal"), rules.HIGH: _l("High"), rules.LOW: _l("Low"),
    rules.CRITICAL_HIGH: _l("Critical: very high"), rules.CRITICAL_LOW: _l("Critical: very low"),
    rules.CRITICAL: _l("Critical"), rules.ABNORMAL: _l("Abnormal"),
}
RANGE_WORDS = {"between": _l("%(low)s to %(high)s"), "below": _l("below %(high)s"), "above": _l("above %(low)s"),
               "none": _l("No range given")}


def _request_dict() -> dict | None:
    """The request's `g` as a plain dict (None outside a request): per-request caches for the helpers
    below, which run for every row of a list (a LocalProxy lookup per call added up)."""
    return _g._get_current_object().__dict__ if has_request_context() else None


def _lang() -> str:
    """The page's language, looked up once per request."""
    d = _request_dict()
    if d is None:
        return current_lang()
    lang = d.get("_records_lang")
    if lang is None:
        lang = d["_records_lang"] = current_lang()
    return lang


def _gettext(word) -> str:
    """One of this module's lazy strings (FLAG_WORDS, RANGE_WORDS) in the request's language, through the
    request's cached catalogue."""
    return _request_translations().ugettext(word._args[0]) if has_request_context() else str(word)


bp.add_app_template_filter(rules.plain_term, "term")


@bp.app_template_global("result_flag_label")
def result_flag_label(flag: str | None) -> str:
    """The flag in words, through the request's cached catalogue (one lookup per row)."""
    word = FLAG_WORDS.get(flag) if flag else None
    if word is None:
        return ""
    return _gettext(word)


# The value, range and flag cells of a result (the results list, a result page, the summary's vitals, the
# staff pages, the PDF export). Python rather than Jinja macros: a macro call costs more than the cell,
# and the results list has three per row. Each returns Markup with every variable part escaped.

@bp.app_template_global("result_value")
def result_value(o) -> Markup:
    """"5.4 mmol/L", "120/80 mmHg", "<5 5 ng/mL" (text then number), the text alone, or "—"."""
    if o.value_num2 is not None:
        lang = _lang()
        return escape(f"{_num(o.value_num, lang)}/{_num(o.value_num2, lang)} {rules.unit_label(o.unit)}".rstrip())
    if o.value_num is not None:
        text = f"{o.value_text} " if o.value_text else ""
        return escape(f"{text}{_num(o.value_num, _lang())} {rules.unit_label(o.unit)}".rstrip())
    return escape(o.value_text or "—")


@bp.app_template_global("result_range")
def result_range(s) -> Markup:
    """The normal range in words ("70 to 99 mg/dL", "below 200 mg/dL"), the lab's own text, or a muted
    "No range given". The same test's range repeats down a list: each is built once per request."""
    r = s.range
    key = (r.low, r.high, s.obs.unit, s.obs.ref_text)
    d = _request_dict()
    if d is None:
        return _range_text(r, s.obs.unit, s.obs.ref_text)
    cache = d.get("_records_ranges")
    if cache is None:
        cache = d["_records_ranges"] = {}
    text = cache.get(key)
    if text is None:
        text = cache[key] = _range_text(r, s.obs.unit, s.obs.ref_text)
    return text


def _range_text(r, unit: str | None, ref_text: str | None) -> Markup:
    unit = rules.unit_label(unit)
    if r.low is not None and r.high is not None:
        lang = _lang()
        return Markup(_gettext(RANGE_WORDS["between"])) % {"low": _num(r.low, lang), "high": _num(r.high, lang)} \
            + " " + unit
    if r.high is not None:
        return Markup(_gettext(RANGE_WORDS["below"])) % {"high": _num(r.high, _lang())} + " " + unit
    if r.low is not None:
        return Markup(_gettext(RANGE_WORDS["above"])) % {"low": _num(r.low, _lang())} + " " + unit
    if ref_text:
        return escape(ref_text)
    return Markup('<span class="muted">%s</span>') % _gettext(RANGE_WORDS["none"])


def _flag_badge(flag: str) -> Markup:
    kind = "success" if flag == rules.NORMAL else ("error" if flag.startswith("critical") else "warning")
    arrow = "" if flag == rules.NORMAL else \
        Markup('<span aria-hidden="true">%s </span>') % ("▲" if "high" in flag else ("▼" if "low" in flag else "!"))
    return Markup('<span class="badge badge-%s result-flag result-flag-%s">%s%s</span>') % (
        kind, flag, arrow, result_flag_label(flag))


@bp.app_template_global("result_flag")
def result_flag(s) -> Markup:
    """The flag as a badge in words (never colour alone), with an arrow hidden from screen readers.
    A handful of distinct flags per page: each badge is built once per request."""
    flag = s.flag
    if not flag:
        return Markup("")
    d = _request_dict()
    if d is None:
        return _flag_badge(flag)
    cache = d.get("_records_flags")
    if cache is None:
        cache = d["_records_flags"] = {}
    badge = cache.get(flag)
    if badge is None:
        badge = cache[flag] = _flag_badge(flag)
    return badge


@bp.app_template_global("result_name")
def result_name(obs) -> str:
    return rules.plain_name(obs.code, obs.display, _lang())


@bp.app_template_global("result_explanation")
def result_explanation(obs) -> str | None:
    return rules.explanation(obs.code, _lang())


@bp.app_template_global("result_source")
def result_source(obs) -> str | None:
    ref = rules.reference_for(obs.code)
    return ref["source"] if ref else None


def _num(value, lang: str) -> str:
    if value is None:
        return ""
    v = round(float(value), 3)
    text = str(int(v)) if v == int(v) else f"{v:.3f}".rstrip("0").rstrip(".")
    sep = decimal_symbol(format_locale(lang))
    return text if sep == "." else text.replace(".", sep)


@bp.app_template_filter("num")
def num(value) -> str:
    """A lab value as written in the reader's language and the clinic's region (5.6 in the US, also in
    Spanish; 5,6 for a Spanish reader where CLINIC_REGION is ES), at most 3 decimals.
    Hand-rolled: Babel's format_decimal was a tenth of the results page's time."""
    return _num(value, _lang())


def _page() -> int:
    try:
        return max(1, min(int(request.args.get("page", 1)), 100000))
    except ValueError:
        return 1


# --- summary, results --------------------------------------------------------------------------------

@bp.route("")
@access_rule("patient")
def summary():
    return render_template("records/summary.html", **services.summary(current_user),
                           refills=services.my_refills(current_user))


@bp.route("/results")
@access_rule("patient")
def results():
    return render_template("records/results.html", **services.results_page(current_user, _page()),
                           result_url=url_for("records.result", public_id="0")[:-1])


@bp.route("/results/<public_id>")
@access_rule("patient")
def result(public_id):
    """One result; "Ask about this" opens a message to the care team about it (messaging's compose)."""
    return render_template("records/result.html", **services.result_detail(current_user, public_id))


# --- visits and documents ----------------------------------------------------------------------------

@bp.route("/visits")
@access_rule("patient")
def visits():
    return render_template("records/visits.html", **services.visits(current_user, _page()),
                           note_html=services.note_html)


@bp.route("/documents")
@access_rule("patient")
def documents():
    return render_template("records/documents.html", **services.documents(current_user, _page()))


@bp.route("/documents/<public_id>")
@access_rule("patient")
def document(public_id):
    doc = services.document(current_user, public_id)
    return render_template("records/document.html", doc=doc, note_html=services.note_html)


@bp.route("/documents/<public_id>/download")
@access_rule("patient")
def document_download(public_id):
    doc = services.document(current_user, public_id, download=True)
    if doc.content is None:
        abort(404)
    ctype = doc.content_type.split(";")[0].strip() or "application/octet-stream"
    if ctype == "text/html":
        ctype = "text/plain"  # never serve stored HTML as a page
    ext = {"text/plain": "txt", "application/pdf": "pdf"}.get(ctype, "bin")
    resp = Response(doc.content, mimetype=ctype)
    resp.headers["Content-Disposition"] = f'attachment; filename="document-{doc.public_id[:8]}.{ext}"'
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# --- readings ------------------------------------------------------------------------------------------

@bp.route("/readings", methods=["GET", "POST"])
@access_rule("patient")
def readings():
    form = ReadingForm()

    def add(f):
        return services.add_reading(current_user, f.kind.data, float(f.value.data),
                                    float(f.value2.data) if f.value2.data is not None else None, f.unit.data)

    return form_page(form, "records/readings.html", add, success=_("Reading saved. Your care team can see it."),
                     redirect_to=url_for("records.readings"),
                     context=lambda: {**services.readings(current_user), "labels": READING_LABELS})


# --- medicines -----------------------------------------------------------------------------------------

@bp.route("/medications/<public_id>", methods=["GET", "POST"])
@access_rule("patient")
def medication(public_id):
    from portal.messaging.services import care_team_choices

    item = services.medication(current_user, public_id)
    form = RefillForm()
    form.team.choices = care_team_choices(current_lang())
    if not form.client_key.data:
        form.client_key.data = secrets.token_hex(16)  # one thread however often the form is sent
    return form_page(form, "records/medication.html",
                     lambda f: services.request_refill(current_user, public_id, f.pharmacy.data, f.note.data,
                                                       f.client_key.data, team=f.team.data),
                     success=_("Refill request sent to your care team. Their answer will appear here."),
                     redirect_to=lambda thread: url_for("messaging.thread", public_id=thread.public_id),
                     context={"item": item, "status_label": MEDICATION_STATUS_LABELS.get(item.status, item.status)})


# --- release preferences ---------------------------------------------------------------------------------

@bp.route("/result-preferences", methods=["GET", "POST"])
@access_rule("patient")
def preferences():
    form = ReleasePrefsForm()
    if request.method == "GET":
        form.categories.data = sorted(services.release_preferences(current_user))
    return form_page(form, "records/preferences.html",
                     lambda f: services.set_release_preferences(current_user, f.categories.data or []),
                     success=_("Saved. New results are shown as you chose."),
                     redirect_to=url_for("records.preferences"),
                     context={"labels": CATEGORY_LABELS})


# --- downloads -------------------------------------------------------------------------------------------

def _range_args():
    def parse(name):
        raw = (request.args.get(name) or "")[:10]
        try:
            d = datetime.strptime(raw, "%Y-%m-%d").date() if raw else None
        except ValueError:
            return None
        return datetime.combine(d, time.min, tzinfo=clinic_tz()).astimezone(timezone.utc) if d else None

    start, end = parse("start"), parse("end")
    if end is not None:
        from datetime import timedelta

        end = end + timedelta(days=1)
    return start, end


@bp.route("/export", methods=["GET", "POST"])
@access_rule("patient")
def export():
    form = ExportForm()
    if form.validate_on_submit():
        args = {k: v.isoformat() for k, v in (("start", form.start.data), ("end", form.end.data)) if v}
        endpoint = "records.export_pdf" if form.format.data == "pdf" else "records.export_json"
        return redirect(url_for(endpoint, **args))
    return render_template("records/export.html", form=form), 400 if form.is_submitted() else 200


def _export_rows():
    from portal.patients.services import own_patient
    from portal.records.fhir import export as fhir_export

    patient = own_patient(current_user)
    start, end = _range_args()
    return patient, start, end, fhir_export.gather(current_user, patient, start, end)


@bp.route("/export.json")
@access_rule("patient")
def export_json():
    from portal.records.fhir import export as fhir_export

    patient, start, end, rows = _export_rows()
    doc = fhir_export.bundle(current_user, patient, start, end, rows)
    record_event(RecordTag.EXPORTED, actor=current_user, patient_id=patient.id, category="record_export",
                 object_type="fhir_bundle", detail={"entries": len(doc["entry"])})
    resp = Response(fhir_export.to_json(doc), mimetype="application/fhir+json")
    resp.headers["Content-Disposition"] = 'attachment; filename="my-health-record.json"'
    return resp


@bp.route("/export.pdf")
@access_rule("patient")
def export_pdf():
    from portal.records import pdf

    patient, start, end, rows = _export_rows()
    results = [services.shown(o) for o in rows["observations"]]
    html = render_template("records/export_pdf.html", patient=patient, rows=rows, results=results, start=start,
                           end=end, note_html=services.note_html)
    record_event(RecordTag.EXPORTED, actor=current_user, patient_id=patient.id, category="record_export",
                 object_type="pdf", detail={"results": len(results)})
    resp = Response(pdf.render_pdf(html), mimetype="application/pdf")
    resp.headers["Content-Disposition"] = 'attachment; filename="my-health-record.pdf"'
    return resp


__all__ = ["bp", "flash"]

from portal.records import cli as _cli  # noqa: E402  (`flask records import`, on this blueprint's CLI group)

_cli.register(bp)

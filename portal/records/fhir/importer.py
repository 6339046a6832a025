"""Import FHIR R4 Bundles (transaction / collection / searchset / batch, JSON), single resources and
bulk-export ndjson (a file or a folder of them) into the record tables.

One call of `import_path()` is one unit: it validates everything first (fhir.resources R4B models plus
our own checks), then writes in the caller's transaction; any error raises ImportFailed naming the
file, the entry and the field, and the caller rolls back, so nothing from it is kept. Re-importing
the same data changes nothing: rows are upserted on (source, resource type, FHIR id).

Patients are matched by FHIR id, then by a medical-record-number identifier whose birth date agrees
(a disagreement is an error, never a guess); a Patient resource nobody knows yet becomes a new patient.
A Bundle must be about one patient; a bulk folder may hold many.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from pydantic import ValidationError
from sqlalchemy import select

from portal.core.db import utcnow
from portal.extensions import db
from portal.records import rules
from portal.records.models import (LAB, PATIENT_REPORTED, VITALS, ClinicalDocument, Directory, Encounter, LabReport, Observation,
                                   RecordItem, ReleasePreference)

MAX_STRING = 20_000  # characters in any one FHIR string (attachments aside)
MAX_ATTACHMENT = 10 * 1024 * 1024  # bytes of base64 in one attachment
BUNDLE_TYPES = {"transaction", "collection", "searchset", "batch", "transaction-response", "batch-response"}
DIRECTORY_TYPES = ("Practitioner", "Organization", "Location")
ITEM_KINDS = {"Condition": "condition", "AllergyIntolerance": "allergy", "MedicationRequest": "medication",
              "MedicationStatement": "medication", "Immunization": "immunization", "Procedure": "procedure"}
STORED = {"Patient", *DIRECTORY_TYPES, "Encounter", *ITEM_KINDS, "Observation", "DiagnosticReport",
          "DocumentReference"}
ORDER = {t: n for n, t in enumerate(("Patient", *DIRECTORY_TYPES, "Encounter", "DiagnosticReport"))}
LAB_REPORT_SECTIONS = {"LAB", "HM", "CH", "MB", "MCB", "SR", "BLB", "CUS", "HM", "IMM", "SP", "PAT", "CP", "CY",
                       "GE", "URN", "TX", "VR", "SER", "OSL"}
MASS_OR_LENGTH_UNITS = {"kg", "g", "lb", "[lb_av]", "oz", "[oz_av]", "cm", "m", "mm", "km", "[in_i]", "[ft_i]"}
_UCUM = re.compile(r"^[A-Za-z0-9.\/*\[\]{}()%'^_\-+ ]{1,40}$")
_MR_TYPES = {"MR", "MRN"}


class ImportFailed(Exception):
    """A file that cannot be imported: the message names the file, the entry and the field."""

    def __init__(self, file: str, entry: str | None, fld: str | None, problem: str):
        self.file, self.entry, self.field, self.problem = file, entry, fld, problem
        where = " ".join(p for p in (f"entry {entry}" if entry else "", f"field {fld}" if fld else "") if p)
        super().__init__(f"{file}: {where + ': ' if where else ''}{problem}")


@dataclass
class Entry:
    where: str  # "3 (Observation/abc)" or "line 12 (Observation/abc)"
    resource: dict
    full_url: str | None = None

    @property
    def type(self) -> str:
        return self.resource.get("resourceType", "")

    @property
    def id(self) -> str | None:
        return self.resource.get("id")


@dataclass
class ImportResult:
    file: str
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per resource type, stored
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # validated, not kept
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    patients: set[int] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        skip = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
        return (f"{self.file}: {self.total} resources ({kept}); new {self.created}, changed {self.updated}, "
                f"unchanged {self.unchanged}" + (f"; not kept: {skip}" if skip else ""))


# --- reading files --------------------------------------------------------------------------------

def read_path(path: str | Path) -> list[Entry]:
    """Entries of a JSON file (Bundle or one resource), an ndjson file, or a folder of ndjson files."""
    path = Path(path)
    name = path.name
    if path.is_dir():
        entries: list[Entry] = []
        files = sorted(p for p in path.iterdir() if p.suffix == ".ndjson" and not p.name.startswith("log."))
        if not files:
            raise ImportFailed(name, None, None, "no .ndjson files in this folder")
        for f in files:
            entries += read_ndjson(f.read_bytes(), f.name)
        return entries
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImportFailed(name, None, None, f"cannot read the file ({err.strerror})") from None
    if path.suffix == ".ndjson":
        return read_ndjson(data, name)
    return read_json(data, name)


def read_ndjson(data: bytes, name: str) -> list[Entry]:
    entries = []
    for n, line in enumerate(_text(data, name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as err:
            raise ImportFailed(name, f"line {n}", None, f"not valid JSON ({err.msg}, column {err.colno}); "
                               "a truncated line?") from None
        if not isinstance(resource, dict):
            raise ImportFailed(name, f"line {n}", None, "each line must be one FHIR resource (a JSON object)")
        entries.append(Entry(f"line {n} ({_label(resource)})", resource))
    if not entries:
        raise ImportFailed(name, None, None, "the file is empty")
    return entries


def read_json(data: bytes, name: str) -> list[Entry]:
    try:
        doc = json.loads(_text(data, name))
    except json.JSONDecodeError as err:
        raise ImportFailed(name, None, None, f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno})") \
            from None
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise ImportFailed(name, None, "resourceType", "not a FHIR resource or Bundle")
    if doc["resourceType"] != "Bundle":
        return [Entry(f"1 ({_label(doc)})", doc)]
    if doc.get("type") not in BUNDLE_TYPES:
        raise ImportFailed(name, None, "Bundle.type", f"unsupported bundle type {str(doc.get('type'))[:40]!r}")
    entries = []
    for n, item in enumerate(doc.get("entry") or [], start=1):
        resource = (item or {}).get("resource") if isinstance(item, dict) else None
        if not isinstance(resource, dict):
            raise ImportFailed(name, str(n), "entry.resource", "entry has no resource")
        entries.append(Entry(f"{n} ({_label(resource)})", resource, item.get("fullUrl")))
    if not entries:
        raise ImportFailed(name, None, "Bundle.entry", "the bundle has no entries")
    return entries


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed(name, None, None, "not UTF-8 text") from None


def _label(resource: dict) -> str:
    return f"{str(resource.get('resourceType', '?'))[:40]}/{str(resource.get('id', '?'))[:64]}"


# --- validation -------------------------------------------------------------------------------------

def _model_class(resource_type: str):
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def validate(entries: list[Entry], name: str) -> None:
    """fhir.resources (R4B) validation of every entry we keep (and of Medication, which names a
    MedicationRequest's medicine), plus our own limits on all."""
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        rt = entry.type
        if not isinstance(rt, str) or not re.fullmatch(r"[A-Z][A-Za-z]{1,63}", rt) or _model_class(rt) is None:
            raise ImportFailed(name, entry.where, "resourceType", f"unknown FHIR resource type {str(rt)[:40]!r}")
        _check_strings(entry.resource, "", name, entry)
        if rt not in STORED and rt != "Medication":
            continue  # not kept (Claim, ExplanationOfBenefit, CarePlan…): its type is checked, not its content
        try:
            _model_class(rt).model_validate(entry.resource)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("__root__",))
            raise ImportFailed(name, entry.where, f"{rt}.{loc}" if loc else rt,
                               str(first.get("msg", "invalid"))[:300]) from None
        except (ValueError, TypeError) as err:
            raise ImportFailed(name, entry.where, rt, str(err)[:300]) from None
        if rt in STORED:
            if not entry.id:
                raise ImportFailed(name, entry.where, f"{rt}.id", "a resource we keep must have an id")
            key = (rt, entry.id)
            if key in seen:
                raise ImportFailed(name, entry.where, f"{rt}.id", f"duplicate id {entry.id!r} in this file")
            seen.add(key)
        if rt == "Observation":
            _check_quantity(entry, name)


def _check_strings(value, path: str, name: str, entry: Entry) -> None:
    if isinstance(value, str):
        limit = MAX_ATTACHMENT if path.endswith(".data") else MAX_STRING
        if len(value) > limit:
            raise ImportFailed(name, entry.where, path.lstrip("."), f"text too long ({len(value)} characters; "
                               f"at most {limit})")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(v, f"{path}.{k}", name, entry)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v, path, name, entry)


def _check_quantity(entry: Entry, name: str) -> None:
    r = entry.resource
    quantities = [("valueQuantity", r.get("valueQuantity"), _code(r.get("code")))]
    quantities += [(f"component[{i}].valueQuantity", c.get("valueQuantity"), _code(c.get("code")))
                   for i, c in enumerate(r.get("component") or [])]
    for where, q, code in quantities:
        if not q:
            continue
        value = q.get("value")
        if value is not None and (isinstance(value, bool) or not math.isfinite(float(value))):
            raise ImportFailed(name, entry.where, f"Observation.{where}.value", "not a finite number")
        unit = q.get("code") or q.get("unit")
        if unit is None:
            continue
        if q.get("system") == "http://unitsofmeasure.org" and not _UCUM.match(str(unit)):
            raise ImportFailed(name, entry.where, f"Observation.{where}.code", f"not a UCUM unit: {str(unit)[:40]!r}")
        ref = rules.reference_for(code)
        if ref and ref.get("unit") and "/" in ref["unit"] and str(unit) in MASS_OR_LENGTH_UNITS:
            raise ImportFailed(name, entry.where, f"Observation.{where}.unit",
                               f"impossible unit {unit!r} for LOINC {code} (expected something like {ref['unit']})")


# --- small readers of FHIR JSON ---------------------------------------------------------------------

def _code(cc: dict | None) -> str | None:
    for coding in (cc or {}).get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])[:64]
    return None


def _system(cc: dict | None) -> str | None:
    for coding in (cc or {}).get("coding") or []:
        if coding.get("code"):
            return (coding.get("system") or "")[:200] or None
    return None


def _text_of(cc: dict | None, default: str = "") -> str:
    if not cc:
        return default
    if cc.get("text"):
        return str(cc["text"])[:300]
    for coding in cc.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])[:300]
    code = _code(cc)
    return code or default


def parse_when(value: str | None) -> datetime | None:
    """A FHIR date / dateTime / instant as an aware UTC datetime (a bare date is midnight UTC)."""
    if not value or not isinstance(value, str):
        return None
    v = value.strip()
    try:
        if len(v) == 4:
            return datetime(int(v), 1, 1, tzinfo=timezone.utc)
        if len(v) == 7:
            return datetime(int(v[:4]), int(v[5:7]), 1, tzinfo=timezone.utc)
        if len(v) == 10:
            d = date.fromisoformat(v)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _first_when(r: dict, *keys: str) -> datetime | None:
    for key in keys:
        v = r.get(key)
        if isinstance(v, dict):  # a Period
            v = v.get("start") or v.get("end")
        when = parse_when(v)
        if when is not None:
            return when
    return None


def _display(ref: dict | None) -> str | None:
    return str(ref["display"])[:200] if isinstance(ref, dict) and ref.get("display") else None


def _decode(data: str | None) -> bytes | None:
    if not data:
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def _trunc(value, n: int) -> str | None:
    return None if value is None else str(value)[:n]


# --- the import ----------------------------------------------------------------------------------------

class _Context:
    def __init__(self, name: str, source: str, entries: list[Entry], bulk: bool):
        self.name, self.source, self.bulk = name, source, bulk
        self.entries = entries
        self.by_url: dict[str, Entry] = {}
        for e in entries:
            if e.full_url:
                self.by_url[e.full_url] = e
            if e.id:
                self.by_url[f"{e.type}/{e.id}"] = e
        self.patients: dict[str, object] = {}  # FHIR patient id → Patient row
        self.encounters: dict[str, int] = {}  # FHIR id → row id
        self.reports_by_result: dict[str, LabReport] = {}  # observation FHIR id → report row
        self.directory_names: dict[tuple[str, str], str] = {}  # ("Practitioner", "system|value") → name
        self.waits: dict[int, set[str]] = {}
        self.now = utcnow()
        self.new_results: set[int] = set()

    def fail(self, entry: Entry, fld: str | None, problem: str):
        raise ImportFailed(self.name, entry.where, fld, problem)

    def target(self, ref: dict | None) -> tuple[str | None, str | None, Entry | None]:
        """(resource type, FHIR id, the entry in this file if any) a Reference points to."""
        if not isinstance(ref, dict) or not ref.get("reference"):
            return None, None, None
        r = str(ref["reference"])
        if r in self.by_url:
            e = self.by_url[r]
            return e.type, e.id, e
        if r.startswith("urn:uuid:") or r.startswith("#"):
            return None, None, None
        if "?" in r:
            return r.split("?", 1)[0], None, None
        parts = r.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "_history" and len(parts) >= 4:
            parts = parts[:-2]
        if len(parts) >= 2:
            return parts[-2], parts[-1], None
        return None, None, None


def import_path(path: str | Path, *, source: str = "ehr", notify: bool = True,
                progress: Callable[[int, int], None] | None = None) -> ImportResult:
    path = Path(path)
    entries = read_path(path)
    return import_entries(entries, path.name, source=source, bulk=path.is_dir() or path.suffix == ".ndjson",
                          notify=notify, progress=progress)


def import_bytes(data: bytes, filename: str, *, source: str = "ehr", notify: bool = True) -> ImportResult:
    name = Path(filename or "upload.json").name[:100]
    is_nd = name.endswith(".ndjson")
    entries = read_ndjson(data, name) if is_nd else read_json(data, name)
    return import_entries(entries, name, source=source, bulk=is_nd, notify=notify)


def import_entries(entries: list[Entry], name: str, *, source: str = "ehr", bulk: bool = False,
                   notify: bool = True, progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Validate then write (flush, never commit). Raises ImportFailed; the caller rolls back."""
    source = (source or "ehr").strip()[:64] or "ehr"
    validate(entries, name)
    ctx = _Context(name, source, entries, bulk)
    result = ImportResult(name)
    ordered = sorted(entries, key=lambda e: ORDER.get(e.type, 50))
    _prefetch(ctx, ordered)
    handlers: dict[str, Callable] = {
        "Patient": _patient, "Encounter": _encounter, "Observation": _observation,
        "DiagnosticReport": _report, "DocumentReference": _document,
        **{t: _directory for t in DIRECTORY_TYPES}, **{t: _item for t in ITEM_KINDS},
    }
    total = len(ordered)
    for n, entry in enumerate(ordered, start=1):
        handler = handlers.get(entry.type)
        if handler is None:
            result.skipped[entry.type] += 1
        else:
            outcome = handler(ctx, entry, result)
            if outcome is None:
                result.skipped[entry.type] += 1
            else:
                result.counts[entry.type] += 1
                setattr(result, outcome, getattr(result, outcome) + 1)
        if progress is not None and (n % 200 == 0 or n == total):
            progress(n, total)
    if not bulk and len(result.patients) > 1:
        raise ImportFailed(name, None, "subject", "this bundle mixes records of more than one patient")
    db.session.flush()
    from portal.records import release

    release.release_due(patient_ids=result.patients, notify=notify)
    return result


def _prefetch(ctx: _Context, entries: list[Entry]) -> None:
    """Load, in a few queries, every existing row this file may update (the upsert's lookups)."""
    from portal.patients.models import Patient

    ids_by_type: dict[str, set[str]] = defaultdict(set)
    patient_refs: set[str] = set()
    for e in entries:
        if e.id:
            ids_by_type[e.type].add(e.id)
        for key in ("subject", "patient"):
            rt, pid, _ = ctx.target(e.resource.get(key))
            if rt == "Patient" and pid:
                patient_refs.add(pid)
        if e.type == "DiagnosticReport":
            for ref in e.resource.get("result") or []:
                rt, oid, in_file = ctx.target(ref)
                if rt == "Observation" and oid and in_file is None:
                    ids_by_type["Observation"].add(oid)
    wanted = patient_refs | ids_by_type.get("Patient", set())
    for chunk in _chunks(sorted(wanted)):
        for p in db.session.execute(select(Patient).where(Patient.fhir_id.in_(chunk))).scalars():
            ctx.patients[p.fhir_id] = p
    ctx.existing = {}
    tables = [(Encounter, "Encounter", None), (LabReport, "DiagnosticReport", None),
              (Observation, "Observation", None)]
    for model, rt, _ in tables:
        for chunk in _chunks(sorted(ids_by_type.get(rt, ()))):
            for row in db.session.execute(select(model).where(model.source == ctx.source,
                                                              model.fhir_id.in_(chunk))).scalars():
                ctx.existing[(rt, row.fhir_id)] = row
    for model, types in ((RecordItem, list(ITEM_KINDS)), (Directory, list(DIRECTORY_TYPES)),
                         (ClinicalDocument, ["DocumentReference", "DiagnosticReport"])):
        ids = sorted(set().union(*(ids_by_type.get(t, set()) for t in types)))
        for chunk in _chunks(ids):
            for row in db.session.execute(select(model).where(model.source == ctx.source,
                                                              model.resource_type.in_(types),
                                                              model.fhir_id.in_(chunk))).scalars():
                ctx.existing[(f"{model.__tablename__}:{row.resource_type}", row.fhir_id)] = row


def _chunks(items: list, n: int = 500) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _upsert(ctx: _Context, key: tuple[str, str], model, values: dict, entry: Entry, patient=None) -> tuple:
    """Insert, update, or leave alone (same raw JSON). Returns (row, outcome)."""
    raw = json.dumps(entry.resource, sort_keys=True, separators=(",", ":"))
    row = ctx.existing.get(key)
    if row is not None:
        if patient is not None and row.patient_id != patient.id:
            ctx.fail(entry, "subject", "this resource id already belongs to another patient's record")
        if row.raw == raw:
            return row, "unchanged"
        for k, v in values.items():
            setattr(row, k, v)
        row.raw = raw
        return row, "updated"
    row = model(source=ctx.source, fhir_id=entry.id, raw=raw, **values)
    if patient is not None:
        row.patient_id = patient.id
    db.session.add(row)
    ctx.existing[key] = row
    return row, "created"


def _patient_of(ctx: _Context, entry: Entry, key: str = "subject"):
    ref = entry.resource.get(key)
    if ref is None and key == "subject":
        ref = entry.resource.get("patient")
    rt, pid, in_file = ctx.target(ref)
    if ref is None or rt is None:
        return None  # not about a patient (no subject, or a Group): not kept
    if rt != "Patient":
        return None
    if in_file is not None and in_file.type == "Patient":
        pid = in_file.id
    patient = ctx.patients.get(pid or "")
    if patient is None:
        ctx.fail(entry, f"{entry.type}.{key}", f"refers to patient {str(ref.get('reference'))[:80]!r}, which is "
                 "neither in this file nor in the portal")
    return patient


def _patient(ctx: _Context, entry: Entry, result: ImportResult):
    from portal.patients.models import Patient

    r = entry.resource
    birth = r.get("birthDate")
    birth_date = date.fromisoformat(birth) if isinstance(birth, str) and len(birth) == 10 else None
    existing = ctx.patients.get(entry.id)
    mrn = None
    for ident in r.get("identifier") or []:
        codes = {c.get("code") for c in ((ident.get("type") or {}).get("coding") or [])}
        if codes & _MR_TYPES and ident.get("value"):
            mrn = str(ident["value"])[:32]
            break
    if existing is None and mrn:
        match = db.session.execute(select(Patient).where(Patient.mrn == mrn)).scalars().first()
        if match is not None:
            if match.fhir_id and match.fhir_id != entry.id:
                ctx.fail(entry, "Patient.identifier", "this record number belongs to a different patient record")
            if birth_date is None or match.birth_date != birth_date:
                ctx.fail(entry, "Patient.birthDate", "the record number matches a patient whose birth date differs; "
                         "not matched (check the record by hand)")
            match.fhir_id = entry.id
            existing = match
    if existing is not None:
        if birth_date is not None and existing.birth_date != birth_date:
            ctx.fail(entry, "Patient.birthDate", "differs from the portal's record of this patient; not matched")
        ctx.patients[entry.id] = existing
        result.patients.add(existing.id)
        return "unchanged"
    from portal.demo.fhir_patients import parse_patient

    try:
        fields = parse_patient({k: v for k, v in r.items() if not k.startswith("deceased")})
    except (KeyError, ValueError, TypeError):
        fields = None
    if not fields:
        ctx.fail(entry, "Patient.name", "a new patient needs a name and a birth date")
    fields.pop("fhir_id", None)
    for k, n in (("phone", 32), ("email", 254), ("address_line", 200), ("city", 100), ("state", 50),
                 ("postal_code", 20), ("sex", 16)):
        fields[k] = _trunc(fields.get(k), n)
    fields["email"] = None  # the portal's contact details are confirmed by the patient, not imported
    patient = Patient(fhir_id=entry.id, mrn=mrn or ("F" + entry.id.replace("-", ""))[:32], **fields)
    db.session.add(patient)
    db.session.flush()
    ctx.patients[entry.id] = patient
    result.patients.add(patient.id)
    return "created"


def _directory(ctx: _Context, entry: Entry, result: ImportResult):
    r = entry.resource
    if entry.type == "Practitioner":
        n = (r.get("name") or [{}])[0]
        name = " ".join([*(n.get("prefix") or []), *(n.get("given") or []), n.get("family") or ""]).strip()
        name = re.sub(r"(?<=[A-Za-z])\d+\b", "", name) or n.get("text")
    else:
        name = r.get("name")
    ident = (r.get("identifier") or [{}])[0]
    values = {"resource_type": entry.type, "name": _trunc(name, 300),
              "identifier_system": _trunc(ident.get("system"), 200), "identifier_value": _trunc(ident.get("value"), 200)}
    _row, outcome = _upsert(ctx, (f"record_directory:{entry.type}", entry.id), Directory, values, entry)
    for i in r.get("identifier") or []:
        if i.get("system") and i.get("value") and name:
            ctx.directory_names[(entry.type, f"{i['system']}|{i['value']}")] = name
    return outcome


def _who(ctx: _Context, ref: dict | None) -> str | None:
    """A Practitioner/Organization/Location reference in words: from this file, or its display."""
    if not isinstance(ref, dict):
        return None
    r = str(ref.get("reference") or "")
    if "?identifier=" in r:
        rt, _, ident = r.partition("?identifier=")
        name = ctx.directory_names.get((rt, ident))
        if name:
            return name[:200]
    rt, rid, in_file = ctx.target(ref)
    if in_file is not None and in_file.type in DIRECTORY_TYPES:
        name = in_file.resource.get("name")
        if isinstance(name, list):
            n = name[0] if name else {}
            name = " ".join([*(n.get("prefix") or []), *(n.get("given") or []), n.get("family") or ""]).strip()
        if name:
            return re.sub(r"(?<=[A-Za-z])\d+\b", "", str(name))[:200]
    display = _display(ref)
    return re.sub(r"(?<=[A-Za-z])\d+\b", "", display)[:200] if display else None


def _encounter_id(ctx: _Context, ref: dict | None) -> int | None:
    rt, eid, _ = ctx.target(ref)
    if rt != "Encounter" or not eid:
        return None
    row = ctx.existing.get(("Encounter", eid))
    if row is not None:
        if row.id is None:
            db.session.flush()
        return row.id
    return ctx.encounters.get(eid)


def _encounter(ctx: _Context, entry: Entry, result: ImportResult):
    patient = _patient_of(ctx, entry)
    if patient is None:
        return None
    r = entry.resource
    cls = r.get("class")
    who = next((_who(ctx, p.get("individual")) for p in r.get("participant") or [] if p.get("individual")), None)
    where = next((_who(ctx, loc.get("location")) for loc in r.get("location") or []), None)
    values = {
        "type_display": _text_of((r.get("type") or [None])[0], "Visit"),
        "class_code": _trunc(cls.get("code") if isinstance(cls, dict) else None, 16),
        "status": _trunc(r.get("status"), 32),
        "start": parse_when((r.get("period") or {}).get("start")),
        "end": parse_when((r.get("period") or {}).get("end")),
        "practitioner": who, "location": _trunc(where, 300) or _who(ctx, r.get("serviceProvider")),
        "reason": _trunc(_text_of((r.get("reasonCode") or [None])[0]) or None, 300),
    }
    row, outcome = _upsert(ctx, ("Encounter", entry.id), Encounter, values, entry, patient)
    result.patients.add(patient.id)
    return outcome


def _item(ctx: _Context, entry: Entry, result: ImportResult):
    patient = _patient_of(ctx, entry)
    if patient is None:
        return None
    r, rt = entry.resource, entry.type
    kind = ITEM_KINDS[rt]
    status, active, when, detail, by = None, True, None, None, None
    concept = r.get("code")
    if rt == "Condition":
        status = _code(r.get("clinicalStatus"))
        active = status in (None, "active", "recurrence", "relapse")
        when = _first_when(r, "onsetDateTime", "onsetPeriod", "recordedDate")
    elif rt == "AllergyIntolerance":
        status = _code(r.get("clinicalStatus"))
        active = status in (None, "active")
        when = _first_when(r, "recordedDate", "onsetDateTime")
        reactions = [_text_of(m) for rx in r.get("reaction") or [] for m in rx.get("manifestation") or []]
        detail = ", ".join([*(f"{r['criticality']} criticality" for _ in [0] if r.get("criticality")), *reactions])
    elif rt in ("MedicationRequest", "MedicationStatement"):
        status = r.get("status")
        active = status in ("active", "on-hold", "intended")
        when = _first_when(r, "authoredOn", "effectiveDateTime", "effectivePeriod", "dateAsserted")
        concept = r.get("medicationCodeableConcept")
        if concept is None:
            _t, _id, med = ctx.target(r.get("medicationReference"))
            concept = med.resource.get("code") if med is not None and med.type == "Medication" else \
                {"text": _display(r.get("medicationReference")) or "Medication"}
        dosage = (r.get("dosageInstruction") or r.get("dosage") or [{}])[0]
        detail = dosage.get("text") if isinstance(dosage, dict) else None
        by = _who(ctx, r.get("requester"))
    elif rt == "Immunization":
        status = r.get("status")
        concept = r.get("vaccineCode")
        when = _first_when(r, "occurrenceDateTime", "recorded")
        active = status != "entered-in-error"
    elif rt == "Procedure":
        status = r.get("status")
        when = _first_when(r, "performedDateTime", "performedPeriod")
        active = status != "entered-in-error"
        by = _who(ctx, r.get("location"))
    if r.get("verificationStatus") and _code(r.get("verificationStatus")) == "entered-in-error":
        active = False
    values = {"resource_type": rt, "kind": kind, "code_system": _system(concept), "code": _code(concept),
              "display": _text_of(concept, kind.title()), "status": _trunc(status, 32), "active": bool(active),
              "recorded_at": when, "detail": _trunc(detail or None, 300), "by_whom": _trunc(by, 200)}
    _row, outcome = _upsert(ctx, (f"record_items:{rt}", entry.id), RecordItem, values, entry, patient)
    result.patients.add(patient.id)
    return outcome


def _report(ctx: _Context, entry: Entry, result: ImportResult):
    patient = _patient_of(ctx, entry)
    if patient is None:
        return None
    r = entry.resource
    sections = {c.get("code") for cat in r.get("category") or [] for c in cat.get("coding") or []}
    section = next((s for s in sections if s in LAB_REPORT_SECTIONS), None)
    forms = r.get("presentedForm") or []
    when = _first_when(r, "effectiveDateTime", "effectivePeriod", "issued")
    if forms and not r.get("result"):  # a clinical note
        form = forms[0]
        values = {"resource_type": "DiagnosticReport", "title": _text_of(r.get("code"), "Clinical note"),
                  "date": when, "encounter_id": _encounter_id(ctx, r.get("encounter")),
                  "author": _who(ctx, (r.get("performer") or [None])[0]),
                  "content_type": _trunc(form.get("contentType") or "text/plain", 100),
                  "content": _decode(form.get("data"))}
        _row, outcome = _upsert(ctx, ("record_documents:DiagnosticReport", entry.id), ClinicalDocument, values,
                                entry, patient)
        result.patients.add(patient.id)
        return outcome
    values = {"code": _code(r.get("code")), "display": _text_of(r.get("code"), "Lab report"),
              "category": _trunc(section or next(iter(sorted(s for s in sections if s)), None), 32),
              "status": _trunc(r.get("status"), 32), "effective_at": when, "issued_at": parse_when(r.get("issued")),
              "performer": _who(ctx, (r.get("performer") or [None])[0]), "conclusion": _trunc(r.get("conclusion"), 5000)}
    row, outcome = _upsert(ctx, ("DiagnosticReport", entry.id), LabReport, values, entry, patient)
    for n, ref in enumerate(r.get("result") or []):
        rt, oid, in_file = ctx.target(ref)
        if rt != "Observation" or not oid:
            ctx.fail(entry, f"DiagnosticReport.result[{n}]", "a result must reference an Observation")
        if in_file is None and ("Observation", oid) not in ctx.existing:
            ctx.fail(entry, f"DiagnosticReport.result[{n}]",
                     f"refers to Observation {str(ref.get('reference'))[:80]!r}, which is neither in this file "
                     "nor in the portal")
        ctx.reports_by_result[oid] = row
        existing_obs = ctx.existing.get(("Observation", oid))
        if existing_obs is not None and in_file is None:
            existing_obs.report = row
    result.patients.add(patient.id)
    return outcome


def _value(r: dict) -> tuple[float | None, float | None, str | None, str | None]:
    """(number, second number, text, unit) of an Observation."""
    if "valueQuantity" in r:
        q = r["valueQuantity"]
        return q.get("value"), None, _trunc(q.get("comparator"), 500), _trunc(q.get("unit") or q.get("code"), 40)
    comps = r.get("component") or []
    if comps:
        by_code = {_code(c.get("code")): c for c in comps}
        sys_, dia = by_code.get("8480-6"), by_code.get("8462-4")
        if sys_ and dia and "valueQuantity" in sys_ and "valueQuantity" in dia:
            return (sys_["valueQuantity"].get("value"), dia["valueQuantity"].get("value"), None,
                    _trunc(sys_["valueQuantity"].get("unit") or sys_["valueQuantity"].get("code"), 40))
        parts = []
        for c in comps:
            v, _v2, t, u = _value(c)
            shown = t if v is None else f"{v:g} {u or ''}".strip()
            if shown:
                parts.append(f"{_text_of(c.get('code'))}: {shown}")
        return None, None, _trunc("; ".join(parts) or None, 500), None
    for key in ("valueString", "valueCodeableConcept", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in r:
            v = r[key]
            if key == "valueInteger":
                return float(v), None, None, None
            if key == "valueCodeableConcept":
                return None, None, _text_of(v), None
            return None, None, _trunc(v, 500), None
    return None, None, None, None


def _observation(ctx: _Context, entry: Entry, result: ImportResult):
    patient = _patient_of(ctx, entry)
    if patient is None:
        return None
    r = entry.resource
    cats = [c.get("code") for cat in r.get("category") or [] for c in cat.get("coding") or []]
    report = ctx.reports_by_result.get(entry.id)
    tags = {t.get("code") for t in (r.get("meta") or {}).get("tag") or []}
    category = PATIENT_REPORTED if "patient-reported" in tags else \
        LAB if ("laboratory" in cats or (report is not None and not cats)) else \
        VITALS if "vital-signs" in cats else (cats[0] if cats else "other")
    num, num2, text, unit = _value(r)
    rr = (r.get("referenceRange") or [{}])[0]
    values = {
        "category": _trunc(category, 32), "code_system": _system(r.get("code")), "code": _code(r.get("code")),
        "display": _text_of(r.get("code"), "Result"), "status": _trunc(r.get("status"), 32),
        "value_num": num, "value_num2": num2, "value_text": text, "unit": unit,
        "ref_low": (rr.get("low") or {}).get("value"), "ref_high": (rr.get("high") or {}).get("value"),
        "ref_text": _trunc(rr.get("text"), 200),
        "interpretation": _trunc(_code((r.get("interpretation") or [None])[0]), 16),
        "effective_at": _first_when(r, "effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued"),
        "issued_at": parse_when(r.get("issued")),
    }
    row, outcome = _upsert(ctx, ("Observation", entry.id), Observation, values, entry, patient)
    if report is not None:
        row.report = report
    if outcome == "created" and category == LAB:
        waits = ctx.waits.get(patient.id)
        if waits is None:
            waits = ctx.waits[patient.id] = set(db.session.execute(
                select(ReleasePreference.category).where(ReleasePreference.patient_id == patient.id)).scalars())
        from flask import current_app

        row.sensitive_category = rules.sensitive_category(values["code"], report.category if report else None)
        plan = rules.initial_release(ctx.now, row.sensitive_category, waits,
                                     int(current_app.config.get("RECORDS_AUTO_RELEASE_DAYS", 7)))
        row.available_at, row.wait_for_clinician = plan.available_at, plan.wait_for_clinician
    elif outcome == "created":
        row.released_at = ctx.now  # vitals and other observations are not results to release
    result.patients.add(patient.id)
    return outcome


def _document(ctx: _Context, entry: Entry, result: ImportResult):
    patient = _patient_of(ctx, entry)
    if patient is None:
        return None
    r = entry.resource
    att = ((r.get("content") or [{}])[0] or {}).get("attachment") or {}
    context = r.get("context") or {}
    enc = (context.get("encounter") or [None])[0]
    values = {"resource_type": "DocumentReference",
              "title": _trunc(r.get("description") or att.get("title") or _text_of(r.get("type"), "Document"), 300),
              "date": _first_when(r, "date") or _first_when(context, "period"),
              "encounter_id": _encounter_id(ctx, enc), "author": _who(ctx, (r.get("author") or [None])[0]),
              "content_type": _trunc(att.get("contentType") or "application/octet-stream", 100),
              "content": _decode(att.get("data"))}
    _row, outcome = _upsert(ctx, ("record_documents:DocumentReference", entry.id), ClinicalDocument, values,
                            entry, patient)
    result.patients.add(patient.id)
    return outcome

"""Read FHIR R4 Patient resources into the fields of our Patient model (pure functions)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

DATA = Path(__file__).parent / "data"
_SUFFIX = re.compile(r"\d+$")


def _clean(name: str) -> str:
    return _SUFFIX.sub("", name or "").strip()


def _language(resource: dict) -> str:
    for comm in resource.get("communication", []):
        for coding in comm.get("language", {}).get("coding", []):
            code = (coding.get("code") or "").lower()
            if code.startswith("es"):
                return "es"
    return "en"


def parse_patient(resource: dict) -> dict | None:
    """Our fields from one Patient resource; None for deceased or unnamed patients."""
    if resource.get("resourceType") != "Patient":
        raise ValueError("not a Patient resource")
    if resource.get("deceasedDateTime") or resource.get("deceasedBoolean"):
        return None
    names = resource.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not official or not official.get("family") or not official.get("given"):
        return None
    telecom = resource.get("telecom", [])
    phone = next((t["value"] for t in telecom if t.get("system") == "phone"), None)
    email = next((t["value"] for t in telecom if t.get("system") == "email"), None)
    address = (resource.get("address") or [{}])[0]
    return {
        "fhir_id": resource["id"],
        "given_name": _clean(official["given"][0]),
        "family_name": _clean(official["family"]),
        "birth_date": date.fromisoformat(resource["birthDate"]),
        "sex": resource.get("gender"),
        "phone": phone,
        "email": email,
        "address_line": ", ".join(address.get("line", [])) or None,
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "preferred_language": _language(resource),
    }


def demo_patients() -> list[dict]:
    out = []
    with open(DATA / "synthea-bulk-10-Patient.ndjson", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                parsed = parse_patient(json.loads(line))
                if parsed:
                    out.append(parsed)
    for name in ("patient-example.json", "patient-example-f001-pieter.json"):
        parsed = parse_patient(json.loads((DATA / name).read_text(encoding="utf-8")))
        if parsed:
            out.append(parsed)
    return out

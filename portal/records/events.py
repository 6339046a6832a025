"""The records domain's audit tags and data categories, with plain-language labels. Views of the
record use core's PATIENT_VIEW tag with these categories ("Viewed: Lab results")."""

from __future__ import annotations

import enum

from flask_babel import lazy_gettext as _l

from portal.core.audit import register_categories, register_tags


class RecordTag(str, enum.Enum):
    IMPORTED = "record.imported"
    IMPORT_FAILED = "record.import_failed"
    EXPORTED = "record.exported"
    DOCUMENT_DOWNLOADED = "record.document_downloaded"
    RESULT_RELEASED = "result.released"
    RESULT_HELD = "result.held"
    RESULT_REVIEWED = "result.reviewed"
    RESULT_COMMENTED = "result.commented"
    RELEASE_PREFS = "result.release_preferences"
    READING_ADDED = "record.reading_added"


register_tags({
    RecordTag.IMPORTED: _l("Imported health records"),
    RecordTag.IMPORT_FAILED: _l("Refused a health-record import"),
    RecordTag.EXPORTED: _l("Downloaded the health record"),
    RecordTag.DOCUMENT_DOWNLOADED: _l("Downloaded a document"),
    RecordTag.RESULT_RELEASED: _l("Released results to the patient"),
    RecordTag.RESULT_HELD: _l("Held a result for review"),
    RecordTag.RESULT_REVIEWED: _l("Marked a result reviewed"),
    RecordTag.RESULT_COMMENTED: _l("Commented on a result"),
    RecordTag.RELEASE_PREFS: _l("Changed when results are shown"),
    RecordTag.READING_ADDED: _l("Added a home reading"),
})
register_categories({
    "health_summary": _l("Health summary (problems, medicines, allergies, immunizations, vital signs)"),
    "lab_results": _l("Lab results"),
    "visits": _l("Visits and visit notes"),
    "documents": _l("Documents"),
    "readings": _l("Home readings"),
    "medications": _l("Medicines and refills"),
    "record_export": _l("Health-record download"),
})

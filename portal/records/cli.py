"""`flask records import PATH…` (FHIR R4 Bundles, single resources, bulk ndjson files or folders) and
`flask records release` (run the periodic release once). Each PATH is one transaction: a bad file
exits non-zero naming the file, entry and field, and nothing from it is kept."""

from __future__ import annotations

import sys
import time

import click
from flask import current_app

from portal.extensions import db


class Progress:
    """A progress bar on a terminal; one summary line otherwise (logs, CI)."""

    def __init__(self, name: str, stream=None):
        self.name, self.stream = name, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.tty:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / max(time.monotonic() - self.start, 1e-6)
        self.stream.write(f"\r{self.name[:30]:30} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                          f"{rate:,.0f}/s")
        self.stream.flush()
        if done >= total:
            self.stream.write("\n")


def register(bp) -> None:
    @bp.cli.command("import")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
    @click.option("--source", default="ehr", show_default=True, help="Source system the data comes from.")
    @click.option("--no-notify", is_flag=True, help="Do not tell patients about newly released results.")
    def import_command(paths, source, no_notify):
        """Import FHIR R4 files (each all-or-nothing; re-importing changes nothing)."""
        from portal.core.audit import record_event
        from portal.records.events import RecordTag
        from portal.records.fhir.importer import ImportFailed, import_path

        failed = 0
        for path in paths:
            started = time.monotonic()
            try:
                with current_app.test_request_context("/"):
                    result = import_path(path, source=source, notify=not no_notify, progress=Progress(path))
                    record_event(RecordTag.IMPORTED, object_type="fhir_file",
                                 detail={"resources": result.total, "created": result.created,
                                         "updated": result.updated, "patients": len(result.patients)})
                    db.session.commit()
            except ImportFailed as err:
                db.session.rollback()
                failed += 1
                click.echo(f"ERROR {err} — nothing from this file was imported", err=True)
                continue
            except Exception:
                db.session.rollback()
                raise
            elapsed = time.monotonic() - started
            click.echo(f"{result.summary()} in {elapsed:.1f}s ({result.total / max(elapsed, 1e-6):,.0f}/s)")
        if failed:
            sys.exit(1)

    @bp.cli.command("release")
    def release_command():
        """Release every result whose time has come (what the periodic task does)."""
        from portal.records.tasks import release_due_results

        click.echo(f"released {release_due_results.run()}")

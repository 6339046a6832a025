"""The .ics file of an appointment (RFC 5545, built with `icalendar`). It carries what a calendar
needs and nothing clinical: the clinic's name, the time, the place (or "video visit"), and a link to
the signed-in page. Never the visit type or the provider's speciality."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from portal.core.db import utcnow
from portal.core.web import external_url
from portal.scheduling import rules


def appointment_ics(appointment, *, lang: str = "en", cancelled: bool = False) -> bytes:
    clinic = current_app.config["CLINIC_NAME"]
    with force_locale(lang or "en"):
        summary = _("Appointment at %(clinic)s", clinic=clinic)
        if appointment.visit_type.is_video:
            where = _("Video visit: join from your appointment page")
        else:
            loc = appointment.location
            where = ", ".join(p for p in (loc.name, loc.address) if p)
        link = external_url("appointments.detail", public_id=appointment.public_id)
        description = _("Details and changes (sign-in needed): %(link)s", link=link)
    from icalendar import Calendar, Event  # only where a calendar file is built (G9)

    cal = Calendar()
    cal.add("prodid", "-//Clinic portal//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    host = current_app.config["PUBLIC_BASE_URL"].split("://")[-1].split("/")[0].split(":")[0] or "portal"
    event.add("uid", f"{appointment.public_id}@{host}")
    event.add("dtstamp", utcnow().replace(microsecond=0))
    event.add("dtstart", appointment.starts_at.astimezone(rules.UTC))
    event.add("dtend", appointment.ends_at.astimezone(rules.UTC))
    event.add("summary", summary)
    event.add("location", where)
    event.add("description", description)
    event.add("url", link)
    event.add("sequence", appointment.sequence or 0)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    cal.add_component(event)
    return cal.to_ical()


def parse(data: bytes) -> list[dict]:
    """Events of an .ics file as plain values (tests and the staff check read files back with it)."""
    out = []
    from icalendar import Calendar

    for component in Calendar.from_ical(data).walk("VEVENT"):
        start: datetime = component.decoded("dtstart")
        end: datetime = component.decoded("dtend")
        out.append({"uid": str(component.get("uid")), "start": start, "end": end,
                    "summary": str(component.get("summary")), "location": str(component.get("location")),
                    "status": str(component.get("status")), "sequence": int(component.get("sequence", 0))})
    return out

"""Demo clinic for scheduling: two locations, four providers with weekly hours, seven visit types
(in person, video, established-only, request-only), a holiday, open slots for the coming weeks, a
busy "today" for staff, gladys@patient.example with an upcoming visit (check-in open) and a past one
with feedback, yvone@patient.example with a video visit, an open request and a feedback history for
the staff chart. Idempotent: rows are found by name or by a fixed booking key before being made."""

from __future__ import annotations

import random
from datetime import time, timedelta

from sqlalchemy import select

from portal.core.db import utcnow
from portal.extensions import db
from portal.scheduling import rules, slots
from portal.scheduling.models import (Appointment, AppointmentRequest, AvailabilityTemplate, Location, Provider,
                                      ScheduleException, SlotClaim, VisitFeedback, VisitType)

ORDER = 40

LOCATIONS = [
    ("Riverside Family Clinic – Main", "1200 River Road, Springfield, IL 62701", "(555) 010-2000", "America/Chicago"),
    ("Riverside Northside", "88 North Avenue, Springfield, IL 62702", "(555) 010-2100", "America/Chicago"),
]
# name, name_es, minutes, modality, booking, lead min, ahead days, cutoff h, questionnaire, description, desc_es
VISIT_TYPES = [
    ("Annual check-up", "Chequeo anual", 45, "in_person", "any", 240, 120, 24, "annual",
     "A yearly review of your health, screenings and vaccines.",
     "Una revisión anual de su salud, pruebas y vacunas."),
    ("New health concern", "Nuevo problema de salud", 30, "in_person", "any", 120, 60, 24, "general",
     "Something new you would like to have looked at.", "Algo nuevo que quiere que le revisen."),
    ("Follow-up visit", "Visita de seguimiento", 30, "in_person", "established", 120, 90, 24, "follow_up",
     "A check on something you were seen for before.", "Un control de algo por lo que ya le atendieron."),
    ("Video visit", "Visita por video", 30, "video", "any", 60, 30, 4, "video",
     "Talk with a clinician from home, on your phone or computer.",
     "Hable con un profesional desde casa, en su teléfono o computadora."),
    ("Flu shot", "Vacuna contra la gripe", 15, "in_person", "any", 60, 60, 2, "general",
     "A quick visit for your seasonal flu vaccine.", "Una visita rápida para su vacuna de la gripe."),
    ("Medication review", "Revisión de medicamentos", 30, "in_person", "established", 240, 60, 24, "follow_up",
     "Go through your medicines with a clinician.", "Revise sus medicamentos con un profesional."),
    ("Procedure consultation", "Consulta para un procedimiento", 60, "in_person", "request", 1440, 120, 48,
     "general", "The clinic books this for you after a short request.",
     "La clínica le da la cita después de una breve solicitud."),
]
# name, credentials, speciality, visit types, [(location index, weekdays, start, end)]
PROVIDERS = [
    ("Dr. Maya Patel", "MD", "Family medicine", ["Annual check-up", "New health concern", "Follow-up visit",
                                                "Video visit", "Medication review", "Procedure consultation"],
     [(0, (0, 1, 2, 3), time(8, 0), time(12, 0)), (0, (0, 1, 2, 3), time(13, 0), time(17, 0))]),
    ("Dr. James Okafor", "MD", "Internal medicine", ["Annual check-up", "New health concern", "Follow-up visit",
                                                    "Medication review", "Procedure consultation"],
     [(0, (1, 3, 4), time(9, 0), time(12, 30)), (1, (0, 2), time(9, 0), time(16, 0))]),
    ("Lena Ruiz", "NP", "Nurse practitioner", ["New health concern", "Video visit", "Flu shot", "Follow-up visit"],
     [(1, (0, 1, 2, 3, 4), time(8, 0), time(12, 0)), (1, (1, 3), time(13, 0), time(18, 0))]),
    ("Dr. Casey Clinician", "DO", "Family medicine", ["Annual check-up", "Video visit", "New health concern",
                                                     "Follow-up visit"],
     [(0, (0, 2, 4), time(13, 0), time(17, 0)), (0, (4,), time(8, 0), time(12, 0))]),
]


def _by_name(model, attr, value):
    return db.session.execute(select(model).where(getattr(model, attr) == value)).scalars().first()


def _setup():
    locations = []
    for name, address, phone, tz in LOCATIONS:
        loc = _by_name(Location, "name", name) or Location(name=name, address=address, phone=phone, timezone=tz)
        db.session.add(loc)
        locations.append(loc)
    types = {}
    for (name, name_es, minutes, modality, booking, lead, ahead, cutoff, questionnaire, desc, desc_es) in VISIT_TYPES:
        vt = _by_name(VisitType, "name", name) or VisitType(
            name=name, name_es=name_es, duration_minutes=minutes, modality=modality, booking=booking,
            min_lead_minutes=lead, max_ahead_days=ahead, cancel_cutoff_hours=cutoff, questionnaire=questionnaire,
            description=desc, description_es=desc_es, active=True)
        db.session.add(vt)
        types[name] = vt
    db.session.flush()
    providers = {}
    for name, credentials, speciality, offered, hours in PROVIDERS:
        provider = _by_name(Provider, "display_name", name)
        if provider is None:
            provider = Provider(display_name=name, credentials=credentials, speciality=speciality, active=True)
            provider.visit_types = [types[t] for t in offered]
            db.session.add(provider)
            db.session.flush()
            for loc_index, weekdays, start, end in hours:
                for day in weekdays:
                    db.session.add(AvailabilityTemplate(provider_id=provider.id, location_id=locations[loc_index].id,
                                                        weekday=day, start_time=start, end_time=end))
        providers[name] = provider
    db.session.flush()
    return locations, types, providers


def _place(patient, provider, location, vt, start, key, *, status=rules.BOOKED, actor=None, reason=None,
           created=None):
    """A demo appointment with its claims (past ones too), found by its fixed key when it exists."""
    found = _by_name(Appointment, "booking_key", key)
    if found is not None:
        return found
    end = start + timedelta(minutes=vt.duration_minutes)
    appointment = Appointment(patient_id=patient.id, provider_id=provider.id, location_id=location.id,
                              visit_type_id=vt.id, starts_at=start, ends_at=end, status=status, reason=reason,
                              source="staff", booking_key=key, booked_by_id=getattr(actor, "id", None),
                              video_room="demo-" + key[-12:] if vt.is_video else None)
    if created is not None:
        appointment.created_at = created
    try:
        with db.session.begin_nested():
            db.session.add(appointment)
            db.session.flush()
            if status in rules.ACTIVE:
                for cell in rules.cells(start, end - start):
                    db.session.add(SlotClaim(provider_id=provider.id, starts_at=cell, appointment_id=appointment.id))
            db.session.flush()
    except Exception:  # the time is taken in this demo database: skip it
        return None
    return appointment


def _next_slot(vt, provider, location, days_ahead: int):
    frm = utcnow() + timedelta(days=days_ahead)
    found = slots.first_available(vt, frm=frm, provider_ids=[provider.id],
                                  location_id=None if vt.is_video else location.id, staff=True, count=1)
    return found[0] if found else None


def _local(day, hour, minute, tz):
    return rules.wall_to_utc(day, time(hour, minute), tz)


def seed(ctx) -> None:
    locations, types, providers = _setup()
    main, north = locations
    tz = main.tz
    now = utcnow()
    today = now.astimezone(tz).date()
    clinician = ctx.staff["clinician"]
    patel, okafor, ruiz, casey = (providers[p[0]] for p in PROVIDERS)
    gladys, yvone = ctx.patient_of("gladys@patient.example"), ctx.patient_of("yvone@patient.example")
    if clinician is not None and casey.user_id is None:
        casey.user_id = clinician.id

    # a clinic holiday three weeks out (whole day, every provider)
    holiday = today + timedelta(days=21)
    if _by_name(ScheduleException, "label", "Clinic closed (staff training day)") is None:
        span = rules.whole_days(holiday, holiday, tz)
        db.session.add(ScheduleException(kind="training", label="Clinic closed (staff training day)",
                                         starts_at=span.start, ends_at=span.end))

    # gladys: an upcoming visit in about three days (check-in open) and a past one with feedback
    upcoming = _next_slot(types["New health concern"], patel, main, 3)
    if upcoming is not None:
        _place(gladys, patel, main, types["New health concern"], upcoming.start, "demo-gladys-upcoming",
               actor=clinician, reason="Knee pain after running", created=now - timedelta(days=5))
    past_day = today - timedelta(days=14)
    while past_day.weekday() > 3:
        past_day -= timedelta(days=1)
    past = _place(gladys, patel, main, types["Annual check-up"], _local(past_day, 9, 0, tz), "demo-gladys-past",
                  status=rules.COMPLETED, actor=clinician, created=now - timedelta(days=40))
    if past is not None and _by_name(VisitFeedback, "appointment_id", past.id) is None:
        db.session.add(VisitFeedback(patient_id=gladys.id, appointment_id=past.id, provider_id=patel.id,
                                     location_id=main.id, rating=5,
                                     comment="Dr. Patel took time to explain everything. Short wait."))
    # yvone: a video visit in five days
    video = _next_slot(types["Video visit"], ruiz, north, 5)
    if video is not None:
        _place(yvone, ruiz, video.location, types["Video visit"], video.start, "demo-yvone-video", actor=clinician,
               reason="Control de presión arterial", created=now - timedelta(days=2))

    # other patients: today's schedule for staff and a feedback history for the chart
    others = [p for fid, p in sorted(ctx.patients.items()) if p.id not in (gladys.id, yvone.id)]
    rng = random.Random(2026)
    if others:
        today_plan = [(patel, main, "New health concern", 9, 0), (patel, main, "Follow-up visit", 10, 30),
                      (okafor if today.weekday() in (1, 3, 4) else ruiz, main if today.weekday() in (1, 3, 4)
                       else north, "New health concern", 11, 0), (ruiz, north, "Flu shot", 8, 15),
                      (casey, main, "Annual check-up", 14, 0)]
        for n, (prov, loc, vt_name, hour, minute) in enumerate(today_plan):
            patient = others[n % len(others)]
            start = _local(today, hour, minute, tz)
            status = rules.ARRIVED if start < now - timedelta(minutes=30) and n % 2 == 0 else rules.BOOKED
            _place(patient, prov, loc, types[vt_name], start, f"demo-today-{today.isoformat()}-{n}", status=status,
                   actor=clinician, created=now - timedelta(days=7))
        comments = ["Friendly front desk.", "Had to wait 40 minutes past my time.", "Very thorough, thank you.",
                    "Easy to book online.", None, None, "Parking was hard to find.", "Great with my questions."]
        for n in range(24):
            prov = [patel, okafor, ruiz, casey][n % 4]
            loc = main if prov in (patel, casey) or n % 3 else north
            day = today - timedelta(days=3 + n * 3)
            start = _local(day, 9 + n % 7, 0, tz)
            vt = types["New health concern"] if prov is not ruiz else types["Flu shot"]
            a = _place(others[(n + 3) % len(others)], prov, loc, vt, start, f"demo-history-{n}",
                       status=rules.COMPLETED, actor=clinician, created=start - timedelta(days=10))
            if a is not None and _by_name(VisitFeedback, "appointment_id", a.id) is None:
                db.session.add(VisitFeedback(patient_id=a.patient_id, appointment_id=a.id, provider_id=prov.id,
                                             location_id=loc.id, rating=rng.choice([5, 5, 4, 4, 4, 3, 5, 2]),
                                             comment=comments[n % len(comments)]))
        patient = others[0]
        if db.session.execute(select(AppointmentRequest.id).where(AppointmentRequest.patient_id == patient.id)
                              ).first() is None:
            db.session.add(AppointmentRequest(patient_id=patient.id, visit_type_id=types["Procedure consultation"].id,
                                              preferred_times="mornings", reason="Mole removal consultation",
                                              preferences_note="Not on Fridays, please.", status="open"))
    db.session.flush()
    ctx.notes.append("Scheduling: /appointments (gladys has a visit with check-in open), staff /schedule, "
                     "admin /schedule/setup, feedback /schedule/feedback.")

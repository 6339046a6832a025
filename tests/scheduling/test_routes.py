"""The pages over HTTP: the booking steps and the "just taken" page that keeps the form, another
patient's appointment / check-in / questionnaire / card ids answering 404 with a denied row, the
card download's headers, staff booking from the patient page, and the dashboard cards."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from portal.core.audit import AuditEvent
from portal.core.db import utcnow
from portal.scheduling import services
from portal.scheduling.models import Appointment, CheckIn
from tests.helpers import form_token
from tests.scheduling.helpers import book_direct, make_clinic, shift
from tests.scheduling.test_waitlist_checkin_feedback import png_bytes


@pytest.fixture()
def clinic(db):
    return make_clinic()


def _denied(db, user):
    return db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "access.denied", AuditEvent.actor_id == user.id)).scalar_one()


def test_booking_steps_hold_review_confirm_and_the_loser_keeps_the_form(app, db, clinic, login_as):
    client, user = login_as("patient")
    rival, rival_user = login_as("patient")
    page = client.get(f"/appointments/book?type={clinic.consult.public_id}&provider={clinic.patel.public_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Choose a time" in html
    token = re.search(r'name="slot" value="([^"]+)"', html).group(1).replace("&#43;", "+")
    r = client.post("/appointments/book/review", data={"csrf_token": form_token(html), "slot": token,
                                                       "visit_type": clinic.consult.public_id})
    review = r.get_data(as_text=True)
    assert r.status_code == 200 and "holding this time" in review
    # the rival reaches the same time: it is held, so they are told at once, with other times
    rhtml = rival.get(f"/appointments/book?type={clinic.consult.public_id}&provider=any").get_data(as_text=True)
    r2 = rival.post("/appointments/book/review", data={"csrf_token": form_token(rhtml), "slot": token,
                                                       "visit_type": clinic.consult.public_id})
    assert r2.status_code == 409 and "just taken" in r2.get_data(as_text=True)
    fields = dict(re.findall(r'name="(visit_type|hold_key|booking_key)"[^>]*value="([^"]*)"', review))
    r = client.post("/appointments/book/confirm", data={"csrf_token": form_token(review), "slot": token,
                                                        "reason": "Sore knee", **fields})
    assert r.status_code == 302 and "/appointments/" in r.headers["Location"]
    appt = db.session.execute(select(Appointment).where(Appointment.patient_id == user._patient.id)).scalars().one()
    assert appt.reason == "Sore knee" and appt.source == "patient"
    # a confirm of the same time by the rival: 409, the reason kept, the next free times offered
    r = rival.post("/appointments/book/confirm", data={"csrf_token": form_token(rhtml), "slot": token,
                                                       "visit_type": clinic.consult.public_id,
                                                       "reason": "My typed reason", "booking_key": "b" * 32})
    body = r.get_data(as_text=True)
    assert r.status_code == 409 and "that time was just taken" in body
    assert "My typed reason" in body and body.count('type="radio" id="slot-') >= 3
    # double submit of the winner's form: still one appointment
    r = client.post("/appointments/book/confirm", data={"csrf_token": form_token(review), "slot": token,
                                                        "reason": "Sore knee", **fields})
    assert r.status_code == 302
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1


def test_another_patients_ids_answer_404_with_a_denied_row(app, db, clinic, login_as, make_user):
    victim = make_user("patient")
    staff = make_user("support")
    with app.test_request_context():
        appt = book_direct(victim._patient, clinic, actor=staff, notify_patient=False)
    shift(appt, starts_at=(utcnow() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0))
    db.session.add(CheckIn(patient_id=victim._patient.id, appointment_id=appt.id, questionnaire_key="general",
                           answers_json='{"main_concern": "private canary"}'))
    db.session.commit()
    client, intruder = login_as("patient")
    for path in (f"/appointments/{appt.public_id}", f"/appointments/{appt.public_id}/checkin",
                 f"/appointments/{appt.public_id}/checkin/questionnaire", f"/appointments/{appt.public_id}/calendar.ics",
                 f"/appointments/{appt.public_id}/checkin/insurance", f"/appointments/{appt.public_id}/feedback",
                 f"/appointments/{appt.public_id}/join"):
        before = _denied(db, intruder)
        r = client.get(path)
        assert r.status_code == 404, path
        assert "canary" not in r.get_data(as_text=True)
        assert _denied(db, intruder) == before + 1, path
    html = client.get("/appointments").get_data(as_text=True)
    r = client.post(f"/appointments/{appt.public_id}/cancel", data={"csrf_token": form_token(html)})
    assert r.status_code == 404
    db.session.expire_all()
    assert db.session.get(Appointment, appt.id).status == "booked"


def test_the_appointments_list_names_a_video_visit_once(app, db, clinic, login_as):
    client, user = login_as("patient")
    clinic.video.name = "Video visit"  # the type's name already says where: not "Video visit · … · Video visit"
    with app.test_request_context():
        book_direct(user._patient, clinic, actor=login_as("support")[1], vt=clinic.video,
                    slot=clinic.slot(clinic.video, staff=True), notify_patient=False)
        book_direct(user._patient, clinic, actor=login_as("support")[1], notify_patient=False)
    db.session.commit()
    html = client.get("/appointments").get_data(as_text=True)
    assert html.count("Video visit") == 1
    assert f"{clinic.consult.name} · " in html and clinic.location.name in html  # in person: the place is shown


def test_checkin_over_http_and_the_card_download(app, db, clinic, login_as, tmp_path):
    app.config["SCHEDULING_UPLOAD_DIR"] = str(tmp_path)
    try:
        client, user = login_as("patient")
        with app.test_request_context():
            appt = book_direct(user._patient, clinic, actor=login_as("support")[1], notify_patient=False)
        shift(appt, starts_at=(utcnow() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0))
        db.session.commit()
        base = f"/appointments/{appt.public_id}/checkin"
        html = client.get(base + "/insurance").get_data(as_text=True)
        r = client.post(base + "/insurance", data={"csrf_token": form_token(html), "payer": "Acme", "member_id": "M1",
                                                   "card_front": (io.BytesIO(b"<html>x</html>"), "card.png")},
                        content_type="multipart/form-data")
        body = r.get_data(as_text=True)
        assert r.status_code == 400 and "JPEG, PNG or WebP" in body and 'value="Acme"' in body
        r = client.post(base + "/insurance", data={"csrf_token": form_token(html), "payer": "Acme", "member_id": "M1",
                                                   "card_front": (io.BytesIO(png_bytes()), "card.png")},
                        content_type="multipart/form-data")
        assert r.status_code == 302
        page = client.get(base + "/insurance").get_data(as_text=True)
        card_url = re.search(r'href="(/appointments/cards/[0-9a-f]{32})"', page).group(1)
        r = client.get(card_url)
        assert r.status_code == 200 and r.data == png_bytes()
        assert r.headers["Content-Disposition"].startswith("attachment")
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Content-Type"] == "image/png"
        other, _ = login_as("patient")
        assert other.get(card_url).status_code == 404
        staff_client, _ = login_as("support")
        assert staff_client.get(card_url.replace("/appointments/cards/", "/schedule/cards/")).status_code == 200
        # questionnaire: save and resume, then submit with a missing answer -> field error, values kept
        html = client.get(base + "/questionnaire").get_data(as_text=True)
        r = client.post(base + "/questionnaire", data={"csrf_token": form_token(html), "main_concern": "Knee",
                                                       "submit_final": "0"})
        assert r.status_code == 302
        html = client.get(base + "/questionnaire").get_data(as_text=True)
        assert "Knee" in html
        r = client.post(base + "/questionnaire", data={"csrf_token": form_token(html), "main_concern": "Knee\x00",
                                                       "submit_final": "1"})
        assert r.status_code == 400 and "control" in r.get_data(as_text=True)
        r = client.post(base + "/questionnaire", data={"csrf_token": form_token(html), "main_concern": "Knee",
                                                       "submit_final": "1"})
        assert r.status_code == 400 and "Please answer this question" in r.get_data(as_text=True)
        db.session.expire_all()
        checkin = db.session.execute(select(CheckIn)).scalars().one()
        assert checkin.questionnaire_done_at is None and checkin.answers == {"main_concern": "Knee"}
    finally:
        app.config.pop("SCHEDULING_UPLOAD_DIR", None)


def test_staff_book_from_the_patient_page_and_see_it_on_the_schedule(app, db, clinic, login_as, make_user, mailbox):
    patient_user = make_user("patient")
    staff_client, staff = login_as("clinician")
    page = staff_client.get(f"/support/patients/{patient_user._patient.public_id}").get_data(as_text=True)
    assert "Book for this patient" in page
    url = f"/schedule/book?patient={patient_user._patient.public_id}&type={clinic.consult.public_id}&provider=any&location={clinic.location.public_id}"
    html = staff_client.get(url).get_data(as_text=True)
    token = re.search(r'name="slot" value="([^"]+)"', html).group(1)
    r = staff_client.post("/schedule/book/review", data={"csrf_token": form_token(html), "slot": token,
                                                         "visit_type": clinic.consult.public_id,
                                                         "patient": patient_user._patient.public_id})
    review = r.get_data(as_text=True)
    assert r.status_code == 200 and patient_user._patient.full_name in review
    fields = dict(re.findall(r'name="(visit_type|booking_key|patient)"[^>]*value="([^"]*)"', review))
    r = staff_client.post("/schedule/book/confirm", data={"csrf_token": form_token(review), "slot": token, **fields})
    assert r.status_code == 302 and "/schedule/appointments/" in r.headers["Location"]
    appt = db.session.execute(select(Appointment)).scalars().one()
    assert appt.source == "staff" and appt.booked_by_id == staff.id
    day = appt.starts_at.astimezone(clinic.location.tz).date().isoformat()
    sched = staff_client.get(f"/schedule?day={day}").get_data(as_text=True)
    assert patient_user._patient.full_name in sched
    assert mailbox.wait_for_to(patient_user.email) is not None


def test_dashboard_cards_and_query_counts_stay_flat(app, db, clinic, login_as, make_user):
    client, user = login_as("patient")
    staff = make_user("support")
    with app.test_request_context():
        for i in range(3):
            book_direct(user._patient, clinic, actor=staff, notify_patient=False, slot=clinic.slot(days_ahead=2 + i,
                                                                                               staff=True))
    db.session.commit()

    def count(path):
        statements = []
        listener = lambda *a, **k: statements.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            r = client.get(path)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert r.status_code == 200
        return len(statements), r.get_data(as_text=True)

    few, home = count("/home")
    assert "Book an appointment" in home and clinic.patel.display_name in home
    few_list, _ = count("/appointments")
    with app.test_request_context():
        for i in range(6):
            book_direct(user._patient, clinic, actor=staff, notify_patient=False,
                        slot=clinic.slot(days_ahead=12 + i, staff=True))
    db.session.commit()
    many, _ = count("/home")
    many_list, _ = count("/appointments")
    assert few == many and few_list == many_list


def test_after_the_cutoff_the_page_offers_a_call_and_a_message(app, db, clinic, login_as):
    client, user = login_as("patient")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=login_as("support")[1], notify_patient=False)
    shift(appt, starts_at=(utcnow() + timedelta(hours=5)).replace(minute=0, second=0, microsecond=0))
    db.session.commit()
    html = client.get(f"/appointments/{appt.public_id}").get_data(as_text=True)
    assert app.config["CLINIC_PHONE"] in html and "/messages/new?type=scheduling" in html
    assert "Reschedule" not in html
    r = client.post(f"/appointments/{appt.public_id}/cancel", data={"csrf_token": form_token(html)})
    assert r.status_code == 400 and "too close" in r.get_data(as_text=True)
    assert services is not None

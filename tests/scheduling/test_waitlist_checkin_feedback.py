"""Waitlist offers (in order, first to accept wins, expiry passes the time on), eCheck-in steps with
content-checked uploads and save-and-resume, and one feedback per visit with the staff report."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from portal.core.db import utcnow
from portal.core.errors import DomainError
from portal.scheduling import checkin, feedback, services, uploads, waitlist
from portal.scheduling.models import Appointment, InsuranceCard, WaitlistOffer
from tests.scheduling.helpers import book_direct, make_clinic, shift


@pytest.fixture()
def clinic(db):
    return make_clinic()


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 25), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_a_freed_time_is_offered_in_order_and_the_first_acceptance_wins(app, db, clinic, make_user, mailbox):
    app.config["WAITLIST_OFFER_BATCH"] = 2
    staff = make_user("support")
    holder = make_user("patient")
    waiting = [make_user("patient") for _ in range(3)]
    try:
        with app.test_request_context():
            freed = book_direct(holder._patient, clinic, actor=staff)
            later = clinic.slot(days_ahead=20)
            entries = []
            for w in waiting:
                appt = services.book(staff, w._patient, clinic.consult, clinic.slot(days_ahead=20).token, staff=True)
                entries.append(waitlist.join(w, appointment_id=appt.public_id))
            services.cancel(holder, freed)
            offers = db.session.execute(select(WaitlistOffer).order_by(WaitlistOffer.id)).scalars().all()
            assert [o.patient_id for o in offers] == [waiting[0]._patient.id, waiting[1]._patient.id]
            assert all(o.starts_at == freed.starts_at for o in offers)
            moved = waitlist.accept(waiting[1], offers[1].public_id)  # the second in line answers first
            assert moved.starts_at == freed.starts_at and moved.patient_id == waiting[1]._patient.id
            db.session.refresh(offers[0])
            assert offers[0].status == "taken"
            with pytest.raises(DomainError):
                waitlist.accept(waiting[0], offers[0].public_id)
        assert later is not None
    finally:
        app.config.pop("WAITLIST_OFFER_BATCH", None)


def test_expired_offers_pass_the_time_to_the_next_in_line(app, db, clinic, make_user):
    app.config["WAITLIST_OFFER_BATCH"] = 1
    staff = make_user("support")
    holder, first, second = make_user("patient"), make_user("patient"), make_user("patient")
    try:
        with app.test_request_context():
            freed = book_direct(holder._patient, clinic, actor=staff)
            waitlist.join(first, visit_type_id=clinic.consult.public_id, any_provider=True)
            waitlist.join(second, visit_type_id=clinic.consult.public_id, any_provider=True)
            services.cancel(holder, freed)
            offer = db.session.execute(select(WaitlistOffer)).scalars().one()
            assert offer.patient_id == first._patient.id
            assert waitlist.expire_offers(now=offer.expires_at + timedelta(seconds=1)) == 1
            nxt = db.session.execute(select(WaitlistOffer).where(WaitlistOffer.status == "open")).scalars().one()
            assert nxt.patient_id == second._patient.id and nxt.starts_at == freed.starts_at
            waitlist.decline(second, nxt.public_id)
            assert db.session.execute(select(func.count()).select_from(WaitlistOffer)
                                      .where(WaitlistOffer.status == "open")).scalar_one() == 0
            booked = waitlist.offer_page(second, nxt.public_id)
            assert booked["live"] is False
    finally:
        app.config.pop("WAITLIST_OFFER_BATCH", None)


def test_checkin_steps_save_resume_and_complete(app, db, clinic, make_user, tmp_path):
    app.config["SCHEDULING_UPLOAD_DIR"] = str(tmp_path)
    user = make_user("patient")
    try:
        with app.test_request_context():
            appt = book_direct(user._patient, clinic, actor=make_user("support"))
            shift(appt, starts_at=(utcnow() + timedelta(days=10)).replace(minute=0, second=0, microsecond=0))
            with pytest.raises(DomainError):  # opens 7 days before
                checkin.save_contact(user, appt.public_id, phone="555 0101", email=None, address_line=None,
                                     city=None, state=None, postal_code=None)
            shift(appt, starts_at=(utcnow() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0))
            c = checkin.save_contact(user, appt.public_id, phone="555 0199", email="new@example.org",
                                     address_line=None, city=None, state=None, postal_code=None)
            assert c.contact_changed is True and c.steps_done == 1
            with pytest.raises(DomainError) as err:
                checkin.save_insurance(user, appt.public_id, no_insurance=False, payer="Acme Health",
                                       member_id="M123", group=None, front=b"<svg onload=alert(1)>", back=None)
            assert err.value.field == "card_front"
            c = checkin.save_insurance(user, appt.public_id, no_insurance=False, payer="Acme Health",
                                       member_id="M123", group="G9", front=png_bytes(), back=None)
            card = db.session.execute(select(InsuranceCard)).scalars().one()
            assert card.content_type == "image/png" and card.stored_name.endswith(".png")
            assert (tmp_path / card.stored_name).read_bytes() == png_bytes()
            assert "insurance" not in card.stored_name and len(card.stored_name) > 40
            with pytest.raises(DomainError):
                checkin.save_medications(user, appt.public_id, current=False, changes="  ")
            checkin.save_medications(user, appt.public_id, current=False, changes="Stopped ibuprofen")
            c = checkin.save_questionnaire(user, appt.public_id, {"main_concern": "Knee", "hack": "x"}, final=False)
            assert c.questionnaire_done_at is None and c.answers == {"main_concern": "Knee"}
            assert c.completed_at is None
            c = checkin.save_questionnaire(user, appt.public_id, {"main_concern": "Knee", "pain": "3",
                                                                  "interpreter": "no"}, final=True)
            assert c.completed_at is not None and c.steps_done == 4
    finally:
        app.config.pop("SCHEDULING_UPLOAD_DIR", None)


@pytest.mark.parametrize("data,ok", [
    (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", True),
    (b"PK\x03\x04 zip archive", False),
    (b"<html><script>alert(1)</script></html>", False),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', False),
    (b"\x89PNG\r\n\x1a\n truncated", False),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", False),
])
def test_upload_types_are_decided_by_content(data, ok):
    assert (uploads.sniff(data) is not None) is ok
    assert uploads.sniff(png_bytes()) == "image/png"


def test_one_feedback_per_visit_and_the_report(app, db, clinic, make_user):
    user = make_user("patient")
    staff = make_user("support")
    with app.test_request_context():
        appt = book_direct(user._patient, clinic, actor=staff)
        with pytest.raises(DomainError):
            feedback.give(user, appt.public_id, 5, "too early")
        shift(appt, starts_at=(utcnow() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0))
        feedback.give(user, appt.public_id, 4, "Kind staff")
        with pytest.raises(DomainError):
            feedback.give(user, appt.public_id, 1, "again")
        report = feedback.report(staff)
    assert report["overall"]["count"] == 1 and report["overall"]["average"] == 4
    assert report["by_provider"][0]["label"].startswith("Dr. Test Patel")
    assert report["by_provider"][0]["distribution"] == [0, 0, 0, 1, 0]
    assert [c.comment for c in report["comments"]] == ["Kind staff"]
    assert db.session.execute(select(func.count()).select_from(Appointment)).scalar_one() == 1

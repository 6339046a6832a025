"""Every kind × language × channel, sent for real (SMTP mailbox, SMS files), carries no PHI: canary
values planted in the patient's record and in the caller's context never appear. Texts stay one GSM-7
SMS (≤ 160 characters) with the default clinic name and a portal link."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from portal.notifications import rules
from portal.notifications.kinds import NoticeKind
from tests.notifications.conftest import PHONE, notify_now

CANARIES = ["Canarygiven", "Canaryfamily", "CanaryLipidPanel", "CanaryDiagnosis", "CanaryCardiology", "4242.17",
            "CANARY-MRN-77"]
CONTEXT = {"starts_at": datetime(2026, 12, 9, 15, 30, tzinfo=timezone.utc), "confirm_by_text": True,
           "test_name": "CanaryLipidPanel", "diagnosis": "CanaryDiagnosis", "speciality": "CanaryCardiology",
           "amount": "4242.17"}
SUBJECTS = {
    "en": {"new_result": "You have a new test result", "message_reply": "You have a new message",
           "security": "Security notice for your patient portal account"},
    "es": {"new_result": "Tiene un nuevo resultado de prueba", "message_reply": "Tiene un mensaje nuevo"},
}


def _link(app, kind):
    # A realistic portal link: a route with a 32-character opaque id, as other domains will pass.
    return app.config["PUBLIC_BASE_URL"] + f"/{kind.value.split('_')[0]}/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("language", ["en", "es"])
def test_no_phi_in_any_notice(app, db, mailbox, sms_outbox, texting_patient, daytime, language):
    from tests.factories import PatientFactory

    patient = PatientFactory.create(given_name="Canarygiven", family_name="Canaryfamily", mrn="CANARY-MRN-77",
                                    birth_date=date(1961, 7, 23), preferred_language=language)
    user = texting_patient({k.value: "both" for k in NoticeKind}, language=language, patient=patient)
    for kind in NoticeKind:
        mailbox.clear()
        sms_outbox.clear()
        link = _link(app, kind)
        for context in ({}, CONTEXT):
            assert notify_now(app, db, patient, kind, link=link, context=context) is True
        emails = mailbox.wait_for(2)
        assert [m["To"] for m in emails] == [user.email] * 2, kind
        texts = sms_outbox.to(PHONE)
        assert len(texts) == (0 if kind == NoticeKind.SECURITY else 2), kind  # security: email only
        for msg in emails:
            body = msg.get_content()
            everything = msg["Subject"] + body
            assert link in body
            assert not [c for c in CANARIES if c in everything], (kind, language, everything)
            assert "1961" not in everything and PHONE not in everything
            assert ("no health information" if language == "en" else "información de salud") in body
            expected = SUBJECTS[language].get(kind.value)
            if expected:
                assert msg["Subject"] == expected
        plain, rich = texts or ("", "")
        for text in texts:
            assert link in text
            assert not [c for c in CANARIES if c in text], (kind, language, text)
            assert "1961" not in text and rules.is_gsm7(text), (kind, language, text)
        if texts:
            assert rules.sms_length(plain) <= 160, (kind, language, len(plain), plain)
            assert rules.sms_segments(rich) <= 2, (kind, language, rich)  # with a time and "Reply C…"
            if kind in (NoticeKind.APPOINTMENT_CONFIRMATION, NoticeKind.APPOINTMENT_REMINDER):
                assert ("Wed 9 Dec, 9:30 AM" if language == "en" else "9 dic, 9:30") in rich, rich
            if kind == NoticeKind.APPOINTMENT_REMINDER:
                assert ("Reply C to confirm" if language == "en" else "Responda C para confirmar") in rich


def test_verification_and_keyword_texts_are_one_sms(app, db):
    from portal.notifications import services

    with app.test_request_context():
        texts = [services._code_text("123456", lang) for lang in ("en", "es")]
        texts += [services._builtin_reply(which, lang) for which in ("stop", "start", "help") for lang in ("en", "es")]
        texts.append(services._unrecognised_reply())
    for text in texts[:-1]:
        assert rules.is_gsm7(text) and rules.sms_length(text) <= 160, text
    assert "Recibimos su texto" in texts[-1] and "got your text" in texts[-1]
    assert rules.is_gsm7(texts[-1]) and rules.sms_segments(texts[-1]) <= 2
    assert "123456" in texts[0] and "Clave" in texts[1]

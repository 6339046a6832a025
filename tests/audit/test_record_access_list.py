from tests.helpers import post_form


def test_patient_sees_staff_views_and_actions_in_plain_words(app, db, login_as):
    patient_client, patient = login_as("patient")
    support_client, support = login_as("support", display_name="Sam Helper")
    pid = patient._patient.public_id
    support_client.get(f"/support/patients/{pid}")
    post_form(support_client, f"/support/patients/{pid}/unlock", {}, get_path=f"/support/patients/{pid}")
    patient_client.get("/record")  # the patient's own views are not listed
    html = patient_client.get("/account").get_data(as_text=True)
    section = html.split('id="record-views"', 1)[1]
    assert "Sam Helper" in section
    assert "Viewed: Contact and personal details" in section
    assert "Unlocked your portal account" in section
    # two views of the support page within minutes count once
    assert section.count("Viewed: Contact and personal details") == 1
    assert section.count("Unlocked your portal account") == 1
    # header + those three + one row per section of other domains that showed this patient's data on
    # that page (each audits its own category: notification settings, appointments, …)
    others = section.count("Viewed: ") - section.count("Viewed: Contact and personal details")
    assert section.count("<tr>") == 1 + 2 + others


def test_repeated_views_within_minutes_count_once_later_ones_again(app, db, login_as, make_user):
    from datetime import datetime, timedelta, timezone

    import time_machine

    from portal.audit.services import staff_views_of_own_record
    from portal.core.audit import EventTag, record_event

    _client, patient = login_as("patient")
    sam, ann = make_user("support", display_name="Sam Helper"), make_user("clinician", display_name="Ann Doc")
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
    for minutes, who in ((0, sam), (1, sam), (3, sam), (2, ann), (20, sam), (21, sam)):
        with time_machine.travel(t0 + timedelta(minutes=minutes), tick=False):
            record_event(EventTag.PATIENT_VIEW, actor=who, patient=patient._patient, category="demographics")
    with app.test_request_context():
        rows = staff_views_of_own_record(patient)
    shown = [(name, when.astimezone(timezone.utc).strftime("%H:%M")) for when, name, *_ in rows]
    assert shown == [("Sam Helper", "15:21"), ("Sam Helper", "15:03"), ("Ann Doc", "15:02")], shown

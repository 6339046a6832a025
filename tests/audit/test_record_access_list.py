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
    assert section.count("<tr>") == 1 + 3  # header + two views of the support page + the unlock

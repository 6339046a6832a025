"""Every scheduling page renders for the roles that may see it (a quick whole-domain check)."""

from tests.scheduling.helpers import book_direct, make_clinic


def test_pages_render_for_patient_and_staff(app, db, login_as, make_user):
    clinic = make_clinic()
    client, user = login_as("patient")
    staff_client, staff = login_as("support")
    appt = book_direct(user._patient, clinic, actor=staff)
    db.session.commit()
    for path in ("/appointments", "/appointments/book", f"/appointments/book?type={clinic.consult.public_id}",
                 f"/appointments/book?type={clinic.consult.public_id}&provider=any",
                 f"/appointments/book?type={clinic.consult.public_id}&provider={clinic.patel.public_id}",
                 f"/appointments/book?type={clinic.video.public_id}&provider=any",
                 f"/appointments/{appt.public_id}", f"/appointments/{appt.public_id}/cancel",
                 f"/appointments/{appt.public_id}/checkin", "/home", f"/appointments/book?reschedule={appt.public_id}",
                 f"/appointments/request?type={clinic.procedure.public_id}"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:3000])
    for path in ("/schedule", "/schedule?span=week", f"/schedule/appointments/{appt.public_id}", "/schedule/book",
                 f"/schedule/book?patient={user._patient.public_id}&type={clinic.consult.public_id}&provider=any",
                 "/schedule/requests", "/schedule/feedback", "/staff",
                 f"/support/patients/{user._patient.public_id}"):
        r = staff_client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:3000])
    admin, _ = login_as("admin")
    for path in ("/schedule/setup", "/schedule/setup/locations/new", f"/schedule/setup/locations/{clinic.location.public_id}",
                 "/schedule/setup/providers/new", f"/schedule/setup/providers/{clinic.patel.public_id}",
                 f"/schedule/setup/providers/{clinic.patel.public_id}/hours", "/schedule/setup/visit-types/new",
                 f"/schedule/setup/visit-types/{clinic.consult.public_id}", "/schedule/setup/exceptions/new",
                 "/schedule/feedback"):
        r = admin.get(path)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:3000])

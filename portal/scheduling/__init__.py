"""Appointments: self-scheduling without double booking, reminders with one-click and two-way text
answers, the waitlist, eCheck-in, video visits, visit feedback, and the staff schedule and set-up.

Modules: rules.py (pure slot / time-zone / cut-off rules), models.py, slots.py (open-slot search over
the database), services.py (booking, cancelling, rescheduling, requests, staff actions), setup.py
(admin set-up), waitlist.py, reminders.py (+ links.py, signed one-click links; ics.py), checkin.py
(+ uploads.py, questionnaires.py), feedback.py, inbound.py (two-way texts), routes.py / staff_routes.py,
forms.py, tasks.py (Celery beat), demo.py.
"""

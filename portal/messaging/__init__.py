"""Secure messaging and the shared staff inbox (issue 9).

Modules: models.py (pools and members, threads, messages, attachments, canned replies), sanitize.py
(bleach: plain text with light formatting in, an allow-list out), attachments.py (type by content,
limits), storage.py (the small storage interface: a folder under instance/ by default), services.py
(open_thread, the patient's side, the staff inbox: claim/release/assign/transfer/status/notes/replies,
the pool dashboard), presence.py ("someone else is viewing"), forms.py, routes.py (patients:
/messages), staff_routes.py (staff: /inbox), labels.py, demo.py.
"""

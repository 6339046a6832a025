"""Audit report for admins, CSV export, and the patient's "who viewed my record"."""

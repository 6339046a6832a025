"""Billing: the patient's ledger (integer cents, immutable entries), statements (numbered, immutable,
PDF on demand with WeasyPrint), card payments through Stripe (Card Element → SetupIntent → our server
confirms a PaymentIntent; one attempt row per form so nothing is charged twice), Stripe webhooks,
refunds, reconciliation, and the billing staff pages.

Modules: money.py (pure rules), models.py, gateway.py (the only module importing stripe), services.py,
pdf.py, events.py (audit tags), forms.py, routes.py (patients + webhook), staff_routes.py, tasks.py, demo.py.
"""

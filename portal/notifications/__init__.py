"""Notifications: the one way any domain tells a patient something (`services.notify`)."""

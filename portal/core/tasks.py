"""Celery tasks shared by every domain (mail for now)."""

from __future__ import annotations

from email import message_from_string, policy

from portal.extensions import celery


@celery.task(bind=True, name="portal.send_email", autoretry_for=(OSError,), retry_backoff=30,
             retry_backoff_max=3600, max_retries=8, acks_late=True)
def send_email(self, raw: str) -> None:
    from portal.core.mail import deliver

    deliver(message_from_string(raw, policy=policy.SMTP))

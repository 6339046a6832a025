"""Mail: rendered in the recipient's language, sent only after the transaction commits.

No PHI in any email: templates carry a notice and a link, never clinical or billing detail.
Backends: "file" (.eml files under MAIL_FILE_DIR, the embedded default), "smtp" (production and tests,
against a real SMTP server).
"""

from __future__ import annotations

import logging
import smtplib
import threading
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import celery, db

log = logging.getLogger("portal.mail")


def build_message(to: str, template: str, locale: str = "en", attachments=(), **context) -> EmailMessage:
    """Render `template` ("name" under email/, or a domain's "<domain>/email/<name>") in `locale`.
    `attachments`: (filename, "type/subtype", bytes) triples, e.g. an appointment's .ics."""
    from portal.core.i18n import forget_request_translations

    forget_request_translations()  # the templates' catalogue is cached per request: switch it
    try:
        with force_locale(locale or "en"):
            folder = template if "/" in template else f"email/{template}"  # a domain's: "<domain>/email/<name>"
            subject = render_template(f"{folder}/subject.txt", **context).strip()
            body = render_template(f"{folder}/body.txt", **context)
    finally:
        forget_request_translations()
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = current_app.config["MAIL_DEFAULT_SENDER"]
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="portal.local")
    msg.set_content(body)
    for filename, mime, data in attachments or ():
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    return msg


def deliver(msg: EmailMessage) -> None:
    cfg = current_app.config
    backend = cfg["MAIL_BACKEND"]
    if backend == "file":
        folder = Path(cfg["MAIL_FILE_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uuid.uuid4().hex}.eml").write_bytes(bytes(msg))
        return
    if backend == "smtp":
        with smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=10) as smtp:
            if cfg["MAIL_USE_TLS"]:
                smtp.starttls()
            if cfg.get("MAIL_USERNAME"):
                smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
            smtp.send_message(msg)
        return
    raise RuntimeError(f"unknown MAIL_BACKEND {backend!r}")


@celery.task(bind=True, name="portal.send_email", autoretry_for=(OSError,), retry_backoff=30,
             retry_backoff_max=3600, max_retries=8, acks_late=True)
def send_email(self, raw: str) -> None:
    """Deliver one rendered message (retried with back-off while the SMTP server refuses)."""
    from email import message_from_string, policy

    deliver(message_from_string(raw, policy=policy.SMTP))


def send_after_commit(to: str, template: str, locale: str = "en", attachments=(), **context) -> None:
    """Queue a message; it is rendered now and handed to Celery only if the transaction commits."""
    msg = build_message(to, template, locale, attachments=attachments, **context)
    db.session.connection()  # make sure a transaction is open, so a rollback discards the mail
    db.session.info.setdefault("outgoing_mail", []).append(msg.as_string())


def _dispatch(session: Session) -> None:
    pending = session.info.pop("outgoing_mail", None)
    if not pending:
        return
    if send_email.app.conf.task_always_eager:
        # Embedded default and tests: deliver off the request thread, so a request that sends mail
        # takes as long as one that does not (no account enumeration by timing).
        _deliver_in_background(pending)
        return
    for i, raw in enumerate(pending):
        try:
            send_email.delay(raw)
        except Exception as exc:  # the broker (Redis) is unreachable: send from here rather than lose it
            log.warning("mail queue unavailable (%s): sending %d message(s) directly", type(exc).__name__,
                        len(pending) - i)
            _deliver_in_background(pending[i:])
            return


def _deliver_in_background(pending: list[str]) -> None:
    app = current_app._get_current_object()
    threading.Thread(target=_deliver_all, args=(app, pending), name="mail").start()


def _deliver_all(app, pending: list[str]) -> None:
    with app.app_context():
        for raw in pending:
            try:
                send_email.apply(args=(raw,), throw=False)
            except Exception:  # logged; never crash the thread
                log.exception("mail delivery failed")


def _discard(session: Session) -> None:
    session.info.pop("outgoing_mail", None)


def init_mail(app) -> None:
    if not getattr(init_mail, "_hooked", False):
        event.listen(Session, "after_commit", _dispatch)
        event.listen(Session, "after_soft_rollback", lambda s, prev: _discard(s) if prev.parent is None else None)
        init_mail._hooked = True

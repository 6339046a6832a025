"""Command line: flask demo seed|otp, flask users create-staff, flask audit verify, flask keys rotate."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from portal.extensions import db

demo_cli = AppGroup("demo", help="Demo data for a local portal.")
users_cli = AppGroup("users", help="Manage accounts.")
audit_cli = AppGroup("audit", help="Audit log tools.")
keys_cli = AppGroup("keys", help="Field-encryption keys.")


@demo_cli.command("seed")
def demo_seed():
    """Create (idempotently) the demo clinic and print the demo logins."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("demo data is never loaded in production")
    from portal.demo.seed import DEMO_PASSWORD, demo_totp_secret, seed

    with current_app.test_request_context():  # domain demos may build links and audit rows
        result = seed()
        db.session.commit()
    click.echo(f"Demo clinic ready: {result['patients']} patients from FHIR samples.")
    click.echo(f"Every demo account's password: {DEMO_PASSWORD}")
    click.echo("Two-step codes: run `flask demo otp EMAIL` (or add the TOTP key to an authenticator app).")
    for email, role in result["accounts"]:
        click.echo(f"  {role:10} {email:28} TOTP key {demo_totp_secret(email)}")
    patient, code = result["activation"]
    if code:
        click.echo(f"Activation to try: code {code}, birth date {patient.birth_date.isoformat()} "
                   f"({patient.full_name}) at /activate")
    for line in result["notes"]:
        click.echo(line)


@demo_cli.command("otp")
@click.argument("email")
def demo_otp(email):
    """Print the current TOTP code for a (demo) account."""
    if current_app.config["ENV_NAME"] == "production":
        raise click.ClickException("not available in production")
    import pyotp

    from portal.accounts.models import User
    from portal.core.crypto import decrypt

    user = db.session.execute(select(User).where(User.email == email.strip().lower())).scalars().first()
    if user is None or not user.totp_secret_enc:
        raise click.ClickException("no such account with two-step verification")
    click.echo(pyotp.TOTP(decrypt(user.totp_secret_enc)).now())


@users_cli.command("create-staff")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["clinician", "support", "billing", "admin"]))
@click.option("--name", "display_name", default=None, help="Full name shown to patients in the audit view.")
@click.option("--password-stdin", is_flag=True, help="Read the initial password from standard input.")
def create_staff(email, role, display_name, password_stdin):
    """Create a staff account. Without --password-stdin a set-password link is emailed.
    MFA enrolment is forced at first sign-in."""
    from portal.accounts import services
    from portal.core.errors import DomainError

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with current_app.test_request_context():
        try:
            user = services.create_staff(email, role, display_name or email.split("@")[0], password=password)
        except DomainError as err:
            raise click.ClickException(err.message) from None
        db.session.commit()
    click.echo(f"Created {role} account {user.email}.")


@audit_cli.command("verify")
@click.option("--checkpoints", "path", default=None, help="Checkpoint file (default: AUDIT_CHECKPOINT_FILE).")
def audit_verify(path):
    """Check the keyed audit chain and the signed checkpoints; exits 1 if rows were altered, re-chained
    or cut."""
    from portal.core.audit import verify

    report = verify(path)
    if report.bad_rows:
        click.echo(f"{report.checked} rows checked; {len(report.bad_rows)} do not match "
                   f"(first ids: {report.bad_rows[:10]})")
    for problem in report.problems:
        click.echo(problem)
    if not report.intact:
        sys.exit(1)
    if report.checkpoints:
        click.echo(f"{report.checked} rows checked against {report.checkpoints} checkpoints; chain intact.")
    else:
        click.echo(f"{report.checked} rows checked; chain intact. No checkpoint yet: a cut tail would not "
                   "show (run `flask audit checkpoint`, or the Celery beat does it).")


@audit_cli.command("checkpoint")
def audit_checkpoint():
    """Append a signed checkpoint (newest row, its hash, the row count) to AUDIT_CHECKPOINT_FILE."""
    from portal.core.audit import write_checkpoint

    cp = write_checkpoint()
    click.echo(f"Checkpoint: {cp['count']} rows, up to id {cp['last_id']}." if cp else "No audit rows yet.")


@keys_cli.command("rotate")
def keys_rotate():
    """Re-encrypt every TOTP secret under the newest FIELD_ENCRYPTION_KEYS key."""
    from portal.accounts.models import User, UserSession
    from portal.core.crypto import rotate

    n = 0
    for user in db.session.execute(select(User).where(User.totp_secret_enc.is_not(None))).scalars():
        user.totp_secret_enc = rotate(user.totp_secret_enc)
        n += 1
    for record in db.session.execute(select(UserSession).where(UserSession.totp_pending_enc.is_not(None))).scalars():
        record.totp_pending_enc = rotate(record.totp_pending_enc)  # secrets being set up, one per session
    db.session.commit()
    click.echo(f"Re-encrypted {n} secrets.")


class _LazyMigrateGroup(click.Group):
    """`flask db …` (Flask-Migrate): Alembic is imported when the command runs, not by every web worker."""

    def _real(self):
        from flask_migrate.cli import db as real

        return real

    def list_commands(self, ctx):
        return self._real().list_commands(ctx)

    def get_command(self, ctx, name):
        return self._real().get_command(ctx, name)

    def make_context(self, info_name, args, parent=None, **extra):
        return self._real().make_context(info_name, args, parent=parent, **extra)  # its options and callback

    def invoke(self, ctx):
        return self._real().invoke(ctx)


def register(app) -> None:
    for group in (demo_cli, users_cli, audit_cli, keys_cli):
        app.cli.add_command(group)
    app.cli.add_command(_LazyMigrateGroup("db", help="Perform database migrations (Flask-Migrate)."))

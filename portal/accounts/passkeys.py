"""Passkeys (WebAuthn Level 3, verified by py_webauthn): enrol, list, remove, and sign in with one —
as the second factor after the password, or alone (a discoverable credential with user verification).

Beside TOTP (mfa.py), never instead of it. The rules the spec and SECURITY.md §52 ask for:
- Relying-party id and origin come from configuration (PUBLIC_BASE_URL, or WEBAUTHN_RP_ID /
  WEBAUTHN_ORIGIN); the library checks both on every response.
- Challenges are 32 random bytes stored server-side (`webauthn_challenges`), bound to the browser
  session that asked (a keyed hash of a random value in its cookie) and, when someone is signed in or
  half-way, to the account; they expire after 5 minutes and are consumed by one conditional UPDATE, so
  a replayed response never wins, even twice at once.
- User verification is required (AAL2 on its own: possession + the device's PIN or biometric).
- The sign counter is checked after the signature, so a counter that goes backwards on a genuine
  signature is the "cloned authenticator" signal: refused, audited, and the passkey is marked for
  support. The backup-eligible flag may never change for a credential; the backed-up flag is updated.
- A removed passkey is deleted: its credential id matches nothing, so it never signs in again.

This module holds the rules and the ceremony; `session_binding()` is the one piece of request
mechanics (like sessions.py, it reads the cookie). Services flush, never commit.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, delete, func, or_, select, update

from portal.accounts import devices, lockout
from portal.accounts.models import Passkey, User, WebAuthnChallenge
from portal.core.access import deny
from portal.core.audit import EventTag, record_event, register_tags
from portal.core.crypto import keyed_hash
from portal.core.db import utcnow
from portal.core.errors import DomainError, NotFound
from portal.extensions import db


class _WebAuthn:
    """py_webauthn, imported on first use. It pulls in pyasn1, cbor2, cryptography's X.509 and aiohttp: about
    16 MiB that every web worker would otherwise carry for pages that never touch a passkey (PERFORMANCE.md G9;
    tests/ops/test_anonymous_pages.py checks a fresh worker does not import it)."""

    def __getattr__(self, name):
        import webauthn
        from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, cose, exceptions, structs

        found = {"base64url_to_bytes": base64url_to_bytes, "bytes_to_base64url": bytes_to_base64url,
                 "COSEAlgorithmIdentifier": cose.COSEAlgorithmIdentifier,
                 "WebAuthnException": exceptions.WebAuthnException}
        for module in (webauthn, structs):
            if hasattr(module, name):
                found[name] = getattr(module, name)
        if name not in found:
            raise AttributeError(name)
        self.__dict__.update(found)
        return found[name]


wa = _WebAuthn()


CHALLENGE_SECONDS = 5 * 60
CEREMONY_TIMEOUT_MS = CHALLENGE_SECONDS * 1000
SESSION_KEY = "webauthn"
MAX_PASSKEYS = 10
NAME_MAX = 64


def _algorithms() -> list:
    return [wa.COSEAlgorithmIdentifier.ECDSA_SHA_256, wa.COSEAlgorithmIdentifier.EDDSA,
            wa.COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256]


def _transports() -> set[str]:
    return {t.value for t in wa.AuthenticatorTransport}


class Purpose(str, enum.Enum):
    REGISTER = "register"  # from the account page (signed in, re-authenticated)
    SETUP = "setup"  # the first second factor, from the password-only session
    SECOND_FACTOR = "second"  # after the password
    SIGNIN = "signin"  # alone: discoverable credential, no password
    REAUTH = "reauth"  # signed in: confirm it is you before a sensitive change


class PasskeyEvent(str, enum.Enum):
    ADDED = "auth.passkey.added"
    RENAMED = "auth.passkey.renamed"
    REMOVED = "auth.passkey.removed"
    REFUSED = "auth.passkey.refused"
    CLONE_SUSPECTED = "auth.passkey.clone_suspected"


register_tags({
    PasskeyEvent.ADDED: _l("Passkey added"),
    PasskeyEvent.RENAMED: _l("Passkey renamed"),
    PasskeyEvent.REMOVED: _l("Passkey removed"),
    PasskeyEvent.REFUSED: _l("Passkey refused"),
    PasskeyEvent.CLONE_SUSPECTED: _l("Passkey refused: its counter went backwards (possibly copied)"),
})


class PasskeyRefused(DomainError):
    """A ceremony that did not verify: the message says what to do; `reason` goes to the audit row."""

    def __init__(self, message: str, reason: str, field: str | None = None):
        super().__init__(message, field=field)
        self.reason = reason


def _generic() -> str:
    return _("That passkey did not work. Try again, or sign in with your password and code.")


_MESSAGES = {
    "expired": lambda: _("That took longer than 5 minutes. Try again."),
    "replayed": lambda: _("That passkey request was already used. Try again."),
    "unknown_credential": lambda: _("This passkey is not registered for this portal, or it was removed. Sign in "
                                    "with your password instead, or use another passkey."),
    "other_account": lambda: _("That passkey belongs to a different account. Use a passkey you added to this "
                               "account."),
    "user_not_verified": lambda: _("Your device did not confirm it was you. Try again and unlock it with your "
                                   "fingerprint, face or screen lock when asked."),
    "clone_suspected": lambda: _("For your security this passkey was refused. Sign in another way, and call the "
                                 "clinic so we can check your account."),
    "already_registered": lambda: _("That passkey is already registered. Choose another device or security key."),
    "too_many": lambda: _("You already have %(n)d passkeys. Remove one before adding another.", n=MAX_PASSKEYS),
    "cancelled": lambda: _("The passkey request was cancelled or timed out. Try again when you are ready."),
}


def refused(reason: str, field: str | None = None) -> PasskeyRefused:
    message = _MESSAGES.get(reason)
    return PasskeyRefused(message() if message else _generic(), reason, field=field)


# --- relying party --------------------------------------------------------------------------

def rp_id() -> str:
    configured = current_app.config.get("WEBAUTHN_RP_ID")
    return configured or (urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "")


def expected_origin() -> str:
    configured = current_app.config.get("WEBAUTHN_ORIGIN")
    if configured:
        return configured.rstrip("/")
    parts = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    if current_app.config.get("WEBAUTHN_RP_ID"):  # e.g. localhost while PUBLIC_BASE_URL says 127.0.0.1
        return f"{parts.scheme}://{rp_id()}" + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{parts.netloc}"


def available() -> bool:
    """Browsers accept only a domain name as the relying-party id (never an IP address such as the
    127.0.0.1 of a bare `make run`): passkeys are offered only where they can work."""
    host = rp_id()
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


# --- challenges: server-side, single use, bound to the session, 5 minutes ----------------------

def session_binding(create: bool = True) -> str | None:
    """The keyed hash of this browser session's WebAuthn value (made on first use). A challenge issued
    to one browser session cannot be answered from another."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or len(value) < 32:
        if not create:
            return None
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return keyed_hash(value, "webauthn")


def _new_challenge(purpose: Purpose, binding: str, user: User | None) -> bytes:
    now = utcnow()
    db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < now - timedelta(hours=1)))
    raw = secrets.token_bytes(32)
    db.session.add(WebAuthnChallenge(challenge=wa.bytes_to_base64url(raw), purpose=purpose.value, binding=binding,
                                     user_id=user.id if user is not None else None,
                                     expires_at=now + timedelta(seconds=CHALLENGE_SECONDS)))
    db.session.flush()
    return raw


def _client_challenge(credential: dict) -> str:
    try:
        client_data = json.loads(wa.base64url_to_bytes(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
    except Exception:
        raise refused("malformed")
    if not isinstance(challenge, str) or not 16 <= len(challenge) <= 128:
        raise refused("malformed")
    return challenge.rstrip("=")


def _consume_challenge(credential: dict, purpose: Purpose, binding: str | None, user: User | None) -> bytes:
    """Claim the challenge the response answers, once: one conditional UPDATE (used, unexpired, this
    purpose, this browser session, this account). Anything else is refused with the reason."""
    challenge = _client_challenge(credential)
    now = utcnow()
    owner = WebAuthnChallenge.user_id.is_(None) if user is None else WebAuthnChallenge.user_id == user.id
    claimed = db.session.execute(
        update(WebAuthnChallenge)
        .where(WebAuthnChallenge.challenge == challenge, WebAuthnChallenge.purpose == purpose.value,
               WebAuthnChallenge.binding == (binding or "-"), owner, WebAuthnChallenge.used_at.is_(None),
               WebAuthnChallenge.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if claimed == 1:
        return wa.base64url_to_bytes(challenge)
    row = db.session.execute(select(WebAuthnChallenge).where(WebAuthnChallenge.challenge == challenge)
                             .execution_options(populate_existing=True)).scalars().first()
    if row is None:
        raise refused("unknown_challenge")
    if row.used_at is not None:
        raise refused("replayed")
    if row.expires_at <= now:
        raise refused("expired")
    raise refused("wrong_session")


def _parse(credential_json: str | None) -> dict:
    try:
        credential = json.loads(credential_json or "")
    except ValueError:
        raise refused("malformed")
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise refused("malformed")
    if credential.get("error"):  # the browser's own refusal (NotAllowedError: cancelled, timed out)
        raise refused("cancelled")
    return credential


# --- listing ----------------------------------------------------------------------------------

def list_for(user: User) -> list[Passkey]:
    return list(db.session.execute(select(Passkey).where(Passkey.user_id == user.id)
                                   .order_by(Passkey.created_at, Passkey.id)).scalars())


def count_for(user: User) -> int:
    return db.session.execute(select(func.count(Passkey.id)).where(Passkey.user_id == user.id)).scalar_one()


def own_passkey(user: User, public_id: str) -> Passkey:
    """One of the user's own passkeys; anything else is a 404 with a 'denied' row."""
    row = db.session.execute(select(Passkey).where(Passkey.public_id == (public_id or "")[:32],
                                                   Passkey.user_id == user.id)).scalars().first()
    if row is None:
        deny("passkey", public_id, actor=user)
        raise NotFound()
    return row


def default_name(user_agent: str | None) -> str:
    return devices.describe(user_agent)[:NAME_MAX] or _("My passkey")


# --- registration -------------------------------------------------------------------------------

def _user_handle(user: User) -> bytes:
    if not user.webauthn_user_id:
        user.webauthn_user_id = wa.bytes_to_base64url(secrets.token_bytes(32))
        db.session.flush()
    return wa.base64url_to_bytes(user.webauthn_user_id)


def _descriptors(rows) -> list[wa.PublicKeyCredentialDescriptor]:
    out = []
    for row in rows:
        transports = [wa.AuthenticatorTransport(t) for t in (row.transports or "").split(",") if t in _transports()]
        out.append(wa.PublicKeyCredentialDescriptor(id=wa.base64url_to_bytes(row.credential_id), transports=transports or None))
    return out


def registration_options(user: User, binding: str, purpose: Purpose = Purpose.REGISTER) -> str:
    """navigator.credentials.create() options (JSON): a discoverable credential with user
    verification, no attestation (we trust no vendor list; the passkey is the account's factor, not
    proof of a device model), the account's existing passkeys excluded."""
    options = wa.generate_registration_options(
        rp_id=rp_id(), rp_name=current_app.config["CLINIC_NAME"], user_name=user.email,
        user_id=_user_handle(user), user_display_name=user.display_name or user.email,
        challenge=_new_challenge(purpose, binding, user), timeout=CEREMONY_TIMEOUT_MS,
        attestation=wa.AttestationConveyancePreference.NONE,
        authenticator_selection=wa.AuthenticatorSelectionCriteria(
            resident_key=wa.ResidentKeyRequirement.REQUIRED, user_verification=wa.UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(list_for(user)), supported_pub_key_algs=_algorithms())
    return wa.options_to_json(options)


def _audit_refusal(reason: str, user: User | None, purpose: Purpose, passkey: Passkey | None = None) -> None:
    record_event(PasskeyEvent.REFUSED, actor=user, outcome="failure",
                 object_type="passkey" if passkey is not None else None,
                 object_id=passkey.public_id if passkey is not None else None,
                 detail={"reason": reason, "purpose": purpose.value})
    db.session.flush()


def register(user: User, credential_json: str, name: str | None, binding: str | None, *,
             purpose: Purpose = Purpose.REGISTER, user_agent: str | None = None) -> Passkey:
    """Verify navigator.credentials.create()'s answer and store the passkey. Audited, and the
    account's owner gets the security notice by email."""
    try:
        credential = _parse(credential_json)
        expected = _consume_challenge(credential, purpose, binding, user)
        if count_for(user) >= MAX_PASSKEYS:
            raise refused("too_many")
        try:
            verified = wa.verify_registration_response(
                credential=credential, expected_challenge=expected, expected_rp_id=rp_id(),
                expected_origin=expected_origin(), require_user_verification=True,
                supported_pub_key_algs=_algorithms())
        except (wa.WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise refused(_reason(exc))
        if not 16 <= len(verified.credential_id) <= 1023:  # §7.1 step 24 (and our column)
            raise refused("invalid_response")
        credential_id = wa.bytes_to_base64url(verified.credential_id)
        if db.session.execute(select(Passkey.id).where(Passkey.credential_id == credential_id)).first():
            raise refused("already_registered")
    except PasskeyRefused as exc:
        _audit_refusal(exc.reason, user, purpose)
        raise
    transports = credential["response"].get("transports") or []
    known = _transports()
    transports = [t for t in transports if isinstance(t, str) and t in known] if isinstance(transports, list) else []
    now = utcnow()
    passkey = Passkey(
        user_id=user.id, credential_id=credential_id, public_key=verified.credential_public_key,
        sign_count=verified.sign_count, aaguid=str(verified.aaguid)[:36], transports=",".join(transports)[:200] or None,
        name=(name or "").strip()[:NAME_MAX] or default_name(user_agent),
        device_label=devices.describe(user_agent)[:120] if user_agent else None,
        backup_eligible=verified.credential_device_type == wa.CredentialDeviceType.MULTI_DEVICE,
        backed_up=bool(verified.credential_backed_up), last_used_at=None)
    db.session.add(passkey)
    if user.passkeys_enabled_at is None:
        user.passkeys_enabled_at = now
    db.session.flush()
    record_event(PasskeyEvent.ADDED, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"purpose": purpose.value, "backup_eligible": passkey.backup_eligible})
    security_notice(user)
    return passkey


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "origin" in text:
        return "wrong_origin"
    if "rp id" in text:
        return "wrong_rp_id"
    if "user verification" in text:
        return "user_not_verified"
    if "user was not present" in text or "user presence" in text:
        return "user_not_present"
    if "signature" in text:
        return "bad_signature"
    if "challenge" in text:
        return "wrong_challenge"
    return "invalid_response"


# --- authentication -----------------------------------------------------------------------------

def authentication_options(binding: str, purpose: Purpose, user: User | None = None) -> str:
    """navigator.credentials.get() options (JSON). Alone (no user yet): an empty allow list, so the
    browser offers the passkeys it holds for this site (discoverable credentials, conditional UI);
    as the second factor: the account's own passkeys."""
    allow = _descriptors(list_for(user)) if user is not None else []
    options = wa.generate_authentication_options(
        rp_id=rp_id(), challenge=_new_challenge(purpose, binding, user), timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=allow, user_verification=wa.UserVerificationRequirement.REQUIRED)
    return wa.options_to_json(options)


def _find(credential: dict) -> Passkey | None:
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or len(raw) > 1400:
        raise refused("malformed")
    try:
        key = wa.bytes_to_base64url(wa.base64url_to_bytes(raw))
    except Exception:
        raise refused("malformed")
    return db.session.execute(select(Passkey).where(Passkey.credential_id == key)
                              .execution_options(populate_existing=True)).scalars().first()


def passkey_key(passkey: Passkey, user: User) -> tuple[str, str]:
    """Failures with a passkey count on that passkey's own key (like a remembered device's), and an
    unlock or an emailed reset clears it with the address's."""
    return lockout.device_key(user.email, f"passkey:{passkey.public_id}"), lockout.account_key(user.email)


def authenticate(credential_json: str, binding: str | None, ip: str | None, *, purpose: Purpose,
                 user: User | None = None) -> tuple[User, Passkey]:
    """Verify navigator.credentials.get()'s answer: as the second factor of `user`, or alone
    (`user` None: the credential names the account). Returns the account and the passkey used;
    raises PasskeyRefused (audited; failures throttled per IP and per passkey), Throttled, CapReached."""
    lockout.check_ip("ip-fail", ip)
    passkey = None
    owner = user
    try:
        credential = _parse(credential_json)
        expected = _consume_challenge(credential, purpose, binding, user)
        passkey = _find(credential)
        if passkey is None:
            raise refused("unknown_credential")
        if user is not None and passkey.user_id != user.id:
            passkey = None  # never touch another account's passkey or counters
            raise refused("other_account")
        owner = db.session.get(User, passkey.user_id)
        handle = credential["response"].get("userHandle")
        if user is None and (not handle or not owner.webauthn_user_id
                             or wa.bytes_to_base64url(wa.base64url_to_bytes(handle)) != owner.webauthn_user_id):
            raise refused("wrong_user_handle")  # §7.2 step 6: the handle must name the credential's owner
        if owner.disabled_at is not None:
            raise refused("disabled")
        key, email_key = passkey_key(passkey, owner)
        lockout.check(key, ip)
        try:
            verified = wa.verify_authentication_response(
                credential=credential, expected_challenge=expected, expected_rp_id=rp_id(),
                expected_origin=expected_origin(), credential_public_key=passkey.public_key,
                credential_current_sign_count=0,  # the counter is checked below, after the signature
                require_user_verification=True)
        except (wa.WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise refused(_reason(exc))
        if verified.credential_device_type == wa.CredentialDeviceType.MULTI_DEVICE and not passkey.backup_eligible \
                or verified.credential_device_type != wa.CredentialDeviceType.MULTI_DEVICE and passkey.backup_eligible:
            raise refused("backup_eligibility_changed")  # §7.2 step 21: BE never changes for a credential
        _claim_counter(passkey, owner, verified.new_sign_count, bool(verified.credential_backed_up))
    except PasskeyRefused as exc:
        _audit_refusal(exc.reason, owner, purpose, passkey)
        if passkey is not None and owner is not None:
            key, email_key = passkey_key(passkey, owner)
            lockout.record_failure(key, ip, owner, EventTag.SIGNIN_FAILURE if user is None else EventTag.MFA_FAILURE,
                                   f"passkey:{exc.reason}", email_key=email_key)
        else:
            lockout.count_ip("ip-fail", ip)
        raise
    lockout.clear(key)
    return owner, passkey


def _claim_counter(passkey: Passkey, owner: User, new_count: int, backed_up: bool) -> None:
    """Store the new counter in one conditional UPDATE: it must go up (or stay 0 on authenticators
    that do not count, as synced passkeys do). A counter at or below the stored one on a genuine
    signature means two copies of the key may exist: refused, marked for support, audited."""
    now = utcnow()
    grows = or_(Passkey.sign_count < new_count, and_(Passkey.sign_count == 0, new_count == 0))
    claimed = db.session.execute(
        update(Passkey).where(Passkey.id == passkey.id, grows)
        .values(sign_count=new_count, last_used_at=now, backed_up=backed_up)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed == 1:
        passkey.sign_count, passkey.last_used_at, passkey.backed_up = new_count, now, backed_up
        return
    stored = passkey.sign_count
    passkey.clone_suspected_at = now
    record_event(PasskeyEvent.CLONE_SUSPECTED, actor=owner, outcome="failure", object_type="passkey",
                 object_id=passkey.public_id, detail={"stored": stored, "received": new_count})
    db.session.flush()
    raise refused("clone_suspected")


def sign_in(credential_json: str, binding: str | None, ip: str | None) -> User:
    """"Sign in with a passkey": no password. Possession of the passkey plus the device's own user
    verification is a multi-factor authenticator (NIST SP 800-63B AAL2). The route starts the session
    exactly like the password + code path."""
    user, passkey = authenticate(credential_json, binding, ip, purpose=Purpose.SIGNIN)
    lockout.clear(lockout.account_key(user.email))
    record_event(EventTag.SIGNIN_SUCCESS, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"step": "passkey"})
    record_event(EventTag.MFA_SUCCESS, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"method": "passkey"})
    db.session.flush()
    return user


def second_factor(user: User, credential_json: str, binding: str | None, ip: str | None) -> Passkey:
    """The second step after the password, with one of the account's own passkeys."""
    _user, passkey = authenticate(credential_json, binding, ip, purpose=Purpose.SECOND_FACTOR, user=user)
    lockout.clear(lockout.account_key(user.email))
    record_event(EventTag.MFA_SUCCESS, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"method": "passkey"})
    db.session.flush()
    return passkey


def reauthenticate(user: User, record, credential_json: str, binding: str | None, ip: str | None) -> Passkey:
    """"Confirm it is you" with one of the account's passkeys instead of the password (SECURITY.md §8:
    a fresh authentication within 5 minutes); recorded like the password's re-authentication."""
    from portal.accounts import sessions

    _user, passkey = authenticate(credential_json, binding, ip, purpose=Purpose.REAUTH, user=user)
    sessions.mark_reauthenticated(record)
    record_event(EventTag.REAUTH, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"method": "passkey"})
    return passkey


# --- renaming, removal, reset, notices ------------------------------------------------------------

def rename(user: User, public_id: str, name: str) -> Passkey:
    passkey = own_passkey(user, public_id)
    name = (name or "").strip()[:NAME_MAX]
    if not name:
        raise DomainError(_("Enter a name, for example “My phone”."), field="name")
    passkey.name = name
    db.session.flush()
    record_event(PasskeyEvent.RENAMED, actor=user, object_type="passkey", object_id=passkey.public_id)
    return passkey


def remove(user: User, record, public_id: str, password: str, code: str | None, ip: str | None) -> Passkey:
    """Remove one of the user's passkeys after the current password. The last passkey also needs a
    code from the authenticator app (or a recovery code); an account with no app keeps its last
    passkey (add another first), so no account is ever left without a second factor."""
    from portal.accounts import services  # services never imports this module's callers

    passkey = own_passkey(user, public_id)
    services.reauthenticate(user, record, password, ip)
    # Serialise removals of one account's passkeys, so two at once cannot both think "not the last".
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    remaining = count_for(user)
    if remaining <= 1:
        if not user.totp_enabled:
            raise DomainError(_("This is your only passkey and your account has no authenticator app. Add another "
                                "passkey first, then remove this one."))
        if not (code or "").strip():
            raise DomainError(_("This is your last passkey: also enter a 6-digit code from your authenticator "
                                "app, or a recovery code."), field="code")
        recovery = len((code or "").replace("-", "").replace(" ", "")) > 8
        services.verify_second_factor(user, code, ip, recovery=recovery, record=record)
    db.session.delete(passkey)
    if remaining <= 1:
        user.passkeys_enabled_at = None
    db.session.flush()
    record_event(PasskeyEvent.REMOVED, actor=user, object_type="passkey", object_id=passkey.public_id,
                 detail={"last": remaining <= 1})
    security_notice(user)
    return passkey


def remove_all(user: User) -> int:
    """Support's MFA reset (after its identity check): every passkey goes with the app."""
    n = db.session.execute(delete(Passkey).where(Passkey.user_id == user.id)).rowcount
    db.session.execute(update(WebAuthnChallenge).where(WebAuthnChallenge.user_id == user.id,
                                                       WebAuthnChallenge.used_at.is_(None))
                       .values(used_at=utcnow()).execution_options(synchronize_session=False))
    user.passkeys_enabled_at = None
    db.session.flush()
    return n


def security_notice(user: User) -> None:
    """The security notice (always by email, cannot be turned off) through notifications."""
    from portal.core.web import external_url
    from portal.notifications.kinds import NoticeKind
    from portal.notifications.services import notify

    notify(user, NoticeKind.SECURITY, link=external_url("account.passkeys"))


def support_summary(user: User) -> dict:
    """For the support console: how many passkeys, and whether any was refused as possibly copied."""
    rows = list_for(user)
    return {"count": len(rows), "names": [p.name for p in rows],
            "clone_suspected": [p for p in rows if p.clone_suspected_at is not None]}

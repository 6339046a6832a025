"""Admin rules for staff accounts: listing and loading them; the account changes themselves are the
accounts domain's services (which check the staff_admin function again and audit each change)."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts import lockout
from portal.accounts import services as accounts
from portal.accounts.models import User
from portal.core.access import load_or_404, require_function
from portal.core.roles import STAFF_ROLE_VALUES
from portal.extensions import db


def staff_list(admin) -> dict:
    require_function(admin, "staff_admin")
    users = db.session.execute(select(User).where(User.role.in_(STAFF_ROLE_VALUES))
                               .order_by(User.display_name)).scalars().all()
    return {"users": users, "locks": lockout.lock_status(users)}


def staff_member(admin, public_id: str) -> User:
    """A staff account by public id, or 404 (with a 'denied' row): patients are not managed here."""
    require_function(admin, "staff_admin")
    return load_or_404(select(User).where(User.public_id == str(public_id)[:32], User.role.in_(STAFF_ROLE_VALUES)),
                       "user", public_id, admin)


def member_page(admin, public_id: str) -> dict:
    user = staff_member(admin, public_id)
    return {"user": user, "locked_until": lockout.lock_status([user]).get(user.id)}


def create(admin, email: str, role: str, display_name: str) -> User:
    require_function(admin, "staff_admin")
    return accounts.create_staff(email, role, display_name, actor=admin)


def change_role(admin, public_id: str, role: str) -> None:
    accounts.change_role(admin, staff_member(admin, public_id), role)


def set_disabled(admin, public_id: str, disabled: bool) -> None:
    accounts.set_disabled(admin, staff_member(admin, public_id), disabled)


def unlock(admin, public_id: str) -> None:
    accounts.unlock(admin, staff_member(admin, public_id))


def reset_mfa(admin, public_id: str, method: str) -> None:
    accounts.reset_mfa(admin, staff_member(admin, public_id), method, True)

"""Fixtures for the security suite (on top of tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.security.helpers import STAFF_ROLES


@pytest.fixture()
def staff(login_as):
    """{role: (client, user)} for every staff role, each signed in (MFA done)."""
    return {role: login_as(role) for role in STAFF_ROLES}


@pytest.fixture()
def token_for(csrf_token):
    """CSRF token of a client's session, read from a cheap public page."""

    def get(client):
        return csrf_token(client, "/help")

    return get

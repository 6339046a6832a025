"""Billing fixtures: a real localstripe process for the session, the app pointed at it for each test."""

from __future__ import annotations

import pytest

from tests.billing.stripe_fake import LocalStripe


@pytest.fixture(scope="session")
def localstripe():
    fake = LocalStripe()
    yield fake
    fake.stop()


@pytest.fixture()
def stripe_app(app, localstripe):
    """The shared test app talking to localstripe (restored afterwards)."""
    saved = {k: app.config.get(k) for k in localstripe.config()}
    app.config.update(localstripe.config())
    yield app
    app.config.update(saved)

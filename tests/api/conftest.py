"""Fixtures for the API tests: API keys, bearer clients and a connection ready for links."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.api.support import ORIGINS, SCHEMES, ApiClient
from tests.factories import make_user
from whoopadmin.api import service
from whoopadmin.auth.models import StaffUser
from whoopadmin.extensions import db


def new_key(app, name: str = "backend", **scope) -> str:
    """Create an API key through the service, as the page does; return the key itself.

    ``scope``: ``connection_ids``, ``permissions``, ``expires_at`` (default: all of them).
    """
    with app.app_context():
        owner = db.session.scalar(sa.select(StaffUser).where(StaffUser.role == "operator"))
        if owner is None:
            owner = make_user("operator", email="key-owner@example.com")
        _, key = service.create_key(owner, name, **scope)
    return key


@pytest.fixture
def api_key(app) -> str:
    return new_key(app)


@pytest.fixture
def api(app, api_key) -> ApiClient:
    """A bearer client on the admin host (``localhost``)."""
    return ApiClient(app, api_key)


@pytest.fixture
def live_app(configured_app, wizard):
    """``configured_app`` with redirect origins and an app scheme saved on the settings page."""
    response = wizard.post(
        "/setup/production/settings",
        {
            "display_name": "Acme Health",
            "allowed_origins": "\n".join(ORIGINS),
            "app_schemes": "\n".join(SCHEMES),
            "rate_limit_per_minute": "100",
            "rate_limit_per_day": "10000",
        },
    )
    assert response.headers["Location"].endswith("/setup/production/settings"), response.data
    connection = wizard.connection("production")
    assert connection.allowed_origins == ORIGINS and connection.app_schemes == SCHEMES
    return configured_app

"""The destination form picks events with checkboxes, grouped lifecycle / data."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.factories import make_connection
from tests.helpers import csrf_from
from whoopadmin.destinations.models import DATA_EVENTS, EVENT_TYPES, LIFECYCLE_EVENTS, Destination
from whoopadmin.extensions import db


@pytest.fixture
def conn_id(app):
    with app.app_context():
        return make_connection().id


def _checkboxes(html: str, group: str) -> dict[str, bool]:
    """{event: checked} for the checkboxes of one group on the page."""
    block = html.split(f'data-group="{group}"', 1)[1]
    block = block.split("data-group=", 1)[0].split("</fieldset>", 1)[0]
    found = {}
    for tag in re.findall(r'<input[^>]*type="checkbox"[^>]*name="events"[^>]*>', block, re.S):
        value = re.search(r'value="([^"]+)"', tag).group(1)
        found[value] = " checked" in tag
    return found


def test_new_destination_shows_grouped_checkboxes(private_ok, operator_client, conn_id):
    html = operator_client.get("/destinations/new").get_data(as_text=True)
    assert "<select" not in html.split('name="events"')[0].rsplit("<fieldset", 1)[-1]
    assert "multiple" not in html and "Ctrl" not in html
    lifecycle, data = (
        _checkboxes(html, "Lifecycle"),
        _checkboxes(html, "Data (normalised indicators)"),
    )
    assert list(lifecycle) == list(LIFECYCLE_EVENTS) and list(data) == list(DATA_EVENTS)
    assert all(lifecycle.values()) and all(data.values())  # a new destination gets everything
    assert "auth.success (a member connected)" in html
    # Each checkbox has its own label (clicking the words ticks the box).
    for event in EVENT_TYPES:
        assert f'for="events-{event}"' in html and f'id="events-{event}"' in html


def test_ticked_boxes_are_saved_and_shown_again(private_ok, operator_client, conn_id, receiver):
    token = csrf_from(operator_client.get("/destinations/new").get_data(as_text=True))
    created = operator_client.post(
        "/destinations/new",
        data={
            "csrf_token": token,
            "connection_id": str(conn_id),
            "url": receiver.url,
            "events": ["deauth", "recovery"],  # what a browser sends for two ticked boxes
            "active": "y",
        },
    )
    assert created.status_code == 200, created.data
    with private_ok.app_context():
        dest = db.session.scalar(sa.select(Destination))
        assert dest.events == ["deauth", "recovery"]
        dest_id = dest.id
    html = operator_client.get(f"/destinations/{dest_id}").get_data(as_text=True)
    lifecycle, data = (
        _checkboxes(html, "Lifecycle"),
        _checkboxes(html, "Data (normalised indicators)"),
    )
    assert [e for e, on in lifecycle.items() if on] == ["deauth"]
    assert [e for e, on in data.items() if on] == ["recovery"]


def test_no_box_ticked_is_a_form_error(private_ok, operator_client, conn_id, receiver):
    token = csrf_from(operator_client.get("/destinations/new").get_data(as_text=True))
    answer = operator_client.post(
        "/destinations/new",
        data={"csrf_token": token, "connection_id": str(conn_id), "url": receiver.url},
    )
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "Choose at least one event type." in html
    assert 'class="form-check-input is-invalid"' in html
    with private_ok.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Destination.id))) == 0

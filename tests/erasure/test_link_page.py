"""The link page's erase action: a confirmation page first, then scheduled; undo restores."""

from __future__ import annotations

import sqlalchemy as sa

from tests.factories import make_connection, make_link
from tests.helpers import csrf_from
from whoopadmin.connect.models import Link
from whoopadmin.extensions import db


def test_erase_and_undo_from_the_link_page(app, operator_client):
    with app.app_context():
        make_connection()
        uid = make_link(whoop_user_id=5, reference_id="page-user").uid
    page = operator_client.get(f"/links/{uid}")
    assert page.status_code == 200 and b'data-testid="erase"' in page.data
    confirm = operator_client.get(f"/links/{uid}/erase")
    assert confirm.status_code == 200 and b"in 7 days" in confirm.data
    token = csrf_from(confirm.get_data(as_text=True))
    # A POST without confirm=yes only shows the page again.
    operator_client.post(f"/links/{uid}/erase", data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalar(sa.select(Link.status).where(Link.uid == uid)) == "active"
    done = operator_client.post(f"/links/{uid}/erase", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303
    page = operator_client.get(f"/links/{uid}")
    assert b'data-testid="undo-erasure"' in page.data and b"erasing" in page.data
    token = csrf_from(page.get_data(as_text=True))
    undone = operator_client.post(f"/links/{uid}/erase/cancel", data={"csrf_token": token})
    assert undone.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(Link.status).where(Link.uid == uid)) == "active"
    # Undo twice: a message, no 500.
    again = operator_client.post(
        f"/links/{uid}/erase/cancel", data={"csrf_token": token}, follow_redirects=True
    )
    assert again.status_code == 200 and b"No erasure is scheduled" in again.data
    assert operator_client.get("/links/nope/erase").status_code == 404

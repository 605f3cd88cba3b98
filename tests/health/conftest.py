"""Connection health tests: a live connection served over real HTTP on its public port.

The connection's subdomain is ``whoop.acme.localhost`` (``*.localhost`` is this machine,
RFC 6761), served on a free port over plain HTTP, so the public webhook URL really
answers from outside the app. The sandbox posts member webhooks to its loopback address.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.conftest import Wizard, run_jobs
from tests.destinations.conftest import Receiver
from tests.factories import make_user
from tests.helpers import AuthActions, EndUser, csrf_from, reset_schema
from whoopadmin.connect import service as connect_service
from whoopadmin.connect.models import Link
from whoopadmin.destinations import service as destinations
from whoopadmin.destinations.models import Delivery
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

HOST = "whoop.acme.localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    """A live connection: its app, wizard, sandbox app and public base URL."""

    app: object
    wizard: Wizard
    whoop_app: object
    base: str
    sandbox: object

    @property
    def client(self):
        return self.wizard.client

    def connection_id(self) -> int:
        with self.app.app_context():
            return db.session.scalar(sa.select(Connection.id))

    def connect(self, member, reference_id: str = "user-1", **fields) -> int:
        """Link ``member`` through the real connect flow; return the link's id."""
        with self.app.app_context():
            connection = db.session.scalar(sa.select(Connection))
            _, token = connect_service.create_session(
                connection, reference_id=reference_id, created_by="test", **fields
            )
        response = self.finish(member, token)
        assert response.status_code == 200, response.data[:300]
        with self.app.app_context():
            return db.session.scalar(sa.select(Link.id).where(Link.whoop_user_id == member.user_id))

    def start(self, token: str, client=None):
        """Open the connect link and press the button: the answer to the POST."""
        client = client or self.app.test_client()
        page = client.get(f"/connect/{token}", base_url=self.base)
        assert page.status_code == 200, page.status_code
        return client.post(
            f"/connect/{token}/start",
            data={"csrf_token": csrf_from(page.get_data(as_text=True))},
            base_url=self.base,
        )

    def finish(self, member, token: str):
        """Start, consent at the sandbox, and return the page the member lands on (the
        callback's answer, or the hosted result page its 303 leads to)."""
        client = self.app.test_client()
        started = self.start(token, client)
        assert started.status_code == 303, started.data[:300]
        back = EndUser(self.app, self.sandbox, member).consent(started.headers["Location"])
        parts = urlsplit(back)
        answer = client.get(f"{parts.path}?{parts.query}", base_url=self.base)
        location = answer.headers.get("Location", "")
        if answer.status_code == 303 and location.startswith("/connect/done/"):
            return client.get(location, base_url=self.base)
        return answer

    def delivered(self) -> None:
        """Wait until the sandbox has sent every webhook, then process them."""
        requests.get(f"{self.sandbox.url}/_sandbox/webhooks?wait=1", timeout=30).close()
        run_jobs(self.app, ("webhooks",))


@pytest.fixture
def live(make_app, wizard_config, sandbox, dns):
    port = free_port()
    app = make_app(
        PUBLIC_SCHEME="http",
        PUBLIC_PORT=port,
        # Changes made a moment ago are judged at once (in production they wait 15 min).
        HEALTH_MISSED_GRACE_SECONDS=0,
        ALLOW_PRIVATE_DESTINATIONS=True,
        WEBHOOK_QUEUE_DELAY_SECONDS=0,
        **wizard_config,
    )
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    wizard = Wizard(app, client, sandbox, dns)
    whoop_app = wizard.complete(hostname=HOST)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    loopback = f"http://127.0.0.1:{port}/hooks/whoop/push/{whoop_app.client_id}"
    whoop_app.webhook_urls[:] = [loopback]  # the sandbox posts to loopback only
    try:
        yield Live(app, wizard, whoop_app, f"http://{HOST}:{port}", sandbox)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def warnings_to(live, receiver):
    """A destination taking ``connection_warning`` events; returns a reader of their data."""
    return watch_warnings(live.app, receiver)


def watch_warnings(app, receiver):
    """Send the connection's ``connection_warning`` events to ``receiver``; return a reader
    of the delivered events' data (it runs the deliveries first)."""
    import json

    app.config["ALLOW_PRIVATE_DESTINATIONS"] = True  # the receiver is on loopback
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        destinations.create_destination("test", connection, receiver.url, ["connection_warning"])

    def read() -> list[dict]:
        run_jobs(app, ("deliveries",))
        with app.app_context():
            payloads = db.session.scalars(
                sa.select(Delivery.payload)
                .where(Delivery.event_type == "connection_warning")
                .order_by(Delivery.id)
            ).all()
        received = [json.loads(r["body"]) for r in receiver.requests]
        assert [json.loads(p)["id"] for p in payloads] == [r["id"] for r in received]
        return [r["data"] for r in received]

    return read

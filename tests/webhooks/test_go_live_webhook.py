"""The go-live check: a signed test event through the connection's public URL."""

import socket
import threading

import pytest
from werkzeug.serving import make_server

from tests.conftest import Wizard, run_jobs
from tests.factories import make_user
from tests.helpers import AuthActions, reset_schema


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_wizard(make_app, wizard_config, sandbox, dns):
    """A connection on whoop.acme.localhost, served over real HTTP on its public port."""
    port = _free_port()
    app = make_app(PUBLIC_SCHEME="http", PUBLIC_PORT=port, **wizard_config)
    reset_schema(app)
    with app.app_context():
        make_user("operator")
    client = app.test_client()
    AuthActions(client).login()
    wizard = Wizard(app, client, sandbox, dns)
    wizard.complete(hostname="whoop.acme.localhost")
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield wizard
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_test_webhook_arrives(local_wizard):
    page = local_wizard.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "No test event has arrived yet." in page
    response = local_wizard.post(
        "/setup/production/go-live/test-webhook", page="/setup/production/go-live"
    )
    assert response.headers["Location"] == "/setup/production/go-live"
    page = local_wizard.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "Last send: sending" in page  # queued, not sent inside the request
    run_jobs(local_wizard.app, ("webhooks",))
    page = local_wizard.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "Last send: arrived through http://whoop.acme.localhost:" in page
    assert "Last test event arrived" in page


def test_test_webhook_reports_why_not(local_wizard, make_app):
    # Nothing listens on the public port any more: the page says so.
    from whoopadmin.extensions import db
    from whoopadmin.setup.models import Connection

    with local_wizard.app.app_context():
        db.session.scalar(db.select(Connection)).hostname = "whoop.acme.localhost"
        db.session.commit()
    local_wizard.app.config["PUBLIC_PORT"] = _free_port()
    local_wizard.post("/setup/production/go-live/test-webhook", page="/setup/production/go-live")
    run_jobs(local_wizard.app, ("webhooks",))
    page = local_wizard.client.get("/setup/production/go-live").get_data(as_text=True)
    assert "did not arrive through http://whoop.acme.localhost:" in page
    assert "could not reach" in page
    assert "No test event has arrived yet." in page

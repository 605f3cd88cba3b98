"""The likely causes of silent webhooks, checked for real: URL, certificate, secret, sign-up."""

from __future__ import annotations

import ssl

import pytest
import sqlalchemy as sa

from tests.destinations.conftest import Receiver
from tests.destinations.support import tls_files
from tests.health.conftest import HOST, free_port
from tests.helpers import post_webhook
from whoopadmin.audit import utcnow
from whoopadmin.extensions import db
from whoopadmin.health import probes
from whoopadmin.health import webhooks as silent
from whoopadmin.setup.models import Connection


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback whose certificate (from a throwaway CA) names ``HOST``."""
    ca, cert, key = tls_files(tmp_path, HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Receiver(ssl_context=context) as server:
        server.ca = ca
        yield server


def test_the_certificate_check_tells_a_live_certificate_from_a_bad_one(tls_server):
    port = tls_server.port
    trusted = probes.certificate_status(HOST, port, cafile=tls_server.ca, timeout=5)
    assert trusted["ok"] and trusted["detail"].startswith("the certificate is valid until")
    assert trusted["expires_at"] > utcnow()
    untrusted = probes.certificate_status(HOST, port, timeout=5)  # the system's trust store
    assert not untrusted["ok"] and "not valid" in untrusted["detail"]
    wrong_name = probes.certificate_status(f"other.{HOST}", port, cafile=tls_server.ca, timeout=5)
    assert not wrong_name["ok"] and "not valid" in wrong_name["detail"]
    closed = probes.certificate_status(HOST, free_port(), cafile=tls_server.ca, timeout=5)
    assert not closed["ok"] and closed["detail"].startswith(f"could not connect to {HOST}:")


def test_causes_name_the_failing_checks_and_their_fixes(live, tls_server):
    app = live.app
    # A wrong secret at WHOOP's side: webhooks fail the signature check.
    for n in range(2):
        event = {"user_id": 1, "id": "x", "type": "sleep.updated", "trace_id": f"bad-{n}"}
        assert (
            post_webhook(app.test_client(), "wrong", event, base_url=live.base).status_code == 401
        )
    # The public URL does not answer (nothing listens on the public port any more), and
    # the subdomain is served over https with a certificate from an unknown CA.
    app.config.update(PUBLIC_SCHEME="https", PUBLIC_PORT=tls_server.port)
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        app.config["PUBLIC_PORT"] = free_port()
        causes = {c["key"]: c for c in silent.check_causes(connection, utcnow())}
        app.config["PUBLIC_PORT"] = tls_server.port
        certificate = silent.check_causes(connection, utcnow())[1]
        app.config["HEALTH_CA_BUNDLE"] = tls_server.ca
        trusted = silent.check_causes(connection, utcnow())[1]
    assert causes["url"]["status"] == "problem"
    assert "did not arrive through https://whoop.acme.localhost:" in causes["url"]["detail"]
    assert "could not reach" in causes["url"]["detail"] and HOST in causes["url"]["fix"]
    assert causes["secret"]["status"] == "problem"
    assert causes["secret"]["detail"].startswith("2 webhooks failed the signature check")
    assert "Credentials" in causes["secret"]["fix"]
    assert causes["registration"]["status"] == "problem"  # no webhook has ever arrived
    assert "model version v2" in causes["registration"]["fix"]
    assert certificate["key"] == "certificate" and certificate["status"] == "problem"
    assert trusted["status"] == "ok" and "valid until" in trusted["detail"]
    # No secret in anything the page or an event could show.
    assert live.whoop_app.client_secret not in str(causes)

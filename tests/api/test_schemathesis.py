"""schemathesis with ``--checks all`` against the real app, served on a free loopback port:
the OpenAPI document states the real input rules, so it reports nothing.

Seeded and bounded (``SCHEMATHESIS_MAX_EXAMPLES`` per operation, 30 by default: about a
minute for both keys). Run it by hand against any server with
``st run http://HOST/api/v1/openapi.json --checks all -H "Authorization: Bearer KEY"``
from the repository root (``schemathesis.toml`` is read from there).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.api.conftest import new_key
from tests.factories import make_connection, make_link
from whoopadmin.audit import utcnow

ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"
SEED = 20261206
FULL, SCOPED = "every permission, all connections", "scoped to another connection"


class QuietHandler(WSGIRequestHandler):
    """No log line per request (hundreds of them), and no change to the werkzeug logger."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def served(app):
    """The app on a free loopback port: a live connection (the document's example,
    ``production``) and a second one, a link on each, and two keys: one with every
    permission on all connections, one scoped to the second connection only."""
    with app.app_context():
        production = make_connection(
            environment="production",
            hostname="whoop.acme.test",
            live_at=utcnow(),
            allowed_origins=["https://app.acme.test"],
            app_schemes=["acmehealth"],
        )
        staging = make_connection(environment="staging", hostname="staging.acme.test")
        make_link(production, whoop_user_id=1, reference_id="user-42")
        make_link(staging, whoop_user_id=2, reference_id="user-42")
        staging_id = staging.id
    keys = {
        FULL: new_key(app, "schemathesis-full"),
        SCOPED: new_key(app, "schemathesis-scoped", connection_ids=[staging_id]),
    }
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", keys
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_schemathesis(base: str, key: str, cwd: Path) -> subprocess.CompletedProcess:
    """``st run --checks all`` with this key, seeded, one worker, no example database."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [
            str(ST),
            "--no-color",
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/api/v1/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {key}",
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--max-examples",
            os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"),
            "--request-timeout",
            "30",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "which", ["every permission, all connections", "scoped to another connection"]
)
def test_schemathesis_reports_nothing(served, tmp_path, which):
    base, keys = served
    result = run_schemathesis(base, keys[which], tmp_path)
    report = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    # Every operation of the document, none left out by the configuration (schemathesis
    # leaves out the document it loaded, /openapi.json).
    paths = requests.get(f"{base}/api/v1/openapi.json", timeout=10).json()["paths"]
    paths.pop("/openapi.json")
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    total = sum(1 for item in paths.values() for method in item if method in methods)
    assert total >= 5, paths
    assert f"Operations:       {total} selected / {total} total" in result.stdout, report
    assert "No issues found" in result.stdout or " passed" in result.stdout, report
    # The summary's count of test cases names no failure ("Authentication failed" among the
    # warnings is expected for the scoped key: it may not act on the connection).
    cases = re.search(r"Test cases:\s*\n\s*(.+)", result.stdout.split("SUMMARY")[-1])
    assert cases and "failed" not in cases.group(1) and "error" not in cases.group(1), report

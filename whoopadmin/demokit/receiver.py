"""The demo receiver: a stand-in for the operator's backend that whoopadmin delivers to.

It accepts deliveries (``POST /deliveries``), keeps the last few hundred in memory and
shows them on an inbox page (``GET /``): when each arrived, its type, whether its
``whoopadmin-signature`` is valid, and its body. The operator pastes the destination's
signing secret into the page (it is shown once, when the destination is created); every
delivery is then checked with it, including those that arrived before.

The signature check here is written from the README's description, on purpose without
importing ``whoopadmin.destinations.signing``: it is what a receiver would write, and a
second implementation that would disagree if the sender drifted from the documentation.
No Flask app context of whoopadmin's is involved; the receiver is its own small app.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, redirect, render_template, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from whoopadmin.sandbox.server import serve_on

ROOT = Path(__file__).resolve().parents[2]
MAX_BODY = 1_000_000  # bytes; whoopadmin's deliveries are a few kilobytes
KEEP = 300  # deliveries kept in the inbox
TOLERANCE = 300  # seconds between the signature's timestamp and the arrival
HEADERS = (
    "whoopadmin-signature",
    "whoopadmin-event-id",
    "whoopadmin-event-type",
    "whoopadmin-delivery-attempt",
)


@dataclass(frozen=True)
class Verdict:
    """Whether a delivery's signature holds: True, False, or None (no secret to check with)."""

    valid: bool | None
    reason: str


def check_signature(secret: str | None, header: str | None, body: bytes, at: float) -> Verdict:
    """``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, within 5 minutes of ``at``."""
    if not secret:
        return Verdict(None, "not checked: paste the destination's signing secret above")
    if not header:
        return Verdict(False, "no whoopadmin-signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return Verdict(False, "malformed header (no t= or no v1=)")
    if abs(at - timestamp) > TOLERANCE:
        return Verdict(False, "timestamp more than 5 minutes from the arrival (a replay?)")
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if any(hmac.compare_digest(mac, s.lower()) for s in signatures):
        return Verdict(True, "valid")
    return Verdict(False, "does not match the signing secret")


@dataclass(frozen=True)
class Received:
    """One delivery as it arrived."""

    number: int
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def arrived(self) -> str:
        """When it arrived, in UTC."""
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.at))

    @property
    def event(self) -> dict | None:
        """The body as a JSON object, if it is one."""
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def type(self) -> str:
        """The event type: the header, else the body's ``type``."""
        event = self.event or {}
        return self.headers.get("whoopadmin-event-type") or str(event.get("type") or "?")

    def pretty_body(self) -> str:
        """The body indented when it is JSON, else as text."""
        event = self.event
        if event is not None:
            return json.dumps(event, indent=2, sort_keys=True)
        return self.body.decode("utf-8", "replace")


class Inbox:
    """The deliveries received so far and the signing secret to check them with."""

    def __init__(self, on_receive: Callable[[Received, Verdict], None] | None = None) -> None:
        self.items: deque[Received] = deque(maxlen=KEEP)
        self._secret: str | None = None
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.on_receive = on_receive

    @property
    def has_secret(self) -> bool:
        """Whether a signing secret was pasted (the secret itself is never shown)."""
        return self._secret is not None

    def set_secret(self, secret: str | None) -> None:
        """Check deliveries with ``secret`` from now on (None or blank: stop checking)."""
        with self._lock:
            self._secret = (secret or "").strip() or None

    def verdict(self, item: Received) -> Verdict:
        """The signature verdict of ``item`` with the current secret."""
        return check_signature(
            self._secret, item.headers.get("whoopadmin-signature"), item.body, item.at
        )

    def add(self, headers: dict[str, str], body: bytes) -> Received:
        """Keep a delivery; tell ``on_receive``."""
        with self._lock:
            item = Received(next(self._numbers), time.time(), headers, body)
            self.items.appendleft(item)
        if self.on_receive is not None:
            self.on_receive(item, self.verdict(item))
        return item

    def listing(self) -> list[tuple[Received, Verdict]]:
        """Every delivery, newest first, with its verdict."""
        with self._lock:
            items = list(self.items)
        return [(item, self.verdict(item)) for item in items]


def create_receiver_app(inbox: Inbox) -> Flask:
    """The receiver's Flask app around ``inbox``."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    # The secret form carries this token: another site's page cannot set the secret.
    form_token = secrets.token_urlsafe(24)

    @app.post("/deliveries")
    def receive():
        """Accept one delivery: any body up to 1 MB; a 2xx means "delivered"."""
        body = request.get_data(cache=False)
        headers = {name: request.headers[name] for name in HEADERS if name in request.headers}
        item = inbox.add(headers, body)
        return jsonify(received=item.number), 200

    @app.get("/")
    def show_inbox():
        """The inbox page."""
        return render_template(
            "demokit/receiver.html",
            listing=inbox.listing(),
            has_secret=inbox.has_secret,
            form_token=form_token,
            deliveries_url=request.host_url + "deliveries",
        )

    @app.post("/secret")
    def set_secret():
        """Set (or clear) the signing secret the inbox checks with."""
        if not hmac.compare_digest(request.form.get("form_token", ""), form_token):
            abort(400, "The form is stale or did not come from this page: reload it.")
        secret = request.form.get("secret", "")
        if len(secret) > 512 or any(not ch.isprintable() for ch in secret.strip()):
            abort(400, "That is not a signing secret (whsec_…).")
        inbox.set_secret(secret)
        return redirect("/", 303)

    @app.get("/deliveries.json")
    def deliveries_json():
        """The inbox as JSON (newest first), for scripts."""
        return jsonify(
            [
                {
                    "number": item.number,
                    "received_at": item.at,
                    "type": item.type,
                    "headers": item.headers,
                    "signature_valid": verdict.valid,
                    "signature": verdict.reason,
                    "body": item.body.decode("utf-8", "replace"),
                }
                for item, verdict in inbox.listing()
            ]
        )

    @app.errorhandler(413)
    def too_large(exc: Any):
        return jsonify(error="payload_too_large", message=f"At most {MAX_BODY} bytes."), 413

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Log nothing: the demo's console says what arrived."""


class ReceiverServer:
    """The receiver served on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_receive: Callable[[Received, Verdict], None] | None = None,
    ) -> None:
        self.inbox = Inbox(on_receive)
        self._server: BaseWSGIServer = serve_on(
            host,
            port,
            create_receiver_app(self.inbox),
            threaded=True,
            request_handler=_QuietHandler,
        )
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.deliveries_url = f"{self.url}/deliveries"
        self._thread: threading.Thread | None = None

    def start(self) -> ReceiverServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"demo-receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

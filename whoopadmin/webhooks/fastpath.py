"""The busiest route, answered below Flask when all goes well: member webhooks by host.

``POST /hooks/whoop/push`` on a connection's subdomain is what WHOOP calls for every
change of every member. When the connection is known, the signature is good and the
event is stored (or refused as ignored), this middleware answers itself: Flask's request
context, hooks and response object cost as much again as the work (bench/webhook_ingest.py).
Everything else — any refusal, a redelivery, a test event, an oversized or unreadable
body, a database error — goes to the Flask view untouched (with the body it read), which
answers exactly as it always has. So the two can never disagree about a refusal.
"""

from __future__ import annotations

import io
import json
import logging

from flask import Flask
from werkzeug.wsgi import get_host

from whoopadmin.extensions import db
from whoopadmin.web import HSTS, SECURITY_HEADERS, hostname_of
from whoopadmin.webhooks import service

PATH = "/hooks/whoop/push"
log = logging.getLogger(__name__)


class FastPath:
    """WSGI middleware in front of ``app``'s Flask handling of member webhooks."""

    def __init__(self, app: Flask, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app
        self._engine = None  # the app's, once known (from the first webhook's app context)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            length = -1
        if not 0 < length <= service.MAX_BODY or "wsgi.input" not in environ:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # for Flask, should it answer after all
        if len(body) != length:
            return self.wsgi_app(environ, start_response)
        outcome = self._receive(environ, body)
        if outcome is None:
            return self.wsgi_app(environ, start_response)
        answer = json.dumps(outcome.body, separators=(",", ":")).encode() + b"\n"  # as Flask
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(answer))),
            *SECURITY_HEADERS,
        ]
        if environ.get("wsgi.url_scheme") == "https":
            headers.append(HSTS)
        start_response("200 OK", headers)
        return [answer]

    def _receive(self, environ, body: bytes) -> service.Outcome | None:
        """The outcome of a webhook stored just now, or None: Flask's view answers.

        When the connection is in the per-process cache (nearly always) and queueing is
        handed off, no app context is pushed: its setup and teardown were a tenth of the
        cost. Otherwise, within one, as Flask would.
        """
        try:
            host = hostname_of(get_host(environ))
        except Exception:  # a host Flask refuses: its view answers
            return None
        timestamp = environ.get("HTTP_X_WHOOP_SIGNATURE_TIMESTAMP")
        signature = environ.get("HTTP_X_WHOOP_SIGNATURE")
        config = self.app.config
        if self._engine is not None and config["WEBHOOK_QUEUE_DELAY_SECONDS"] > 0:
            target = service.cached_receiver(config, "host", host)
            if target is not service.MISS:
                try:
                    return service.receive_stored(
                        target, timestamp, signature, body, self.app, self._engine
                    )
                except Exception as exc:  # the view tries again, and answers as ever
                    log.info("webhook fast path: %s; Flask answers", type(exc).__name__)
                    return None
        with self.app.app_context():  # its end removes the database session, as Flask's
            try:
                self._engine = db.engine
                return service.receive_stored(
                    service.receiver("host", host), timestamp, signature, body
                )
            except Exception as exc:  # the view tries again, and answers (a 503, say) as ever
                log.info("webhook fast path: %s; Flask answers", type(exc).__name__)
                return None

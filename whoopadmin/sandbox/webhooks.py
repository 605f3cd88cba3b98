"""Signed webhook delivery for the sandbox: WHOOP v2 and Partner API signatures, retries.

Deliveries run on a few background threads. Each failed attempt (non-2xx, connection
error, timeout) is retried on a configurable schedule (five retries by default, about
an hour in all, like WHOOP); tests pass tiny delays.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import ipaddress
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests


def whoop_signature(secret: str, timestamp_ms: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(key=client_secret, msg=timestamp + raw_body))``."""
    mac = hmac.new(secret.encode(), timestamp_ms.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def is_loopback_url(url: str) -> bool:
    """True if the URL's host is localhost or a loopback address (no DNS lookup)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def partner_signature(secret: str, body: bytes) -> str:
    """``WHOOP-Signed``: lowercase hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One webhook on its way to one URL, with its attempts."""

    id: str
    url: str
    kind: str  # "whoop" or "partner"
    secret: str = field(repr=False)
    body: bytes
    event: dict
    attempts: list[dict] = field(default_factory=list)
    status: str = "pending"  # pending, delivered, failed, dropped, blocked, suppressed
    duplicate: bool = False

    def public(self) -> dict:
        """What the control API shows (never the secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "kind": self.kind,
            "event": self.event,
            "status": self.status,
            "duplicate": self.duplicate,
            "attempts": list(self.attempts),
        }


class Dispatcher:
    """Background sender with a retry schedule, optional duplicates and drops."""

    def __init__(
        self,
        clock_ms,
        retry_delays: tuple[float, ...] = (60, 300, 600, 1200, 1800),
        timeout: float = 5.0,
        workers: int = 2,
        loopback_only: bool = False,
    ) -> None:
        self.clock_ms = clock_ms
        self.loopback_only = loopback_only
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = 0
        self._session = requests.Session()
        self._session.trust_env = False  # never route through a proxy from the environment
        self._threads = [
            threading.Thread(target=self._run, name=f"sandbox-webhooks-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        url: str,
        kind: str,
        secret: str,
        event: dict,
        *,
        drop: bool,
        duplicate: bool,
        suppressed: bool = False,
    ) -> Delivery:
        """Queue an event for one URL (or record it as dropped, or as suppressed: the
        member's webhooks are switched off)."""
        body = json.dumps(event, separators=(",", ":")).encode()
        delivery = Delivery(uuid.uuid4().hex, url, kind, secret, body, event)
        with self._cond:
            self.deliveries.append(delivery)
            if suppressed or drop:
                delivery.status = "suppressed" if suppressed else "dropped"
                return delivery
            if self.loopback_only and not is_loopback_url(url):
                delivery.status = "blocked"  # never leave the machine from tests
                return delivery
            self._push(0.0, delivery)
            if duplicate:
                twin = Delivery(uuid.uuid4().hex, url, kind, secret, body, event, duplicate=True)
                self.deliveries.append(twin)
                self._push(0.0, twin)
        return delivery

    def _push(self, delay: float, delivery: Delivery) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
        self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _due, _seq, delivery = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "whoop-sandbox-webhooks"}
        if delivery.kind == "partner":
            headers["WHOOP-Signed"] = partner_signature(delivery.secret, delivery.body)
        else:
            ts = str(self.clock_ms())
            headers["X-WHOOP-Signature-Timestamp"] = ts
            headers["X-WHOOP-Signature"] = whoop_signature(delivery.secret, ts, delivery.body)
        return headers

    def _attempt(self, delivery: Delivery) -> None:
        result: dict = {"at": time.time()}
        ok = False
        try:
            with self._session.post(
                delivery.url,
                data=delivery.body,
                headers=self._headers(delivery),
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                result["status_code"] = resp.status_code
                ok = 200 <= resp.status_code < 300
        except requests.RequestException as exc:
            result["error"] = type(exc).__name__
        with self._cond:
            delivery.attempts.append(result)
            if ok:
                delivery.status = "delivered"
            elif len(delivery.attempts) <= len(self.retry_delays):
                self._push(self.retry_delays[len(delivery.attempts) - 1], delivery)
            else:
                delivery.status = "failed"

    def pending(self) -> list[dict]:
        """Deliveries still to be sent (retries included), to save across a restart.

        ``due_at`` is wall-clock time (whole seconds); the secret is the app's own client
        secret (or the partner's signing secret), which the saved state holds anyway.
        """
        with self._cond:
            offset = time.time() - time.monotonic()
            return [
                {
                    "id": d.id,
                    "url": d.url,
                    "kind": d.kind,
                    "secret": d.secret,
                    "event": d.event,
                    "attempts": list(d.attempts),
                    "duplicate": d.duplicate,
                    "due_at": round(due + offset),
                }
                for due, _seq, d in sorted(self._heap)
            ]

    def restore_pending(self, saved: list[dict]) -> None:
        """Queue deliveries that :meth:`pending` saved, each at its time (or now if past)."""
        offset = time.time() - time.monotonic()
        with self._cond:
            for item in saved:
                event = item["event"]
                body = json.dumps(event, separators=(",", ":")).encode()
                delivery = Delivery(
                    str(item["id"]),
                    str(item["url"]),
                    str(item["kind"]),
                    str(item["secret"]),
                    body,
                    event,
                    attempts=list(item["attempts"]),
                    duplicate=bool(item["duplicate"]),
                )
                self.deliveries.append(delivery)
                delay = max(0.0, float(item["due_at"]) - offset - time.monotonic())
                self._push(delay, delivery)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued for the next ``timeout`` seconds; True if idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def public(self) -> list[dict]:
        """All deliveries, oldest first."""
        with self._cond:
            return [d.public() for d in self.deliveries]

    def clear(self) -> None:
        """Forget finished deliveries (pending ones stay queued)."""
        with self._cond:
            self.deliveries = [d for d in self.deliveries if d.status == "pending"]

    def stop(self) -> None:
        """Stop the worker threads; pending deliveries are abandoned."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._session.close()

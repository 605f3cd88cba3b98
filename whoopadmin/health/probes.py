"""Checks from outside (no Flask): is a host's TLS certificate live?"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime


def connect_address(host: str) -> str:
    """Where to connect for ``host``: ``*.localhost`` names are this machine (RFC 6761)."""
    host = host.lower()
    return "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host


def certificate_status(
    host: str, port: int = 443, cafile: str | None = None, timeout: float = 10.0
) -> dict:
    """Open a TLS connection to ``host`` and judge its certificate.

    Returns ``{"ok": bool, "detail": str, "expires_at": datetime | None}``: ok when the
    chain verifies against the trust store (or ``cafile``), the name matches and it is
    within its validity period.
    """
    context = ssl.create_default_context(cafile=cafile or None)
    try:
        with (
            socket.create_connection((connect_address(host), port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or "verification failed"
        return _failed(f"the certificate is not valid: {reason}")
    except ssl.SSLError as exc:
        return _failed(f"TLS failed ({exc.reason or 'handshake'})")
    except OSError as exc:
        return _failed(f"could not connect to {host}:{port} ({type(exc).__name__})")
    expires = None
    if cert and cert.get("notAfter"):
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    when = f" until {expires:%Y-%m-%d}" if expires else ""
    return {"ok": True, "detail": f"the certificate is valid{when}", "expires_at": expires}


def _failed(detail: str) -> dict:
    return {"ok": False, "detail": detail, "expires_at": None}

"""WHOOP OAuth helpers that need no app: the credentials probe."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import requests

# Outcomes of a credentials probe, as stored on the connection and shown in the wizard.
ACCEPTED = "accepted"
WRONG_CREDENTIALS = "invalid_client"
UNREACHABLE = "unreachable"
UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class ProbeResult:
    """What WHOOP's token endpoint said about a client id and secret."""

    outcome: str
    message: str

    @property
    def ok(self) -> bool:
        """Return whether the credentials were accepted."""
        return self.outcome == ACCEPTED


def probe_credentials(
    token_url: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> ProbeResult:
    """Exchange a deliberately invalid code: ``invalid_grant`` means the pair is accepted.

    The secret travels in the form body (WHOOP's client_secret_post) and is never part of
    the result's message.
    """
    data = {
        "grant_type": "authorization_code",
        "code": "whoopadmin-credentials-check-" + secrets.token_hex(8),
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    http = session or requests.Session()
    try:
        response = http.post(token_url, data=data, timeout=timeout)
    except requests.Timeout:
        return ProbeResult(UNREACHABLE, f"WHOOP's token endpoint did not answer in {timeout:g} s.")
    except requests.RequestException as exc:
        reason = type(exc).__name__
        return ProbeResult(UNREACHABLE, f"Could not reach WHOOP's token endpoint ({reason}).")
    finally:
        if session is None:
            http.close()
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    if error == "invalid_grant":
        return ProbeResult(ACCEPTED, "WHOOP accepted the client id and secret.")
    if error == "invalid_client" or response.status_code == 401:
        return ProbeResult(
            WRONG_CREDENTIALS,
            "WHOOP rejected the client id or secret (invalid_client). Copy both again from "
            "the WHOOP developer dashboard.",
        )
    if error == "invalid_request":
        return ProbeResult(
            UNEXPECTED,
            "WHOOP refused the request (invalid_request); check that the redirect URL is "
            "registered for this app exactly as shown.",
        )
    detail = f"error {error!r}" if error else f"HTTP {response.status_code}"
    return ProbeResult(UNEXPECTED, f"WHOOP's token endpoint answered unexpectedly ({detail}).")

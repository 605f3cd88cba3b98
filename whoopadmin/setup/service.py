"""The wizard's work: connections, credentials, hostnames, DNS state and going live.

Views call one function here each; every change is validated, audited and committed.
DNS is never queried here: checks are queued (``request_dns_check``) and run as jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from whoopadmin import audit, domains
from whoopadmin.audit import utcnow
from whoopadmin.connect.policy import clean_policy
from whoopadmin.domains import CheckResult, ExpectedRecord
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection
from whoopadmin.whoop import SCOPES
from whoopadmin.whoop.oauth import probe_credentials

# WHOOP caps apps it has not approved at this many members.
MEMBER_CAP = 10
# The largest per-connection member cap an operator may record.
MAX_MEMBER_CAP = 10_000_000
ENVIRONMENT_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SECRET_FIELDS = ("client_secret", "partner_client_secret", "webhook_signing_secret")
GOOD_DNS = (domains.VERIFIED, domains.ACTIVE)


class SetupError(ValueError):
    """A wizard change that cannot be made; the message is shown as is.

    ``field`` names the form field the message belongs to, when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- lookups


def list_connections() -> list[Connection]:
    """Every connection, by environment."""
    return list(db.session.scalars(select(Connection).order_by(Connection.environment)))


def get_connection(environment: str) -> Connection | None:
    """The connection for ``environment``, if any."""
    return db.session.scalar(select(Connection).where(Connection.environment == environment))


def public_url(connection: Connection, path: str) -> str:
    """An absolute URL on the connection's subdomain (scheme and port from the config)."""
    scheme = current_app.config["PUBLIC_SCHEME"]
    port = current_app.config.get("PUBLIC_PORT")
    default = {"https": 443, "http": 80}.get(scheme)
    netloc = connection.hostname or "<subdomain>"
    if port and int(port) != default:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{path}"


def redirect_url(connection: Connection) -> str:
    """The OAuth redirect URL to register at WHOOP."""
    return public_url(connection, "/auth/whoop/oauth2")


def webhook_url(connection: Connection) -> str:
    """The webhook URL to register at WHOOP (model version v2)."""
    return public_url(connection, "/hooks/whoop/push")


def scopes() -> str:
    """The scopes to tick in WHOOP's developer dashboard."""
    return " ".join(SCOPES)


# --------------------------------------------------------------------------- step 0: create


def create_connection(actor, environment: str, display_name: str) -> Connection:
    """Start a new connection for ``environment``."""
    environment = (environment or "").strip().lower()
    display_name = (display_name or "").strip()
    if not ENVIRONMENT_RE.match(environment):
        raise SetupError(
            "The environment name must be 1-64 lower-case letters, digits or hyphens, "
            "e.g. production, staging or eu-prod."
        )
    if not display_name or len(display_name) > 255:
        raise SetupError(
            "Give the connection a display name (at most 255 characters).", "display_name"
        )
    if get_connection(environment) is not None:
        raise SetupError(f"There is already a connection for {environment}.")
    connection = Connection(
        environment=environment,
        display_name=display_name,
        created_by_id=getattr(actor, "id", None),
        allowed_origins=[],
        app_schemes=[],
    )
    db.session.add(connection)
    db.session.flush()
    audit.record(actor, "connection.create", connection, environment=environment)
    db.session.commit()
    return connection


# --------------------------------------------------------------------------- settings

SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]{1,63}$")
# Schemes a "mobile app" redirect may never use: they would be open or script redirects.
FORBIDDEN_SCHEMES = {"http", "https", "javascript", "data", "file", "vbscript", "about", "blob"}


def clean_origin(text: str) -> str:
    """Return ``scheme://host[:port]`` or raise SetupError (https only, but for localhost)."""
    from urllib.parse import urlsplit

    raw = text.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise SetupError(f"{raw!r} is not an origin like https://app.acme.com.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SetupError(f"{raw!r} is not an origin like https://app.acme.com.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise SetupError(f"{raw!r} has a path or query; give only https://host[:port].")
    host = parts.hostname
    local = host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")
    if parts.scheme == "http" and not local:
        raise SetupError(f"{raw!r} must use https (plain http is allowed for localhost only).")
    if not local:
        try:
            host = domains.normalise_hostname(host)
        except domains.InvalidHostname as exc:
            raise SetupError(f"{raw!r}: {exc}") from None
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}" + (f":{port}" if port else "")


def clean_scheme(text: str) -> str:
    """Return a mobile app's custom URL scheme, or raise SetupError."""
    scheme = text.strip().lower().removesuffix("://").removesuffix(":")
    if not SCHEME_RE.match(scheme) or scheme in FORBIDDEN_SCHEMES:
        raise SetupError(
            f"{text.strip()!r} is not a custom app scheme (letters, digits, + . -; "
            "not http, https, javascript, data or file)."
        )
    return scheme


def _lines(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()]


def save_settings(
    actor,
    connection: Connection,
    *,
    display_name: str,
    allowed_origins: str,
    app_schemes: str,
    rate_limit_per_minute: int,
    rate_limit_per_day: int,
    approved_by_whoop: bool,
    backfill_days: int = 30,
    use_pkce: bool = True,
    member_cap: int | None | object = ...,
    reference_id_policy: str = "refuse",
) -> None:
    """Store the connection's settings after validating every line.

    ``member_cap``: a number of members, or None for WHOOP's default (10 until approved,
    none after); left out, the stored cap is kept.
    """
    display_name = (display_name or "").strip()
    if not display_name:
        raise SetupError("The display name is required.", "display_name")
    try:
        reference_id_policy = clean_policy(reference_id_policy)
    except ValueError as exc:
        raise SetupError(str(exc), "reference_id_policy") from None
    try:
        origins = list(dict.fromkeys(clean_origin(o) for o in _lines(allowed_origins)))
    except SetupError as exc:
        exc.field = "allowed_origins"
        raise
    try:
        schemes = list(dict.fromkeys(clean_scheme(s) for s in _lines(app_schemes)))
    except SetupError as exc:
        exc.field = "app_schemes"
        raise
    if rate_limit_per_day < rate_limit_per_minute:
        raise SetupError(
            "The daily limit cannot be below the per-minute limit.", "rate_limit_per_day"
        )
    if member_cap is ...:
        member_cap = connection.member_cap
    if member_cap is not None and (
        isinstance(member_cap, bool)
        or not isinstance(member_cap, int)
        or not 1 <= member_cap <= MAX_MEMBER_CAP
    ):
        raise SetupError(
            f"The member cap must be a whole number from 1 to {MAX_MEMBER_CAP:,}, or empty "
            "for WHOOP's default.",
            "member_cap",
        )
    connection.display_name = display_name
    connection.allowed_origins = origins
    connection.app_schemes = schemes
    connection.rate_limit_per_minute = rate_limit_per_minute
    connection.rate_limit_per_day = rate_limit_per_day
    connection.approved_by_whoop = approved_by_whoop
    connection.member_cap = member_cap
    connection.backfill_days = backfill_days
    connection.use_pkce = use_pkce
    connection.reference_id_policy = reference_id_policy
    audit.record(
        actor,
        "connection.settings",
        connection,
        allowed_origins=origins,
        app_schemes=schemes,
        rate_limit_per_minute=rate_limit_per_minute,
        rate_limit_per_day=rate_limit_per_day,
        approved_by_whoop=approved_by_whoop,
        member_cap=member_cap,
        backfill_days=backfill_days,
        use_pkce=use_pkce,
        reference_id_policy=reference_id_policy,
    )
    db.session.commit()


# --------------------------------------------------------------------------- step 1: credentials


def clean_credential(value: str | None, label: str) -> str | None:
    """Trim pasted whitespace; refuse spaces, line breaks or control characters inside."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise SetupError(f"The {label} contains spaces, line breaks or invisible characters.")
    if len(value) > 255:
        raise SetupError(f"The {label} is longer than 255 characters.")
    return value


def save_credentials(
    actor,
    connection: Connection,
    *,
    client_id: str | None,
    client_secret: str | None = None,
    partner_client_id: str | None = None,
    partner_client_secret: str | None = None,
    webhook_signing_secret: str | None = None,
) -> list[str]:
    """Store credentials; a blank secret keeps the stored one. Returns what changed."""
    values = {
        "client_id": clean_credential(client_id, "client id"),
        "client_secret": clean_credential(client_secret, "client secret"),
        "partner_client_id": clean_credential(partner_client_id, "Partner API client id"),
        "partner_client_secret": clean_credential(
            partner_client_secret, "Partner API client secret"
        ),
        "webhook_signing_secret": clean_credential(
            webhook_signing_secret, "webhook signing secret"
        ),
    }
    if not values["client_id"]:
        raise SetupError("The client id is required.")
    if not values["client_secret"] and connection.client_secret_sealed is None:
        raise SetupError("The client secret is required.")
    changed = []
    if values["client_id"] != connection.client_id:
        connection.client_id = values["client_id"]
        changed.append("client_id")
    if values["partner_client_id"] != connection.partner_client_id and (
        values["partner_client_id"] or partner_client_id is not None
    ):
        connection.partner_client_id = values["partner_client_id"]
        changed.append("partner_client_id")
    for name in SECRET_FIELDS:
        new = values[name]
        if new is None or new == getattr(connection, name):
            continue
        if name == "client_secret" and connection.client_secret_sealed is not None:
            # Webhooks signed with the old secret are accepted for a grace period.
            connection.previous_client_secret = connection.client_secret
            connection.secret_rotated_at = utcnow()
        setattr(connection, name, new)
        changed.append(name)
    if {"client_id", "client_secret"} & set(changed):
        connection.credentials_check = None
        connection.credentials_message = None
        connection.credentials_checked_at = None
    if changed:
        # Record which fields changed, never their values.
        audit.record(actor, "connection.credentials", connection, changed=changed)
    db.session.commit()
    return changed


def verify_credentials(actor, connection: Connection) -> str:
    """Probe WHOOP's token endpoint with an invalid code; store and return the outcome."""
    if not connection.client_id or connection.client_secret_sealed is None:
        raise SetupError("Save a client id and secret first.")
    from whoopadmin.health import calls

    calls.count(connection.id, calls.PROBE)
    result = probe_credentials(
        current_app.config["WHOOP_TOKEN_URL"],
        connection.client_id,
        connection.client_secret,
        redirect_url(connection),
        timeout=float(current_app.config["WHOOP_TIMEOUT"]),
    )
    connection.credentials_check = result.outcome
    connection.credentials_message = result.message
    connection.credentials_checked_at = utcnow()
    audit.record(actor, "connection.verify_credentials", connection, outcome=result.outcome)
    db.session.commit()
    return result.outcome


# --------------------------------------------------------------------------- step 2: subdomain


def set_hostname(actor, connection: Connection, text: str) -> str:
    """Normalise and store the subdomain; a new one starts DNS verification afresh."""
    try:
        hostname = domains.normalise_hostname(text)
    except domains.InvalidHostname as exc:
        raise SetupError(str(exc)) from None
    if hostname.count(".") < 2 and not hostname.endswith(".localhost"):
        # A registered domain itself is a zone apex, which cannot hold a CNAME. Deeper
        # apexes (e.g. under co.uk) are caught by the DNS check's ``apex`` finding.
        raise SetupError(
            f"{hostname} looks like the top of your domain (the zone apex), which cannot "
            f"hold a CNAME. Use a subdomain such as whoop.{hostname}."
        )
    other = db.session.scalar(
        select(Connection).where(Connection.hostname == hostname, Connection.id != connection.id)
    )
    if other is not None:
        raise SetupError(f"{hostname} is already used by the {other.environment} connection.")
    if hostname == connection.hostname:
        return hostname
    old = connection.hostname
    connection.hostname = hostname
    connection.validation_token = domains.validation_token()
    connection.issuer_record = None
    _restart_dns(connection)
    connection.live_at = None
    audit.record(actor, "connection.hostname", connection, old=old, new=hostname)
    db.session.commit()
    return hostname


def _restart_dns(connection: Connection) -> None:
    now = utcnow()
    connection.status = domains.PENDING_DNS
    connection.zone = None
    connection.dns_result = None
    connection.dns_checked_at = None
    connection.dns_since = now
    connection.dns_attempts = 0
    connection.dns_next_check_at = now
    connection.verified_at = None


# --------------------------------------------------------------------------- step 3: DNS records


def issuer_record(connection: Connection) -> ExpectedRecord | None:
    """The issuer-supplied validation record, if the operator pasted one."""
    data = connection.issuer_record
    return ExpectedRecord.from_dict(data) if data else None


def set_issuer_record(actor, connection: Connection, name: str, rtype: str, value: str) -> None:
    """Use an issuer's validation record instead of our ``_acme-challenge`` CNAME."""
    if not connection.hostname:
        raise SetupError("Choose the subdomain first.")
    try:
        record = domains.make_issuer_record(name, rtype, value, connection.hostname)
    except domains.InvalidHostname as exc:
        raise SetupError(str(exc)) from None
    connection.issuer_record = record.to_dict()
    _restart_dns(connection)
    audit.record(actor, "connection.issuer_record", connection, name=record.name, type=record.type)
    db.session.commit()


def clear_issuer_record(actor, connection: Connection) -> None:
    """Go back to our own validation CNAME."""
    if connection.issuer_record is None:
        return
    connection.issuer_record = None
    _restart_dns(connection)
    audit.record(actor, "connection.issuer_record_cleared", connection)
    db.session.commit()


def expected_records(connection: Connection) -> list[ExpectedRecord]:
    """The records the operator must add, with labels relative to the zone when known."""
    if not connection.hostname:
        return []
    config = current_app.config
    return domains.expected_records(
        connection.hostname,
        config["CNAME_TARGET"],
        config["VALIDATION_DOMAIN"],
        connection.validation_token,
        issuer_record(connection),
        zone=connection.zone,
    )


def dns_result(connection: Connection) -> CheckResult | None:
    """The last DNS check's result, if any."""
    return CheckResult.from_dict(connection.dns_result) if connection.dns_result else None


def request_dns_check(connection: Connection) -> None:
    """Queue a DNS check now (the "Check now" button); the page shows it running."""
    from whoopadmin.jobs import enqueue_once
    from whoopadmin.setup.jobs import check_domain

    if not connection.hostname:
        raise SetupError("Choose the subdomain first.")
    connection.dns_check_requested_at = utcnow()
    db.session.commit()
    enqueue_once("domains", check_domain, connection.id, job_id=f"dns-check-{connection.id}")


def nameservers() -> list[tuple[str, int]] | None:
    """The DNS servers every check must use (WHOOPADMIN_DNS_NAMESERVERS), if set."""
    return domains.parse_nameservers(current_app.config.get("DNS_NAMESERVERS") or None)


def run_dns_check(connection: Connection, now: datetime | None = None) -> CheckResult:
    """Check the connection's records in DNS and move its status on (runs in a job)."""
    now = now or utcnow()
    records = expected_records(connection)
    issuer = connection.issuer_record is not None
    result = domains.check_domain(
        connection.hostname,
        records,
        nameservers=nameservers(),
        timeout=float(current_app.config["DNS_TIMEOUT"]),
        ca=None if issuer else current_app.config["ACME_CA"],
        now=now,
    )
    previous = None if connection.status == "draft" else connection.status
    since = connection.dns_since or now
    status = domains.next_status(previous, result, since=since, now=now)
    if status == domains.VERIFIED and connection.live_at is not None:
        status = domains.ACTIVE
    if status != connection.status:
        audit.record("dns-check", "connection.dns_status", connection, old=previous, new=status)
        if status in GOOD_DNS and previous not in GOOD_DNS:
            connection.verified_at = now
        if status == domains.MOVED and previous != domains.MOVED:
            # Moved starts a new wait: back off from the start again.
            since = now
            connection.dns_attempts = 0
    connection.status = status
    connection.zone = result.zone or connection.zone
    connection.dns_result = result.to_dict()
    connection.dns_checked_at = now
    connection.dns_since = since
    connection.dns_attempts = (connection.dns_attempts or 0) + 1
    connection.dns_next_check_at = domains.next_check_at(
        status, attempt=connection.dns_attempts - 1, since=since, now=now
    )
    connection.dns_check_requested_at = None
    db.session.commit()
    return result


def due_for_dns_check(now: datetime | None = None) -> list[int]:
    """Ids of connections whose next DNS check is due."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(Connection.id).where(
                Connection.hostname.is_not(None),
                Connection.dns_next_check_at.is_not(None),
                Connection.dns_next_check_at <= now,
            )
        )
    )


# --------------------------------------------------------------------------- steps 4-6


def tls_allowed(hostname: str) -> bool:
    """Whether the TLS server may get a certificate for ``hostname`` (no DNS involved)."""
    try:
        hostname = domains.normalise_hostname(hostname)
    except domains.InvalidHostname:
        return False
    return (
        db.session.scalar(
            select(Connection.id).where(
                Connection.hostname == hostname, Connection.status.in_(GOOD_DNS)
            )
        )
        is not None
    )


def mark_registered(actor, connection: Connection) -> None:
    """The operator confirms the URLs and scopes are registered at WHOOP."""
    connection.whoop_registered_at = utcnow()
    audit.record(actor, "connection.whoop_registered", connection)
    db.session.commit()


def member_count(connection: Connection) -> int:
    """Linked WHOOP members of this connection (revoked links do not count)."""
    from whoopadmin.connect.models import Link

    return db.session.scalar(
        select(func.count(Link.id)).where(
            Link.connection_id == connection.id, Link.status != "revoked"
        )
    )


@dataclass(frozen=True)
class CheckItem:
    """One line of the go-live checklist."""

    key: str
    label: str
    ok: bool
    detail: str
    step: str


def checklist(connection: Connection) -> list[CheckItem]:
    """The go-live checklist: green only when every check passes."""
    creds = connection.credentials_check == "accepted"
    dns_ok = connection.status in GOOD_DNS
    return [
        CheckItem(
            "credentials",
            "WHOOP accepted the client id and secret",
            creds,
            connection.credentials_message or "Not verified yet.",
            "credentials",
        ),
        CheckItem(
            "subdomain",
            "A subdomain is chosen",
            bool(connection.hostname),
            connection.hostname or "No subdomain yet.",
            "subdomain",
        ),
        CheckItem(
            "dns",
            "DNS records verified",
            dns_ok,
            f"Status: {connection.status.replace('_', ' ')}."
            if connection.hostname
            else "Choose a subdomain first.",
            "dns",
        ),
        CheckItem(
            "certificate",
            "Certificates can be issued for the subdomain",
            dns_ok and tls_allowed(connection.hostname or ""),
            _certificate_detail(dns_ok),
            "certificate",
        ),
        CheckItem(
            "whoop",
            "Redirect URL, webhook URL and scopes registered at WHOOP",
            connection.whoop_registered_at is not None,
            "Confirmed." if connection.whoop_registered_at else "Not confirmed yet.",
            "whoop",
        ),
    ]


def _certificate_detail(dns_ok: bool) -> str:
    if not dns_ok:
        return "Waits for verified DNS records."
    if current_app.config["PUBLIC_SCHEME"] == "http":
        return "Public pages are served over plain HTTP here: no certificate is involved."
    return "The TLS server may request a certificate."


def go_live(actor, connection: Connection) -> None:
    """Mark the connection live; refused while any checklist item is red."""
    failing = [item.label for item in checklist(connection) if not item.ok]
    if failing:
        raise SetupError("Not ready to go live: " + "; ".join(failing) + ".")
    connection.live_at = utcnow()
    connection.status = domains.ACTIVE
    audit.record(actor, "connection.go_live", connection)
    db.session.commit()

"""Silent-webhook detection: learn how often a connection's webhooks arrive, notice when they stop.

**Learning.** Each health pass counts the member webhooks stored since the last pass
(``webhook_events`` ids only grow, so a cursor reads only new rows). A pass that finds
some folds them in: over the first ``HEALTH_RATE_HALF_LIFE_HOURS`` of learning the rate
is their plain average, after that an exponentially weighted one with that half-life.
A pass that finds none changes nothing, so a silence never teaches that silence is
normal. The first pass starts from the last 24 hours.

**Silent.** A live connection with active links is ``webhooks_silent`` when either

* webhooks used to arrive (a learned rate), members are active (a backfill or
  reconciliation stored a record WHOOP changed after the last webhook arrived) and no
  webhook has arrived for longer than ``HEALTH_SILENT_AFTER_SECONDS`` and
  ``HEALTH_SILENT_GAP_FACTOR`` times the expected gap at the learned rate; or
* reconciliation found ``HEALTH_MISSED_SILENT_COUNT`` records no webhook announced since
  the last webhook arrived (or ever, if none has): members' data changes, and arrives
  only by polling.

The flag holds until a member webhook newer than the flag arrives; then it clears by
itself. While it holds, the likely causes are checked (``check_causes``) and the
connection's links are reconciled more often (``health.service.silent_reconcile``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, func, select, update

from whoopadmin.connect.models import Link
from whoopadmin.extensions import db
from whoopadmin.health import probes
from whoopadmin.health.models import ConnectionSignal, WebhookActivity
from whoopadmin.setup import service as setup_service
from whoopadmin.setup.models import Connection
from whoopadmin.webhooks.models import WebhookEvent, WebhookRejection
from whoopadmin.webhooks.service import TEST_TYPE

SIGNAL = "webhooks_silent"
SIGNATURE_REASONS = ("bad_signature", "stale_timestamp", "missing_signature", "bad_timestamp")


def _is_member_webhook():
    return (WebhookEvent.source == "member") & (WebhookEvent.type != TEST_TYPE)


def activity_of(connection: Connection) -> WebhookActivity | None:
    """The connection's learned webhook activity, if a pass has run (or a miss was counted)."""
    return db.session.get(WebhookActivity, connection.id)


def learn(connection: Connection, now: datetime) -> WebhookActivity:
    """Fold the member webhooks stored since the last pass into the learned rate (commits)."""
    activity = activity_of(connection)
    if activity is None:
        activity = WebhookActivity(connection_id=connection.id)
        db.session.add(activity)
        db.session.flush()
    member = _is_member_webhook()
    newest_id, count, newest_member_id, newest_at = db.session.execute(
        select(
            func.max(WebhookEvent.id),
            func.sum(case((member, 1), else_=0)),
            func.max(case((member, WebhookEvent.id))),
            func.max(case((member, WebhookEvent.received_at))),
        ).where(
            WebhookEvent.connection_id == connection.id, WebhookEvent.id > activity.event_cursor
        )
    ).one()
    count = int(count or 0)
    half_life = float(current_app.config["HEALTH_RATE_HALF_LIFE_HOURS"]) * 3600
    if activity.updated_at is None:
        # First pass: start from the last day's webhooks (a day of learning, if any).
        recent = db.session.scalar(
            select(func.count(WebhookEvent.id)).where(
                WebhookEvent.connection_id == connection.id,
                member,
                WebhookEvent.received_at >= now - timedelta(days=1),
            )
        )
        activity.learned_webhooks = recent or 0
        activity.learned_seconds = 86_400.0 if recent else 0.0
        activity.rate_per_hour = (recent or 0) / 24
        activity.updated_at = now
    elif count:
        elapsed = (now - activity.updated_at).total_seconds()
        if elapsed > 0:
            activity.learned_seconds += elapsed
            activity.learned_webhooks += count
            if activity.learned_seconds < half_life:
                activity.rate_per_hour = activity.learned_webhooks * 3600 / activity.learned_seconds
            else:
                weight = 1 - 0.5 ** (elapsed / half_life)
                observed = count * 3600 / elapsed
                activity.rate_per_hour += weight * (observed - activity.rate_per_hour)
            activity.updated_at = now
    if newest_id is not None:
        activity.event_cursor = newest_id
    if count:
        if newest_at is not None and (
            activity.last_webhook_at is None or newest_at > activity.last_webhook_at
        ):
            activity.last_webhook_at = newest_at
        activity.last_webhook_id = max(activity.last_webhook_id or 0, int(newest_member_id))
        db.session.flush()
        # Misses counted before this webhook arrived are history now; later ones stay.
        db.session.execute(
            update(WebhookActivity)
            .where(
                WebhookActivity.connection_id == connection.id,
                (WebhookActivity.last_missed_at.is_(None))
                | (WebhookActivity.last_missed_at <= newest_at),
            )
            .values(missed_since_webhook=0)
        )
    db.session.commit()
    db.session.refresh(activity)
    return activity


def active_links(connection: Connection) -> int:
    """Links of the connection that should be receiving webhooks."""
    return db.session.scalar(
        select(func.count(Link.id)).where(
            Link.connection_id == connection.id, Link.status == "active"
        )
    )


def signature_failures(connection: Connection, now: datetime) -> int:
    """Webhooks refused for their signature in the last day (a wrong secret, mostly)."""
    since = (now - timedelta(days=1)).date()
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(WebhookRejection.count), 0)).where(
                WebhookRejection.connection_id == connection.id,
                WebhookRejection.reason.in_(SIGNATURE_REASONS),
                WebhookRejection.day >= since,
            )
        )
    )


def silence(
    connection: Connection,
    activity: WebhookActivity | None,
    previous: ConnectionSignal | None,
    now: datetime,
) -> dict:
    """Whether the connection's webhooks are silent, and the numbers behind the verdict.

    Returns ``{"silent", "why", "active_links", "rate_per_hour", "last_webhook_at",
    "silent_for", "threshold", "missed_since_webhook", "flag_webhook_id"}``.
    """
    config = current_app.config
    rate = activity.rate_per_hour if activity else 0.0
    last = activity.last_webhook_at if activity else None
    missed = activity.missed_since_webhook if activity else 0
    changed = activity.last_change_at if activity else None
    threshold = float(config["HEALTH_SILENT_AFTER_SECONDS"])
    if rate > 0:
        threshold = max(threshold, float(config["HEALTH_SILENT_GAP_FACTOR"]) * 3600 / rate)
    out = {
        "silent": False,
        "why": [],
        "active_links": active_links(connection),
        "rate_per_hour": round(rate, 3),
        "last_webhook_at": last.isoformat() if last else None,
        "silent_for": (now - last).total_seconds() if last else None,
        "threshold": threshold,
        "missed_since_webhook": missed,
        "last_change_at": changed.isoformat() if changed else None,
        "flag_webhook_id": activity.last_webhook_id if activity else 0,
    }
    if connection.live_at is None or out["active_links"] == 0:
        return out
    if previous is not None and previous.state == "problem":
        # Sticky: only a member webhook newer than the flag clears it.
        flagged_at = int((previous.details or {}).get("flag_webhook_id") or 0)
        if not activity or (activity.last_webhook_id or 0) <= flagged_at:
            out.update(
                silent=True,
                why=(previous.details or {}).get("why") or ["no_webhooks"],
                flag_webhook_id=flagged_at,
            )
            return out
    active = changed is not None and (last is None or changed > last)
    if rate > 0 and last is not None and active and out["silent_for"] > threshold:
        out["why"].append("no_webhooks")
    if missed >= int(config["HEALTH_MISSED_SILENT_COUNT"]):
        out["why"].append("missed")
    out["silent"] = bool(out["why"])
    return out


def check_causes(connection: Connection, now: datetime) -> list[dict]:
    """Check what can be checked of why webhooks do not arrive; each with its exact fix.

    Items: ``{"key", "label", "status" (ok / problem / unknown / n/a), "detail", "fix"}``.
    Sends one signed test event through the public webhook URL and opens one TLS
    connection: run it in a job, never in a web request.
    """
    from whoopadmin.webhooks.service import send_test_event

    config = current_app.config
    timeout = float(config["WHOOP_TIMEOUT"])
    url = setup_service.webhook_url(connection)
    host = connection.hostname or ""
    causes = []
    if not host or connection.client_secret_sealed is None:
        causes.append(
            _cause(
                "url",
                "The webhook URL answers from outside",
                "problem",
                "The connection has no subdomain or no client secret yet.",
                "Finish the setup wizard (credentials and subdomain).",
            )
        )
    else:
        _trace, outcome = send_test_event(connection, url, timeout)
        arrived = outcome == "arrived"
        causes.append(
            _cause(
                "url",
                "The webhook URL answers from outside",
                "ok" if arrived else "problem",
                f"A signed test event {'arrived' if arrived else 'did not arrive'} through "
                f"{url}" + ("." if arrived else f": {outcome}."),
                f"Make {host} reach whoopadmin from the internet: its DNS records (the "
                "wizard's DNS step), the TLS server in front (it must pass /hooks/whoop/push "
                "on), and no firewall or proxy refusing POSTs.",
            )
        )
    if config["PUBLIC_SCHEME"] != "https":
        causes.append(
            _cause(
                "certificate",
                "Its certificate is live",
                "n/a",
                "Public pages are served over plain HTTP here: no certificate is involved.",
                "WHOOP needs an https webhook URL in production.",
            )
        )
    elif host:
        port = int(config.get("PUBLIC_PORT") or 443)
        result = probes.certificate_status(
            host, port, config.get("HEALTH_CA_BUNDLE") or None, timeout
        )
        causes.append(
            _cause(
                "certificate",
                "Its certificate is live",
                "ok" if result["ok"] else "problem",
                f"{host}: {result['detail']}.",
                "Let the TLS server get a certificate for the subdomain: the wizard's "
                "certificate step must be green (/internal/tls/ask answers 200 for it), and "
                "the TLS server's log says why issuing failed.",
            )
        )
    failures = signature_failures(connection, now)
    causes.append(
        _cause(
            "secret",
            "Webhooks pass the signature check",
            "problem" if failures else "ok",
            f"{failures} webhook{'s' if failures != 1 else ''} failed the signature check "
            "in the last day."
            if failures
            else "No signature failures in the last day.",
            "Copy the client secret from the WHOOP developer dashboard into the wizard's "
            "Credentials step (after rotating it at WHOOP, save the new one here too).",
        )
    )
    activity = activity_of(connection)
    never = activity is None or activity.last_webhook_at is None
    causes.append(
        _cause(
            "registration",
            "The URL is registered at WHOOP with model version v2",
            "problem" if never else "unknown",
            "No member webhook has ever arrived for this connection."
            if never
            else "whoopadmin cannot read WHOOP's settings.",
            f"In the WHOOP developer dashboard, register {url} as the app's webhook URL "
            "with model version v2 (v1 webhooks name records by other ids).",
        )
    )
    return causes


def _cause(key: str, label: str, status: str, detail: str, fix: str) -> dict:
    return {"key": key, "label": label, "status": status, "detail": detail, "fix": fix}


def store_causes(connection: Connection, causes: list[dict], now: datetime) -> None:
    """Keep the latest cause check on the connection's activity row (commits)."""
    activity = activity_of(connection)
    if activity is None:
        activity = WebhookActivity(connection_id=connection.id)
        db.session.add(activity)
    activity.causes = causes
    activity.causes_checked_at = now
    db.session.commit()

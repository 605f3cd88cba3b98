"""Connect sessions, the trip to WHOOP and back, links and disconnecting them."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from whoopadmin import audit, i18n
from whoopadmin.audit import utcnow
from whoopadmin.connect import binding, policy
from whoopadmin.connect.models import ConnectSession, Link, LinkEvent, OAuthState
from whoopadmin.crypto import keyed_hash
from whoopadmin.destinations.service import emit
from whoopadmin.extensions import db
from whoopadmin.health import calls, member_cap
from whoopadmin.printable import is_printable
from whoopadmin.setup import service as setup_service
from whoopadmin.setup.models import Connection
from whoopadmin.whoop import SCOPES
from whoopadmin.whoop.api import WhoopError, get_profile, revoke_access

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 900
MAX_EXPIRES_IN = 7 * 24 * 3600
# The most days of history a connect session may ask for (as the connection's setting).
MAX_BACKFILL_DAYS = 365  # api.rules.BACKFILL_DAYS states it too
STATE_LIFETIME = timedelta(minutes=10)
# Without these the link is useless: no refresh token, or no user id.
REQUIRED_SCOPES = {"offline", "read:profile"}

# Stable reason codes for failed connects (sent to the failure URL as ``reason``), and
# what the hosted page tells the end user (translated: whoopadmin/translations/).
REASONS = {
    "access_denied": _l(
        "You declined to share your WHOOP data. If you change your mind, open the link again."
    ),
    "invalid_state": _l("This sign-in link is not valid. Start again from the app."),
    "state_expired": _l("This sign-in took too long. Start again from the app."),
    "state_replayed": _l(
        "This sign-in was already completed or attempted. Start again from the app."
    ),
    "session_expired": _l("This connect link has expired. Ask for a new one."),
    "session_used": _l("This connect link was already used. Ask for a new one."),
    "missing_code": _l("WHOOP did not send the authorization back. Start again from the app."),
    "exchange_failed": _l("WHOOP did not complete the sign-in. Try again in a moment."),
    "missing_scopes": _l(
        "Some required permissions were not granted. Start again and allow all of them."
    ),
    "profile_failed": _l("Your WHOOP profile could not be read. Try again in a moment."),
    "whoop_error": _l("WHOOP reported an error. Start again from the app."),
    "member_cap_reached": _l(
        "This service cannot connect more WHOOP accounts right now. Please try again later "
        "or contact the service's support."
    ),
    "state_mismatch": _l(
        "This sign-in was started in another browser. Open the connect link again and finish "
        "in the same browser."
    ),
    "already_linked": _l(
        "This WHOOP account is already connected to another user of this app. Contact the "
        "app's support."
    ),
    "wrong_account": _l(
        "You signed in with a different WHOOP account than the one this link is for. Sign in "
        "with the right WHOOP account."
    ),
    "connection_not_live": _l(
        "Connecting WHOOP accounts is not available here yet. Try again later."
    ),
}


class ConnectError(ValueError):
    """A connect session that cannot be created; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def token_hash(token: str) -> str:
    """The stored form of a connect token or state."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def email_hash(email: str) -> str:
    """The keyed hash support searches e-mail addresses by."""
    key = hashlib.sha256(b"whoopadmin-search:" + current_app.config["SECRET_KEY"].encode()).digest()
    return keyed_hash(key, email.strip().lower())


# --------------------------------------------------------------------------- sessions


def check_redirect(connection: Connection, url: str | None, field: str) -> str | None:
    """Accept a redirect URL only on an allowed origin or a registered app scheme."""
    if url is None or not str(url).strip():
        return None
    url = str(url).strip()
    if len(url) > 2048 or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConnectError(f"{field} is not a valid URL.", field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConnectError(f"{field} is not a valid URL.", field) from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        netloc = f"[{host}]" if ":" in host else host
        origin = f"{scheme}://{netloc}" + (f":{port}" if port else "")
        if parts.username or parts.password or origin not in (connection.allowed_origins or []):
            raise ConnectError(
                f"{field} must be on one of this connection's allowed origins "
                f"({', '.join(connection.allowed_origins or []) or 'none configured'}).",
                field,
                "redirect_not_allowed",
            )
        return url
    if scheme and scheme in (connection.app_schemes or []):
        return url
    raise ConnectError(
        f"{field} must use an allowed origin or a registered app scheme.",
        field,
        "redirect_not_allowed",
    )


def create_session(
    connection: Connection,
    *,
    reference_id: str,
    success_redirect_url: str | None = None,
    failure_redirect_url: str | None = None,
    language: str | None = None,
    expires_in: int | None = None,
    created_by,
    target_link: Link | None = None,
    backfill_days: int | None = None,
) -> tuple[ConnectSession, str]:
    """Create a connect session; return it and its token (shown once, stored hashed).

    ``created_by`` is the actor (a staff user, an API key, or a label such as ``"cli"``):
    the session records its name and the audit log records the creation.
    ``target_link``: a reconnect link for that link only (its member must consent).
    ``backfill_days``: days of history fetched after consent (None: the connection's
    setting), 1 to ``MAX_BACKFILL_DAYS``.
    """
    if not connection.hostname or connection.client_secret_sealed is None:
        raise ConnectError(
            "This connection is not set up yet (credentials and subdomain are needed).",
            "connection",
            "connection_not_ready",
        )
    _require_live(connection)
    reference_id = (reference_id or "").strip() if isinstance(reference_id, str) else ""
    if not reference_id or len(reference_id) > 255 or not is_printable(reference_id):
        raise ConnectError("reference_id must be 1-255 printable characters.", "reference_id")
    try:
        language = i18n.check_language(language)
    except i18n.LanguageError as exc:
        code = "unsupported_language" if exc.code == "unsupported" else "invalid"
        raise ConnectError(str(exc), "language", code) from None
    if expires_in is None:
        expires_in = DEFAULT_EXPIRES_IN
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ConnectError("expires_in must be a whole number of seconds.", "expires_in")
    if not 60 <= expires_in <= MAX_EXPIRES_IN:
        raise ConnectError(
            f"expires_in must be between 60 and {MAX_EXPIRES_IN} seconds.", "expires_in"
        )
    if backfill_days is not None and (
        isinstance(backfill_days, bool)
        or not isinstance(backfill_days, int)
        or not 1 <= backfill_days <= MAX_BACKFILL_DAYS
    ):
        raise ConnectError(
            f"backfill_days must be a whole number of days from 1 to {MAX_BACKFILL_DAYS}.",
            "backfill_days",
        )
    success = check_redirect(connection, success_redirect_url, "success_redirect_url")
    failure = check_redirect(connection, failure_redirect_url, "failure_redirect_url")
    refuse_new_member(connection, reference_id)
    token = secrets.token_urlsafe(32)
    session = ConnectSession(
        public_id="cs_" + secrets.token_hex(12),
        connection_id=connection.id,
        token_hash=token_hash(token),
        reference_id=reference_id,
        success_redirect_url=success,
        failure_redirect_url=failure,
        language=language,
        backfill_days=backfill_days,
        expires_at=utcnow() + timedelta(seconds=expires_in),
        created_by=audit.actor_label(created_by),
        target_link_id=target_link.id if target_link is not None else None,
    )
    db.session.add(session)
    db.session.flush()
    audit.record(
        created_by,
        "connect_session.create",
        connection,
        session=session.public_id,
        reference_id=reference_id,
    )
    db.session.commit()
    return session, token


def refuse_new_member(connection: Connection, reference_id: str) -> None:
    """ConnectError ``member_cap_reached`` if a session for ``reference_id`` would add a
    member past the connection's cap (a reconnect of a linked reference id adds none)."""
    try:
        member_cap.check_session(connection, reference_id)
    except member_cap.MemberCapReached as exc:
        raise ConnectError(str(exc), "connection", member_cap.REASON) from None


def cap_problem(connection: Connection, session: ConnectSession) -> str | None:
    """``member_cap_reached`` when opening this session's link would add one member too many."""
    try:
        member_cap.check_session(connection, session.reference_id)
    except member_cap.MemberCapReached:
        return member_cap.REASON
    return None


def _require_live(connection: Connection) -> None:
    """Connect sessions only for connections that went live (the wizard's last step)."""
    if connection.live_at is None:
        raise ConnectError(
            "This connection is not live yet: finish the setup wizard and go live first.",
            "connection",
            "connection_not_live",
        )


def connect_url(connection: Connection, token: str) -> str:
    """The URL an end user opens: on the connection's subdomain."""
    return setup_service.public_url(connection, f"/connect/{token}")


def find_session(connection: Connection, token: str) -> ConnectSession | None:
    """The session behind a connect token on this connection, if any."""
    if not token or len(token) > 200:
        return None
    return db.session.scalar(
        select(ConnectSession).where(
            ConnectSession.token_hash == token_hash(token),
            ConnectSession.connection_id == connection.id,
        )
    )


def page_problem(connection: Connection, session: ConnectSession | None) -> str | None:
    """Why the connect page (or its start) cannot go on: not live, or the session's problem."""
    if connection.live_at is None:
        return "connection_not_live"
    return session_problem(session)


def session_problem(session: ConnectSession | None) -> str | None:
    """Why a session cannot be used now (``session_used``…), or None."""
    if session is None:
        return "invalid_session"
    if session.used_at is not None:
        return "session_used"
    if session.expires_at <= utcnow():
        return "session_expired"
    return None


# --------------------------------------------------------------------------- OAuth


def oauth_client(connection: Connection) -> OAuth2Session:
    """An authlib client for this connection's WHOOP app (secret in the form body)."""
    return OAuth2Session(
        connection.client_id,
        connection.client_secret,
        scope=" ".join(SCOPES),
        redirect_uri=setup_service.redirect_url(connection),
        token_endpoint_auth_method="client_secret_post",
        code_challenge_method="S256" if connection.use_pkce else None,
    )


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and the state and binding value its cookie carries."""

    url: str
    state: str
    binding: str


def start_authorization(connection: Connection, session: ConnectSession) -> Authorization:
    """Create a fresh single-use state (bound to the browser) for this session."""
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48) if connection.use_pkce else None
    bound = binding.new_value()
    record = OAuthState(
        state_hash=token_hash(state),
        session_id=session.id,
        expires_at=utcnow() + STATE_LIFETIME,
        binding_hash=binding.value_hash(bound),
    )
    if verifier:
        record.code_verifier = verifier
    db.session.add(record)
    db.session.commit()
    with oauth_client(connection) as client:
        url, _ = client.create_authorization_url(
            current_app.config["WHOOP_AUTH_URL"], state=state, code_verifier=verifier
        )
    return Authorization(url, state, bound)


# Refusals that leave the state unclaimed: the browser that started the flow may still
# complete it with the same state.
UNCLAIMED = ("state_mismatch", "connection_not_live")


@dataclass
class CallbackResult:
    """What the callback concluded: a link, or a reason code (and the session if known)."""

    session: ConnectSession | None
    link: Link | None = None
    reason: str | None = None
    reconnected: bool = False

    @property
    def binding_spent(self) -> bool:
        """Whether the browser's binding cookie for this state has served its purpose
        (kept when the state was refused unclaimed, so that browser can still finish)."""
        return self.reason not in UNCLAIMED


def _fail(connection, session, reason, link: Link | None = None, **details) -> CallbackResult:
    """Record a failed attempt on the timeline (of ``link``, else of the session's link)."""
    db.session.rollback()
    link_id = link.id if link is not None else None
    if link_id is None and session is not None:
        link_id = session.link_id or session.target_link_id
    db.session.add(
        LinkEvent(
            connection_id=connection.id,
            session_id=session.id if session else None,
            link_id=link_id,
            kind="connect_failed",
            reason=reason,
            details=details,
        )
    )
    db.session.commit()
    if session is not None:  # junk states hitting the callback make no deliveries
        emit(
            connection.id,
            "auth.error",
            {
                "reason": reason,
                "reference_id": session.reference_id,
                "session_id": session.public_id,
                **details,
            },
            link=link,
        )
    return CallbackResult(session=session, reason=reason)


def _claim(model, row_id: int) -> bool:
    """Mark a state or session used, atomically: only one racing request wins."""
    result = db.session.execute(
        update(model).where(model.id == row_id, model.used_at.is_(None)).values(used_at=utcnow())
    )
    db.session.commit()
    return result.rowcount == 1


def complete_callback(connection: Connection, args, cookies=None) -> CallbackResult:
    """Handle WHOOP's redirect back: state, code exchange, profile, link. Never raises.

    ``cookies``: the request's cookies, which must hold the state's browser binding.
    """
    state = args.get("state") or ""
    record = None
    if 8 <= len(state) <= 200:
        record = db.session.scalar(
            select(OAuthState).where(OAuthState.state_hash == token_hash(state))
        )
    session = db.session.get(ConnectSession, record.session_id) if record else None
    if record is None or session is None or session.connection_id != connection.id:
        return _fail(connection, None, "invalid_state")
    if record.used_at is not None:
        return _fail(connection, session, "state_replayed")
    if record.expires_at <= utcnow():
        return _fail(connection, session, "state_expired")
    # Refused before the claim: a state presented from another browser stays usable by
    # the browser that started the flow.
    if not binding.matches(record.binding_hash, binding.presented(cookies or {}, state)):
        return _fail(connection, session, "state_mismatch")
    if connection.live_at is None:
        return _fail(connection, session, "connection_not_live")
    if not _claim(OAuthState, record.id):
        return _fail(connection, session, "state_replayed")
    error = args.get("error")
    if error:
        reason = "access_denied" if error == "access_denied" else "whoop_error"
        return _fail(connection, session, reason, whoop_error=str(error)[:64])
    code = args.get("code")
    if not code or len(code) > 2000:
        return _fail(connection, session, "missing_code")
    problem = session_problem(session)
    if problem:
        return _fail(connection, session, problem)
    if not _claim(ConnectSession, session.id):
        return _fail(connection, session, "session_used")

    timeout = float(current_app.config["WHOOP_TIMEOUT"])
    try:
        calls.count(connection.id, calls.CONNECT)
        with oauth_client(connection) as client:
            token = client.fetch_token(
                current_app.config["WHOOP_TOKEN_URL"],
                code=code,
                code_verifier=record.code_verifier,
                timeout=timeout,
            )
    except OAuthError as exc:
        return _fail(connection, session, "exchange_failed", whoop_error=str(exc.error)[:64])
    except Exception as exc:  # network errors, non-JSON answers: all mean "no tokens"
        log.warning(
            "token exchange failed for connection %s: %s", connection.id, type(exc).__name__
        )
        return _fail(connection, session, "exchange_failed", error=type(exc).__name__)
    granted = set(str(token.get("scope") or " ".join(SCOPES)).split())
    missing = REQUIRED_SCOPES - granted
    if missing or not token.get("access_token") or not token.get("refresh_token"):
        return _fail(
            connection, session, "missing_scopes", missing=sorted(missing or {"refresh_token"})
        )
    try:
        calls.count(connection.id, calls.CONNECT)
        profile = get_profile(
            current_app.config["WHOOP_API_BASE"], token["access_token"], timeout=timeout
        )
    except WhoopError as exc:
        return _fail(connection, session, "profile_failed", whoop_error=exc.code)
    if refused := _refuse_at_callback(connection, profile.user_id, token["access_token"]):
        return _fail(connection, session, refused)

    link, decision, previous = _store_link(connection, session, profile, token, granted)
    if decision.refused:
        return _refuse(connection, session, decision, profile.user_id, token["access_token"])
    _queue_backfill(link, session.backfill_days)
    data = {
        "reference_id": session.reference_id,
        "session_id": session.public_id,
        "scopes": link.scopes,
    }
    if decision.action == "move":
        data["previous_reference_id"] = previous
    emit(connection.id, policy.EVENT_TYPE[decision.action], data, link=link)
    return CallbackResult(session=session, link=link, reconnected=decision.action != "create")


def _refuse(connection, session, decision, whoop_user_id, access_token) -> CallbackResult:
    """A consent the policy refused: no link is touched.

    When the member who consented has no link here at all (a reconnect link used with the
    wrong account), the fresh grant is revoked at WHOOP, so it does not count towards the
    app's member cap. It is not revoked when the member has a link: WHOOP's revocation
    ends every token of the member, the existing link's included.
    """
    stranger = decision.reason == "wrong_account" and not _find_member(connection, whoop_user_id)
    if stranger and (error := _revoke_at_whoop(connection.id, access_token)):
        log.warning("could not revoke a refused grant: %s", error)
    return _fail(connection, session, decision.reason, link=decision.link)


def _find_member(connection: Connection, whoop_user_id: int) -> Link | None:
    """The link of this WHOOP member on this connection, if any."""
    return db.session.scalar(
        select(Link).where(Link.connection_id == connection.id, Link.whoop_user_id == whoop_user_id)
    )


def _refuse_at_callback(connection: Connection, whoop_user_id: int, access_token: str):
    """``member_cap_reached`` (after revoking the fresh grant) for a new member past the cap.

    The connect page already refuses at the cap; this catches newcomers who were at
    WHOOP at the same time.
    """
    try:
        member_cap.check_member(connection, whoop_user_id)
    except member_cap.MemberCapReached:
        if error := _revoke_at_whoop(connection.id, access_token):
            log.warning("could not revoke a grant refused at the cap: %s", error)
        return member_cap.REASON
    return None


def _revoke_at_whoop(connection_id: int, access_token: str) -> str | None:
    """``DELETE /v2/user/access`` (a counted WHOOP call); the WHOOP error code if it failed."""
    calls.count(connection_id, calls.REVOKE)
    try:
        revoke_access(
            current_app.config["WHOOP_API_BASE"],
            access_token,
            timeout=float(current_app.config["WHOOP_TIMEOUT"]),
        )
    except WhoopError as exc:
        return exc.code
    return None


def _expires_at(token: dict) -> datetime:
    try:
        seconds = int(token.get("expires_in") or 3600)
    except (TypeError, ValueError):
        seconds = 3600
    return utcnow() + timedelta(seconds=max(0, seconds))


def _store_link(connection, session, profile, token, granted):
    """Create the link, or update the member's existing one as the policy allows.

    Returns (link, decision, previous reference id); a refused decision writes nothing.
    """
    for _ in range(2):  # a racing first connect of the same member may insert first
        link = _find_member(connection, profile.user_id)
        decision = policy.decide(connection, session, link, profile.user_id)
        if decision.refused:
            return None, decision, None
        if link is None:
            link = Link(connection_id=connection.id, whoop_user_id=profile.user_id)
        previous = link.reference_id
        link.reference_id = session.reference_id
        link.status = "active"
        link.status_reason = None
        link.revoked_at = None
        link.access_token = token["access_token"]
        link.refresh_token = token["refresh_token"]
        link.token_version = (link.token_version or 0) + 1
        link.access_expires_at = _expires_at(token)
        link.scopes = " ".join(sorted(granted))
        link.connected_at = utcnow()
        link.email = profile.email
        link.first_name = profile.first_name
        link.last_name = profile.last_name
        link.email_hash = email_hash(profile.email) if profile.email else None
        db.session.add(link)  # only now: every NOT NULL column is set before any autoflush
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            continue
        session.link_id = link.id
        details = {"reference_id": session.reference_id, "session": session.public_id}
        if decision.action == "move":
            details["previous_reference_id"] = previous
        db.session.add(
            LinkEvent(
                connection_id=connection.id,
                link_id=link.id,
                session_id=session.id,
                kind=policy.TIMELINE_KIND[decision.action],
                details=details,
            )
        )
        db.session.commit()
        return link, decision, previous
    raise RuntimeError("could not store the link")  # two inserts lost twice: not expected


def _queue_backfill(link: Link, days: int | None = None) -> None:
    """Queue the initial backfill (``days``: the session's window, else the connection's);
    if Redis is down, the link is kept and this is recorded."""
    from whoopadmin.data import backfills
    from whoopadmin.jobs import RETRY, enqueue_once
    from whoopadmin.sync.service import backfill_window

    try:
        backfills.queued(link.id, "connect", *backfill_window(link, days))
        enqueue_once(
            "backfill",
            "whoopadmin.sync.jobs.backfill_link",
            link.id,
            *((None, None, days) if days else ()),
            job_id=f"backfill-{link.id}",
            retry=RETRY,
        )
    except Exception as exc:  # Redis errors must not lose a freshly connected member
        log.warning("could not queue the backfill of link %s: %s", link.id, type(exc).__name__)
        db.session.rollback()
        try:
            backfills.fail(None, link.id, "not_queued", "The backfill could not be queued.")
        except Exception:  # the database too: the timeline entry below may still get in
            log.exception("could not record the backfill of link %s as failed", link.id)
            db.session.rollback()
        db.session.add(
            LinkEvent(
                connection_id=link.connection_id,
                link_id=link.id,
                kind="backfill_not_queued",
                details={"error": type(exc).__name__},
            )
        )
        db.session.commit()


def redirect_with(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


# --------------------------------------------------------------------------- links


def find_link(public_id: str) -> Link | None:
    """The link with this public id."""
    if not public_id or len(public_id) > 64:
        return None
    return db.session.scalar(select(Link).where(Link.uid == public_id))


def links_for_reference(reference_id: str) -> list[Link]:
    """Every link whose reference id is ``reference_id``."""
    return list(db.session.scalars(select(Link).where(Link.reference_id == reference_id)))


def _live_access_token(link: Link, token: str) -> str:
    """The link's access token, refreshed first if it has expired (tokens are refreshed
    when used, not ahead of time): WHOOP's revocation needs a live one."""
    from datetime import timedelta

    expires = link.access_expires_at
    if expires is None or expires > utcnow() + timedelta(seconds=60):
        return token
    from whoopadmin.sync.tokens import RefreshFailed, refresh_link

    try:
        refresh_link(link.id, "disconnect", seen_version=link.token_version)
    except RefreshFailed:
        return token
    return link.access_token or token


def disconnect(link: Link, actor) -> str | None:
    """Revoke at WHOOP, wipe the tokens, mark revoked. Returns a WHOOP error code, if any."""
    if link.status == "revoked":
        return None
    whoop_error = None
    token = link.access_token
    if token:
        token = _live_access_token(link, token)
        whoop_error = _revoke_at_whoop(link.connection_id, token)
    link.access_token = None
    link.refresh_token = None
    link.access_expires_at = None
    link.token_version = (link.token_version or 0) + 1
    link.status = "revoked"
    link.status_reason = "disconnected"
    link.revoked_at = utcnow()
    db.session.add(
        LinkEvent(
            connection_id=link.connection_id,
            link_id=link.id,
            kind="disconnect",
            details={
                "by": audit.actor_label(actor),
                "whoop_revoked": bool(token) and whoop_error is None,
                "whoop_revoke_error": whoop_error,
            },
        )
    )
    # Whoever asked (staff, an API key, the CLI) is in the audit log.
    audit.record(actor, "link.disconnect", link, whoop_revoke_error=whoop_error)
    db.session.commit()
    emit(
        link.connection_id,
        "deauth",
        {"reason": "disconnected", "whoop_revoke_error": whoop_error},
        link=link,
    )
    return whoop_error

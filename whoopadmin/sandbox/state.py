"""The sandbox's in-memory world: apps, members, grants, tokens, rate limits, faults, clock.

One ``SandboxState`` holds everything behind one re-entrant lock, so the threaded
server can share it. Nothing here imports Flask.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import data as gen
from .webhooks import Dispatcher

SCOPES = frozenset(
    {
        "offline",
        "read:recovery",
        "read:cycles",
        "read:workout",
        "read:sleep",
        "read:profile",
        "read:body_measurement",
    }
)
PARTNER_SCOPE = "whoop-partner/token"


def token_key(raw: str) -> str:
    """How a code or token is stored: its SHA-256, hex (look-ups hash what is presented)."""
    return hashlib.sha256(raw.encode()).hexdigest()


# The format of SandboxState.snapshot(); a file with another version is not loaded.
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A saved sandbox state that cannot be loaded (corrupt, or from another version)."""


class SandboxError(Exception):
    """A request the sandbox refuses; views turn it into a JSON error."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class SandboxConfig:
    """Knobs for the sandbox; every one of them can be set through the control API too."""

    seed: int = 1
    access_token_ttl: int = 3600
    refresh_token_ttl: int | None = None  # unconfirmed at WHOOP; None = never expires
    code_ttl: int = 300
    partner_token_ttl: int = 3600
    unapproved_member_cap: int = 10
    default_rate_per_minute: int = 100
    default_rate_per_day: int = 10_000
    retry_after_header: bool = True
    # "overlap": a record matches [start, end) if it intersects it (OpenAPI wording);
    # "start": a record matches if its own start lies in [start, end).
    range_mode: str = "overlap"
    last_page_token: str = "absent"  # "absent", "null" or "empty"
    refresh_reuse_revokes_family: bool = False
    # RFC 6749 6: a refresh that names a narrower ``scope`` gets exactly that (False: the
    # new tokens keep the whole grant whatever the request says).
    refresh_honours_scope: bool = False
    webhook_retry_delays: tuple[float, ...] = (60, 300, 600, 1200, 1800)
    webhook_timeout: float = 5.0
    webhook_workers: int = 2
    sign_with_sandbox_clock: bool = False  # webhook timestamps from real time by default
    webhook_loopback_only: bool = False  # SandboxServer turns this on: tests stay on loopback
    default_days: int = 90

    def public(self) -> dict:
        """The settings as JSON."""
        out = dict(self.__dict__)
        out["webhook_retry_delays"] = list(self.webhook_retry_delays)
        return out


SETTABLE = {
    "access_token_ttl": int,
    "refresh_token_ttl": (int, type(None)),
    "code_ttl": int,
    "partner_token_ttl": int,
    "unapproved_member_cap": int,
    "default_rate_per_minute": int,
    "default_rate_per_day": int,
    "retry_after_header": bool,
    "range_mode": str,
    "last_page_token": str,
    "refresh_reuse_revokes_family": bool,
    "refresh_honours_scope": bool,
    "sign_with_sandbox_clock": bool,
    "default_days": int,
    "webhook_loopback_only": bool,
}
CHOICES = {"range_mode": {"overlap", "start"}, "last_page_token": {"absent", "null", "empty"}}


class Clock:
    """Wall time plus an adjustable offset, so tests can jump ahead."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        """Sandbox time in epoch milliseconds."""
        return int(time.time() * 1000) + self.offset_ms

    def now(self) -> float:
        """Sandbox time in epoch seconds."""
        return self.now_ms() / 1000


@dataclass
class App:
    """A developer app registered at (fake) WHOOP."""

    client_id: str
    client_secret: str = field(repr=False)
    name: str = "Sandbox app"
    redirect_uris: list[str] = field(default_factory=list)
    webhook_urls: list[str] = field(default_factory=list)
    rate_per_minute: int = 100
    rate_per_day: int = 10_000
    approved: bool = False
    minute_window: tuple[int, int] = (0, 0)  # (window index, count)
    day_window: tuple[int, int] = (0, 0)

    def public(self, with_secret: bool = True) -> dict:
        """The app as the control API shows it."""
        out = {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "webhook_urls": list(self.webhook_urls),
            "rate_limit_per_minute": self.rate_per_minute,
            "rate_limit_per_day": self.rate_per_day,
            "approved": self.approved,
        }
        if with_secret:
            out["client_secret"] = self.client_secret
        return out


@dataclass
class Code:
    """A single-use authorization code."""

    client_id: str
    user_id: int
    redirect_uri: str
    scopes: frozenset[str]
    expires_at: float
    used: bool = False
    family: str = ""
    code_challenge: str | None = None  # PKCE (S256) from the authorization request


@dataclass
class Token:
    """An access or refresh token; ``family`` ties together one authorization's tokens."""

    kind: str  # "access" or "refresh"
    client_id: str
    user_id: int
    scopes: frozenset[str]
    expires_at: float | None
    family: str
    revoked: bool = False
    used: bool = False


@dataclass
class Partner:
    """A trusted partner (Partner API client)."""

    client_id: str
    client_secret: str = field(repr=False)
    signing_secret: str = field(repr=False)
    webhook_urls: list[str] = field(default_factory=list)

    def public(self) -> dict:
        """The partner as the control API shows it."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "signing_secret": self.signing_secret,
            "webhook_urls": list(self.webhook_urls),
        }


@dataclass
class Faults:
    """Failure injection for API (and optionally OAuth) requests."""

    error_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    rate_limit_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    include_oauth: bool = False
    remaining: int | None = None  # only the next N requests are affected
    # Scopes every refresh leaves out of the new grant (RFC 6749 6 lets a server narrow
    # it); the token response's ``scope`` says so. Not counted in ``remaining``.
    refresh_drop_scopes: list[str] = field(default_factory=list)

    def public(self) -> dict:
        """The fault settings as JSON."""
        out = dict(self.__dict__)
        out["refresh_drop_scopes"] = sorted(self.refresh_drop_scopes)
        return out


FAULT_FIELDS = {
    "error_rate": float,
    "slow_rate": float,
    "slow_seconds": float,
    "timeout_rate": float,
    "timeout_seconds": float,
    "rate_limit_rate": float,
    "webhook_drop_rate": float,
    "webhook_duplicate_rate": float,
    "include_oauth": bool,
    "remaining": int,
    "refresh_drop_scopes": list,
}


# RFC 7636 4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
PKCE_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def s256(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_pkce(challenge: str | None, verifier: str | None) -> None:
    """Refuse an exchange whose verifier does not match the code's challenge (or is extra)."""
    if challenge is None:
        if verifier:
            # OAuth 2.1 4.1.3: a verifier for a code issued without a challenge is refused.
            raise SandboxError(
                400,
                "invalid_grant",
                "The PKCE code verifier was provided but the authorization request had no "
                "code challenge.",
            )
        return
    if not verifier:
        raise SandboxError(
            400, "invalid_grant", "The PKCE code verifier is missing from the token request."
        )
    if not PKCE_RE.fullmatch(verifier) or not secrets.compare_digest(s256(verifier), challenge):
        raise SandboxError(
            400, "invalid_grant", "The PKCE code challenge did not match the code verifier."
        )


def _with_scopes(item: Code | Token) -> dict:
    """A code or token as JSON-ready data (scopes as a sorted list)."""
    return {**item.__dict__, "scopes": sorted(item.scopes)}


def _check_type(name: str, value: Any, kind: Any) -> Any:
    """Validate one JSON value; bool is not accepted as a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise SandboxError(400, "invalid_request", f"{name} has the wrong type")
    if float in kinds and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kinds):
        raise SandboxError(400, "invalid_request", f"{name} has the wrong type")
    if isinstance(value, float) and not math.isfinite(value):
        raise SandboxError(400, "invalid_request", f"{name} must be a finite number")
    return value


class SandboxState:
    """Everything the sandbox knows, behind one lock."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = config or SandboxConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise TypeError(f"unknown sandbox setting {key!r}")
            setattr(self.config, key, value)
        self.lock = threading.RLock()
        self.clock = Clock()
        self.apps: dict[str, App] = {}
        self.profiles: dict[int, gen.MemberProfile] = {}
        self._data: dict[int, gen.MemberData] = {}
        # Codes and tokens are kept by their SHA-256 (token_key), as a real provider would
        # store them: a saved snapshot holds no usable token.
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        # Each family's tokens, so a refresh revokes its family's access tokens without
        # scanning every token ever issued (a 10,000-member refresh storm stays fast).
        self.families: dict[str, list[Token]] = {}
        self.grants: dict[tuple[str, int], frozenset[str]] = {}  # active (app, member) grants
        # Members whose webhooks are switched off: their changes send none (recorded as
        # "suppressed" in the delivery log), as when WHOOP's webhooks fail for an app.
        self.webhooks_off: set[int] = set()
        self.partners: dict[str, Partner] = {}
        self.partner_tokens: dict[str, tuple[str, float]] = {}
        self.requisitions: dict[str, dict] = {}
        self.service_requests: dict[str, dict] = {}
        self.faults = Faults()
        self.stop_event = threading.Event()
        self._rng = random.Random(f"faults:{self.config.seed}")
        self._member_count = 0
        self._app_count = 0
        clock_ms = (
            self.clock.now_ms
            if self.config.sign_with_sandbox_clock
            else (lambda: int(time.time() * 1000))
        )
        self.dispatcher = Dispatcher(
            clock_ms,
            retry_delays=self.config.webhook_retry_delays,
            timeout=self.config.webhook_timeout,
            workers=self.config.webhook_workers,
            loopback_only=self.config.webhook_loopback_only,
        )

    def close(self) -> None:
        """Stop background work (webhook threads, sleeping fault requests)."""
        self.stop_event.set()
        self.dispatcher.stop()

    # -- saving and loading (the demo keeps its sandbox across restarts) --------------

    def snapshot(self) -> dict:
        """Everything a restart must keep, as JSON-ready data (see ``persist.py``).

        Apps, members and their data, grants, codes and tokens (by hash only), partners,
        lab requisitions, settings, the clock offset and webhooks not yet delivered.
        Rate-limit windows, faults and the delivery log are left out: they are transient.
        Call it (and serialise the result) while holding ``lock``.
        """
        with self.lock:
            settings = {name: getattr(self.config, name) for name in SETTABLE}
            settings["webhook_retry_delays"] = list(self.config.webhook_retry_delays)
            return {
                "version": SNAPSHOT_VERSION,
                "seed": self.config.seed,
                "settings": settings,
                "clock_offset_ms": self.clock.offset_ms,
                "app_count": self._app_count,
                "member_count": self._member_count,
                "apps": [
                    {
                        "client_id": a.client_id,
                        "client_secret": a.client_secret,
                        "name": a.name,
                        "redirect_uris": a.redirect_uris,
                        "webhook_urls": a.webhook_urls,
                        "rate_per_minute": a.rate_per_minute,
                        "rate_per_day": a.rate_per_day,
                        "approved": a.approved,
                    }
                    for a in self.apps.values()
                ],
                "members": [p.__dict__ for p in self.profiles.values()],
                "data": {str(uid): md.to_snapshot() for uid, md in self._data.items()},
                "grants": [[cid, uid, sorted(sc)] for (cid, uid), sc in self.grants.items()],
                "codes": {k: _with_scopes(c) for k, c in self.codes.items()},
                "tokens": {k: _with_scopes(t) for k, t in self.tokens.items()},
                "partners": [p.__dict__ for p in self.partners.values()],
                "partner_tokens": {k: list(v) for k, v in self.partner_tokens.items()},
                "requisitions": self.requisitions,
                "service_requests": self.service_requests,
                "webhooks": self.dispatcher.pending(),
            }

    @classmethod
    def from_snapshot(cls, saved: Any, **settings: Any) -> SandboxState:
        """A state rebuilt from :meth:`snapshot` output; SnapshotError if it does not fit.

        ``settings`` configure the new state as for the constructor; what the snapshot
        holds (settings changed through the control API included) is applied on top.
        """
        if not isinstance(saved, dict) or saved.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError("it is not a sandbox state of this version")
        settings["seed"] = saved.get("seed", settings.get("seed", 1))
        state = cls(**settings)
        try:
            state._load(saved)
        except SandboxError as exc:
            state.close()
            raise SnapshotError(exc.description) from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            state.close()
            raise SnapshotError(f"{type(exc).__name__}: {exc}") from None
        return state

    def _load(self, saved: dict) -> None:
        self.update_config(dict(saved["settings"]))
        self.clock.offset_ms = int(saved["clock_offset_ms"])
        self._app_count = int(saved["app_count"])
        self._member_count = int(saved["member_count"])
        for item in saved["apps"]:
            app = App(**item)
            self.apps[app.client_id] = app
        for item in saved["members"]:
            profile = gen.MemberProfile(**item)
            self.profiles[profile.user_id] = profile
        for uid, data in saved["data"].items():
            self._data[int(uid)] = gen.MemberData.from_snapshot(self.profiles[int(uid)], data)
        for cid, uid, scopes in saved["grants"]:
            self.grants[(str(cid), int(uid))] = frozenset(scopes)
        for key, item in saved["codes"].items():
            self.codes[key] = Code(**{**item, "scopes": frozenset(item["scopes"])})
        for key, item in saved["tokens"].items():
            token = Token(**{**item, "scopes": frozenset(item["scopes"])})
            self.tokens[key] = token
            self.families.setdefault(token.family, []).append(token)
        for item in saved["partners"]:
            partner = Partner(**item)
            self.partners[partner.client_id] = partner
        for key, (client_id, expires) in saved["partner_tokens"].items():
            self.partner_tokens[key] = (str(client_id), float(expires))
        self.requisitions = dict(saved["requisitions"])
        self.service_requests = dict(saved["service_requests"])
        self.dispatcher.restore_pending(list(saved["webhooks"]))

    # -- settings --------------------------------------------------------------------

    def update_config(self, values: dict) -> dict:
        """Change settings from a JSON object (validated)."""
        with self.lock:
            clean = {}
            for name, value in values.items():
                if name == "webhook_retry_delays":
                    if not isinstance(value, list) or not all(
                        isinstance(v, int | float)
                        and not isinstance(v, bool)
                        and math.isfinite(v)
                        and 0 <= v <= 86_400
                        for v in value
                    ):
                        raise SandboxError(400, "invalid_request", f"{name} must be a list")
                    clean[name] = tuple(float(v) for v in value)
                    continue
                if name not in SETTABLE:
                    raise SandboxError(400, "invalid_request", f"unknown setting {name!r}")
                value = _check_type(name, value, SETTABLE[name])
                if name in CHOICES and value not in CHOICES[name]:
                    raise SandboxError(
                        400, "invalid_request", f"{name} must be one of {CHOICES[name]}"
                    )
                if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                    raise SandboxError(400, "invalid_request", f"{name} must not be negative")
                if name == "default_days" and not 1 <= value <= 3650:
                    raise SandboxError(400, "invalid_request", "default_days must be 1..3650")
                clean[name] = value
            for name, value in clean.items():
                setattr(self.config, name, value)
                if name == "webhook_retry_delays":
                    self.dispatcher.retry_delays = value
                if name == "webhook_loopback_only":
                    self.dispatcher.loopback_only = value
            return self.config.public()

    # -- apps ------------------------------------------------------------------------

    def create_app(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str | None = None,
        redirect_uris: list[str] | None = None,
        webhook_urls: list[str] | None = None,
        rate_limit_per_minute: int | None = None,
        rate_limit_per_day: int | None = None,
        approved: bool = False,
    ) -> App:
        """Register an app; ids and secrets are deterministic per seed unless given."""
        with self.lock:
            self._app_count += 1
            rng = random.Random(f"app:{self.config.seed}:{self._app_count}")
            client_id = client_id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if client_id in self.apps:
                raise SandboxError(409, "conflict", "an app with this client_id exists")
            app = App(
                client_id=client_id,
                client_secret=client_secret or f"{rng.getrandbits(256):064x}",
                name=name or f"Sandbox app {self._app_count}",
                redirect_uris=list(redirect_uris or []),
                webhook_urls=list(webhook_urls or []),
                rate_per_minute=rate_limit_per_minute or self.config.default_rate_per_minute,
                rate_per_day=rate_limit_per_day or self.config.default_rate_per_day,
                approved=approved,
            )
            self.apps[client_id] = app
            return app

    def get_app(self, client_id: str) -> App:
        """The app with this client id, or a 404."""
        app = self.apps.get(client_id)
        if app is None:
            raise SandboxError(404, "not_found", "no such app")
        return app

    def delete_app(self, client_id: str) -> None:
        """Remove an app and everything it was granted."""
        with self.lock:
            self.get_app(client_id)
            del self.apps[client_id]
            for token in self.tokens.values():
                if token.client_id == client_id:
                    token.revoked = True
            for key in [k for k in self.grants if k[0] == client_id]:
                del self.grants[key]

    def member_count(self, client_id: str) -> int:
        """How many members currently grant this app access."""
        return sum(1 for (cid, _uid) in self.grants if cid == client_id)

    # -- members ---------------------------------------------------------------------

    def create_member(self, **overrides: Any) -> gen.MemberProfile:
        """Add a fake member; their history is generated on first use."""
        with self.lock:
            if overrides.get("days") is None:
                overrides["days"] = self.config.default_days
            anchor = overrides.pop("anchor_ms", None) or self.clock.now_ms()
            explicit_id = overrides.get("user_id") is not None
            while True:
                self._member_count += 1
                profile = gen.make_profile(
                    self.config.seed, self._member_count, anchor, **dict(overrides)
                )
                # A generated id that someone already chose explicitly is skipped.
                if explicit_id or profile.user_id not in self.profiles:
                    break
            if profile.user_id in self.profiles:
                raise SandboxError(409, "conflict", "a member with this user_id exists")
            if self.member_by_email(profile.email) is not None:
                raise SandboxError(409, "conflict", "a member with this email exists")
            self.profiles[profile.user_id] = profile
            return profile

    def get_member(self, user_id: int) -> gen.MemberProfile:
        """The member with this id, or a 404."""
        profile = self.profiles.get(user_id)
        if profile is None:
            raise SandboxError(404, "not_found", "no such member")
        return profile

    def member_by_email(self, email: str) -> gen.MemberProfile | None:
        """Look a member up by e-mail (case-insensitive)."""
        email = email.strip().lower()
        return next((p for p in self.profiles.values() if p.email.lower() == email), None)

    def data(self, user_id: int) -> gen.MemberData:
        """The member's records, generated on first access."""
        with self.lock:
            found = self._data.get(user_id)
            if found is None:
                found = gen.generate(self.config.seed, self.get_member(user_id))
                self._data[user_id] = found
            return found

    # -- OAuth -----------------------------------------------------------------------

    def issue_code(
        self,
        app: App,
        user_id: int,
        redirect_uri: str,
        scopes: frozenset[str],
        code_challenge: str | None = None,
    ) -> str:
        """Record consent and mint a single-use code (refuses the 11th member if unapproved).

        ``code_challenge``: the request's PKCE S256 challenge; the exchange then needs the
        verifier it was made from.
        """
        with self.lock:
            if (
                not app.approved
                and (app.client_id, user_id) not in self.grants
                and self.member_count(app.client_id) >= self.config.unapproved_member_cap
            ):
                raise SandboxError(
                    403,
                    "access_denied",
                    f"This app is not approved by WHOOP and already has "
                    f"{self.config.unapproved_member_cap} members.",
                )
            code = secrets.token_urlsafe(32)
            self.codes[token_key(code)] = Code(
                client_id=app.client_id,
                user_id=user_id,
                redirect_uri=redirect_uri,
                scopes=scopes,
                expires_at=self.clock.now() + self.config.code_ttl,
                family=uuid.uuid4().hex,
                code_challenge=code_challenge,
            )
            self.grants[(app.client_id, user_id)] = scopes
            return code

    def grant_tokens(self, client_id: str, user_id: int, scope: str | None = None) -> dict:
        """Consent and exchange in one step (benchmarks, the demo): a token response."""
        with self.lock:
            app = self.get_app(client_id)
            self.get_member(user_id)
            scopes = frozenset((scope if scope is not None else " ".join(SCOPES)).split())
            if scopes - SCOPES:
                raise SandboxError(
                    400, "invalid_scope", f"unknown scopes: {sorted(scopes - SCOPES)}"
                )
            redirect_uri = app.redirect_uris[0] if app.redirect_uris else "urn:sandbox"
            code = self.issue_code(app, user_id, redirect_uri, scopes)
            return self.exchange_code(app, code, redirect_uri)

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> App:
        """Check client credentials sent in the form body."""
        app = self.apps.get(client_id or "")
        if app is None or not secrets.compare_digest(
            (client_secret or "").encode(), app.client_secret.encode()
        ):
            raise SandboxError(
                401,
                "invalid_client",
                "Client authentication failed (e.g., unknown client, no client authentication "
                "included, or unsupported authentication method).",
            )
        return app

    def _mint(self, client_id: str, user_id: int, scopes: frozenset[str], family: str) -> dict:
        """Create an access token (and a refresh token with ``offline``); the token response."""
        now = self.clock.now()
        members = self.families.setdefault(family, [])
        access = "sbx_at_" + secrets.token_urlsafe(32)
        token = Token(
            "access", client_id, user_id, scopes, now + self.config.access_token_ttl, family
        )
        self.tokens[token_key(access)] = token
        members.append(token)
        body = {
            "access_token": access,
            "expires_in": self.config.access_token_ttl,
            "scope": " ".join(sorted(scopes)),
            "token_type": "bearer",
        }
        if "offline" in scopes:
            refresh = "sbx_rt_" + secrets.token_urlsafe(32)
            ttl = self.config.refresh_token_ttl
            token = Token(
                "refresh", client_id, user_id, scopes, None if ttl is None else now + ttl, family
            )
            self.tokens[token_key(refresh)] = token
            members.append(token)
            body["refresh_token"] = refresh
        return body

    def _revoke_family(self, family: str) -> None:
        for token in self.families.get(family, ()):
            token.revoked = True

    def exchange_code(
        self, app: App, code: str, redirect_uri: str | None, code_verifier: str | None = None
    ) -> dict:
        """authorization_code grant (with the PKCE check when the code has a challenge)."""
        with self.lock:
            found = self.codes.get(token_key(code))
            if found is None or found.client_id != app.client_id:
                raise SandboxError(400, "invalid_grant", "The authorization code is invalid.")
            if found.used:
                # RFC 6749 4.1.2: a replayed code revokes what it issued.
                self._revoke_family(found.family)
                raise SandboxError(400, "invalid_grant", "The authorization code was already used.")
            if found.expires_at <= self.clock.now():
                raise SandboxError(400, "invalid_grant", "The authorization code has expired.")
            if redirect_uri != found.redirect_uri:
                raise SandboxError(
                    400,
                    "invalid_request",
                    "The redirect_uri does not match the one used in the authorization request.",
                )
            check_pkce(found.code_challenge, code_verifier)
            if (app.client_id, found.user_id) not in self.grants:
                raise SandboxError(400, "invalid_grant", "The member revoked access.")
            found.used = True
            return self._mint(app.client_id, found.user_id, found.scopes, found.family)

    def refresh(self, app: App, refresh_token: str, scope: str | None) -> dict:
        """refresh_token grant: single use, rotating; the old access token dies too."""
        with self.lock:
            token = self.tokens.get(token_key(refresh_token))
            if token is None or token.kind != "refresh" or token.client_id != app.client_id:
                raise SandboxError(400, "invalid_grant", "The refresh token is invalid.")
            if token.used or token.revoked:
                if token.used and self.config.refresh_reuse_revokes_family:
                    self._revoke_family(token.family)
                raise SandboxError(
                    400, "invalid_grant", "The refresh token was already used or revoked."
                )
            if token.expires_at is not None and token.expires_at <= self.clock.now():
                raise SandboxError(400, "invalid_grant", "The refresh token has expired.")
            scopes = token.scopes
            if scope:
                wanted = frozenset(scope.split())
                if not wanted <= token.scopes:
                    raise SandboxError(
                        400, "invalid_scope", "The requested scope exceeds the granted scope."
                    )
                if self.config.refresh_honours_scope:
                    scopes = wanted
            scopes = scopes - frozenset(self.faults.refresh_drop_scopes)
            token.used = True
            for other in self.families.get(token.family, ()):
                if other.kind == "access":
                    other.revoked = True
            if (app.client_id, token.user_id) in self.grants:
                self.grants[(app.client_id, token.user_id)] = scopes
            return self._mint(app.client_id, token.user_id, scopes, token.family)

    def bearer(self, access_token: str) -> Token:
        """The live access token for a bearer string, or a 401."""
        with self.lock:
            token = self.tokens.get(token_key(access_token))
            if token is None or token.kind != "access":
                raise SandboxError(401, "invalid_token", "The access token is invalid.")
            if token.revoked:
                raise SandboxError(401, "invalid_token", "The access token was revoked.")
            if token.expires_at is not None and token.expires_at <= self.clock.now():
                raise SandboxError(401, "invalid_token", "The access token has expired.")
            if token.client_id not in self.apps:
                raise SandboxError(401, "invalid_token", "The app no longer exists.")
            return token

    def set_member_webhooks(self, user_id: int, enabled: bool) -> None:
        """Switch a member's webhooks on or off (off: changes send none)."""
        with self.lock:
            self.get_member(user_id)
            if enabled:
                self.webhooks_off.discard(user_id)
            else:
                self.webhooks_off.add(user_id)

    def revoke_access(self, client_id: str, user_id: int) -> None:
        """DELETE /v2/user/access: every token of this app for this member dies, webhooks stop."""
        with self.lock:
            for token in self.tokens.values():
                if token.client_id == client_id and token.user_id == user_id:
                    token.revoked = True
            self.grants.pop((client_id, user_id), None)

    # -- rate limits and faults --------------------------------------------------------

    def rate_limit(self, app: App) -> tuple[bool, dict[str, str]]:
        """Count one request against the app's minute and day windows; (allowed, headers)."""
        with self.lock:
            now = self.clock.now()
            minute, day = int(now // 60), int(now // 86400)
            m_count = app.minute_window[1] if app.minute_window[0] == minute else 0
            d_count = app.day_window[1] if app.day_window[0] == day else 0
            allowed = m_count < app.rate_per_minute and d_count < app.rate_per_day
            if allowed:
                m_count += 1
                d_count += 1
                app.minute_window = (minute, m_count)
                app.day_window = (day, d_count)
            return allowed, self._rate_headers(app, now, m_count, d_count)

    def _rate_headers(self, app: App, now: float, m_count: int, d_count: int) -> dict[str, str]:
        m_left = max(0, app.rate_per_minute - m_count)
        d_left = max(0, app.rate_per_day - d_count)
        m_reset = max(1, int(60 - now % 60 + 0.999))
        d_reset = max(1, int(86400 - now % 86400 + 0.999))
        # The window closest to running out is the one the headers describe first.
        if d_left < m_left or (d_left == 0 and m_left == 0 and d_reset > m_reset):
            limit, left, reset = app.rate_per_day, d_left, d_reset
        else:
            limit, left, reset = app.rate_per_minute, m_left, m_reset
        return {
            "X-RateLimit-Limit": (
                f"{limit}, {app.rate_per_minute};window=60, {app.rate_per_day};window=86400"
            ),
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Reset": str(reset),
        }

    def set_faults(self, values: dict) -> dict:
        """Replace the fault settings from a JSON object (validated)."""
        with self.lock:
            faults = Faults()
            for name, value in values.items():
                if name not in FAULT_FIELDS:
                    raise SandboxError(400, "invalid_request", f"unknown fault {name!r}")
                value = _check_type(name, value, FAULT_FIELDS[name])
                if name == "refresh_drop_scopes" and not (
                    all(isinstance(v, str) for v in value) and set(value) <= SCOPES
                ):
                    raise SandboxError(
                        400, "invalid_request", f"{name} must be a list of WHOOP scopes"
                    )
                if name.endswith("_rate") and not 0.0 <= value <= 1.0:
                    raise SandboxError(400, "invalid_request", f"{name} must be between 0 and 1")
                if name.endswith("_seconds") and value > 3600:
                    raise SandboxError(400, "invalid_request", f"{name} must be at most 3600")
                if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                    raise SandboxError(400, "invalid_request", f"{name} must not be negative")
                setattr(faults, name, value)
            self.faults = faults
            return faults.public()

    def pick_fault(self, oauth: bool) -> str | None:
        """Decide whether this request fails: "error", "timeout", "slow", "rate_limit" or None."""
        with self.lock:
            faults = self.faults
            if oauth and not faults.include_oauth:
                return None
            if faults.remaining is not None and faults.remaining <= 0:
                return None
            choice = None
            for name, rate in (
                ("error", faults.error_rate),
                ("timeout", faults.timeout_rate),
                ("rate_limit", faults.rate_limit_rate),
                ("slow", faults.slow_rate),
            ):
                if rate > 0 and self._rng.random() < rate:
                    choice = name
                    break
            if choice and faults.remaining is not None:
                faults.remaining -= 1
            return choice

    # -- webhooks ----------------------------------------------------------------------

    def emit(self, user_id: int, event_type: str, object_id: str) -> list[str]:
        """Send a v2 webhook to every URL of every app the member has granted; trace ids."""
        with self.lock:
            traces = []
            for (client_id, uid), _scopes in list(self.grants.items()):
                app = self.apps.get(client_id)
                if uid != user_id or app is None:
                    continue
                for url in app.webhook_urls:
                    trace_id = uuid.uuid4().hex
                    event = {
                        "user_id": user_id,
                        "id": object_id,
                        "type": event_type,
                        "trace_id": trace_id,
                    }
                    self.dispatcher.submit(
                        url,
                        "whoop",
                        app.client_secret,
                        event,
                        drop=self._chance(self.faults.webhook_drop_rate),
                        duplicate=self._chance(self.faults.webhook_duplicate_rate),
                        suppressed=user_id in self.webhooks_off,
                    )
                    traces.append(trace_id)
            return traces

    def emit_partner(self, partner: Partner, event_type: str, resource_id: str) -> int:
        """Send a signed partner webhook to every URL of the partner; how many were queued."""
        with self.lock:
            for url in partner.webhook_urls:
                self.dispatcher.submit(
                    url,
                    "partner",
                    partner.signing_secret,
                    {"event_type": event_type, "resource_id": resource_id},
                    drop=self._chance(self.faults.webhook_drop_rate),
                    duplicate=self._chance(self.faults.webhook_duplicate_rate),
                )
            return len(partner.webhook_urls)

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    # -- partners ----------------------------------------------------------------------

    def create_partner(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        signing_secret: str | None = None,
        webhook_urls: list[str] | None = None,
    ) -> Partner:
        """Register a trusted partner."""
        with self.lock:
            rng = random.Random(f"partner:{self.config.seed}:{len(self.partners) + 1}")
            client_id = client_id or f"partner-{rng.getrandbits(48):012x}"
            if client_id in self.partners:
                raise SandboxError(409, "conflict", "a partner with this client_id exists")
            partner = Partner(
                client_id=client_id,
                client_secret=client_secret or f"{rng.getrandbits(256):064x}",
                signing_secret=signing_secret or f"{rng.getrandbits(256):064x}",
                webhook_urls=list(webhook_urls or []),
            )
            self.partners[client_id] = partner
            return partner

    def partner_token(self, client_id: Any, client_secret: Any) -> dict:
        """The partner client-credentials grant."""
        with self.lock:
            partner = self.partners.get(client_id) if isinstance(client_id, str) else None
            if (
                partner is None
                or not isinstance(client_secret, str)
                or not secrets.compare_digest(
                    client_secret.encode(), partner.client_secret.encode()
                )
            ):
                raise SandboxError(401, "invalid_client", "Invalid client credentials")
            token = "sbx_pt_" + secrets.token_urlsafe(32)
            ttl = self.config.partner_token_ttl
            self.partner_tokens[token_key(token)] = (partner.client_id, self.clock.now() + ttl)
            return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def partner_bearer(self, token: str) -> Partner:
        """The partner behind a partner token, or a 401."""
        with self.lock:
            found = self.partner_tokens.get(token_key(token))
            if found is None or found[1] <= self.clock.now() or found[0] not in self.partners:
                raise SandboxError(401, "invalid_token", "Invalid or expired partner token")
            return self.partners[found[0]]

    def add_test_requisition(self, partner: Partner) -> dict:
        """A lab requisition with two service requests owned by the partner."""
        with self.lock:
            now = gen.iso_ms(self.clock.now_ms())
            srs = []
            for code, desc in (("CBC", "Complete blood count"), ("LIPID", "Lipid panel")):
                sr = {
                    "id": str(uuid.uuid4()),
                    "status": "active",
                    "intent": "order",
                    "code": code,
                    "task_business_status": "Requisition received",
                    "task_description": desc,
                }
                self.service_requests[sr["id"]] = {"owner": partner.client_id, "record": sr}
                srs.append(sr)
            req = {
                "id": str(uuid.uuid4()),
                "created_at": now,
                "updated_at": now,
                "service_requests": srs,
                "patient": {"id": str(uuid.uuid4())},
                "appointments": [
                    {"service_request_ids": [sr["id"] for sr in srs], "start_time": now}
                ],
            }
            self.requisitions[req["id"]] = {
                "owner": partner.client_id,
                "record": req,
                "results": [],
            }
            self.emit_partner(partner, "lab_requisition.created", req["id"])
            return req

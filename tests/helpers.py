"""Small helpers shared by tests."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import requests
import sqlalchemy as sa

from whoopadmin.domains import zone_text as zone  # noqa: F401 - zone files for the DNS server
from whoopadmin.extensions import db


def reset_schema(app) -> None:
    """Give the test an empty schema: create the tables, and empty them on PostgreSQL."""
    with app.app_context():
        db.create_all()
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    """Return the CSRF token embedded in a rendered page."""
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


PUBLIC = "https://whoop.acme.test"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class EndUser:
    """An end user: opens the connect link, consents at the sandbox, lands on the callback."""

    def __init__(self, app, sandbox, member):
        self.app, self.sandbox, self.member = app, sandbox, member
        self.client = app.test_client()
        self.started = None  # the last answer to POST /connect/<token>/start

    def binding(self, state: str) -> str | None:
        """The browser-binding cookie this browser holds for ``state``, if any."""
        from whoopadmin.connect.binding import COOKIE_PATH, cookie_name

        cookie = self.client.get_cookie(
            cookie_name(state), domain=urlsplit(PUBLIC).hostname, path=COOKIE_PATH
        )
        return cookie.value if cookie is not None else None

    def give_binding(self, state: str, value: str) -> None:
        """Put a binding cookie for ``state`` into this browser (a copied or forged one)."""
        from whoopadmin.connect.binding import COOKIE_PATH, cookie_name

        self.client.set_cookie(
            cookie_name(state), value, domain=urlsplit(PUBLIC).hostname, path=COOKIE_PATH
        )

    def open(self, token: str):
        return self.client.get(f"/connect/{token}", base_url=PUBLIC)

    def start(self, token: str):
        page = self.open(token)
        assert page.status_code == 200, page.status_code
        response = self.client.post(
            f"/connect/{token}/start",
            data={"csrf_token": csrf_from(page.get_data(as_text=True))},
            base_url=PUBLIC,
            # Over https Flask-WTF also checks the Referer, as a browser would send it.
            headers={"Referer": f"{PUBLIC}/connect/{token}"},
        )
        assert response.status_code == 303, response.status_code
        self.started = response
        return response.headers["Location"]

    def consent(self, authorize_url: str, action: str = "approve") -> str:
        """Sign in at the sandbox and answer; return where WHOOP redirects back to."""
        with requests.Session() as http:
            page = http.get(authorize_url, timeout=10)
            assert page.status_code == 200, page.text
            form = dict(HIDDEN_RE.findall(page.text))
            form = {k: unescape(v) for k, v in form.items()}
            form.update(email=self.member.email, password=self.member.password, action=action)
            answer = http.post(
                urlsplit(authorize_url)._replace(query="").geturl(),
                data=form,
                allow_redirects=False,
                timeout=10,
            )
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def callback(self, location: str):
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC, location
        return self.client.get(f"{parts.path}?{parts.query}", base_url=PUBLIC)

    def connect(self, token: str, action: str = "approve"):
        return self.callback(self.consent(self.start(token), action))

    def landing(self, response):
        """Follow the callback's 303 to the hosted result page (on the connection's host)."""
        return follow_result(self.client, response)


def follow_result(client, response):
    """The hosted result page a callback's 303 leads ``client`` to."""
    assert response.status_code == 303, response.status_code
    location = response.headers["Location"]
    assert location.startswith("/connect/done/"), location
    return client.get(location, base_url=PUBLIC)


def post_confirmed(client, path: str):
    """Confirm a destructive action on its confirmation page (GET ``path``), as a browser would."""
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "confirm": "yes"})


def post_form(client, path: str, page: str):
    """POST a button's form at ``path`` with the CSRF token of ``page``, as a browser would."""
    return client.post(
        path, data={"csrf_token": csrf_from(client.get(page).get_data(as_text=True))}
    )


def spend_refresh_token(app, sandbox, refresh_token: str) -> None:
    """Use a link's refresh token at WHOOP behind whoopadmin's back (they are single use)."""
    used = requests.post(
        sandbox.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.whoop_app.client_id,
            "client_secret": app.whoop_app.client_secret,
            "scope": "offline",
        },
        timeout=10,
    )
    assert used.status_code == 200, used.text
    used.close()


def query(location: str) -> dict[str, str]:
    """The query parameters of a redirect."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class AuthActions:
    """Sign in and out through the real login form (flaskr's ``auth`` helper)."""

    def __init__(self, client):
        self._client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self._client.get(path).get_data(as_text=True))

    def login(self, email: str = "operator@example.com", password: str = "operator-password"):
        token = self.csrf("/login")
        return self._client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )

    def verify(self, code: str):
        """The second step of signing in: an authenticator or recovery code."""
        token = self.csrf("/login/verify")
        return self._client.post("/login/verify", data={"code": code, "csrf_token": token})

    def logout(self):
        token = self.csrf("/")
        return self._client.post("/logout", data={"csrf_token": token})


def post_webhook(
    client,
    secret: str,
    event: dict,
    *,
    base_url: str = "https://whoop.acme.test",
    path: str = "/hooks/whoop/push",
):
    """POST ``event`` as WHOOP would: raw JSON body, ms timestamp, base64 HMAC signature."""
    import json
    import time

    from whoopadmin.webhooks.signatures import whoop_signature

    body = json.dumps(event).encode()
    stamp = str(int(time.time() * 1000))
    return client.post(
        path,
        data=body,
        base_url=base_url,
        headers={
            "X-WHOOP-Signature-Timestamp": stamp,
            "X-WHOOP-Signature": whoop_signature(secret, stamp, body),
        },
    )


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The authenticator code for ``secret`` now, or ``steps_ahead`` 30-second steps later
    (sign-in accepts the next step too; each step's code works once)."""
    import time

    import pyotp

    totp = pyotp.TOTP(secret)
    return totp.generate_otp(int(time.time()) // totp.interval + steps_ahead)


def cli_env(app) -> dict:
    """The environment of a ``whoopadmin`` command in its own process, on ``app``'s database,
    Redis, keys and WHOOP (the sandbox)."""
    import os

    config = app.config
    return dict(
        os.environ,
        WHOOPADMIN_INSTANCE_PATH=app.instance_path,
        WHOOPADMIN_DATABASE_URL=config["DATABASE_URL"],
        WHOOPADMIN_REDIS_URL=config["REDIS_URL"],
        WHOOPADMIN_SECRET_KEY=config["SECRET_KEY"],
        WHOOPADMIN_ENCRYPTION_KEYS=config["ENCRYPTION_KEYS"],
        WHOOPADMIN_WHOOP_API_BASE=config["WHOOP_API_BASE"],
        WHOOPADMIN_WHOOP_TOKEN_URL=config["WHOOP_TOKEN_URL"],
        WHOOPADMIN_WHOOP_AUTH_URL=config["WHOOP_AUTH_URL"],
    )


def token_works(sandbox, access_token: str) -> bool:
    """Whether WHOOP (the sandbox) accepts ``access_token`` for the member's profile."""
    response = requests.get(
        f"{sandbox.api_base}/v2/user/profile/basic",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    response.close()
    return response.status_code == 200

"""The factory: configuration precedence, embedded defaults, production checks, pages."""

import os
import stat

import pytest

from whoopadmin import create_app
from whoopadmin.config import ConfigError


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("WHOOPADMIN_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_config_precedence(tmp_path, clean_env, redis_url):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(
        "CNAME_TARGET = 'from-instance.example'\n"
        "VALIDATION_DOMAIN = 'from-instance.example'\n"
        "PUBLIC_SCHEME = 'from-instance'\n"
    )
    clean_env.setenv("WHOOPADMIN_VALIDATION_DOMAIN", "from-env.example")
    clean_env.setenv("WHOOPADMIN_PUBLIC_SCHEME", "from-env")
    clean_env.setenv("WHOOPADMIN_PUBLIC_PORT", "8443")
    app = create_app(
        {"INSTANCE_PATH": str(instance), "PUBLIC_SCHEME": "http", "REDIS_URL": redis_url}
    )
    assert app.config["WHOOP_TOKEN_URL"] == "https://api.prod.whoop.com/oauth/oauth2/token"
    assert app.config["CNAME_TARGET"] == "from-instance.example"  # instance beats defaults
    assert app.config["VALIDATION_DOMAIN"] == "from-env.example"  # env beats instance
    assert app.config["PUBLIC_PORT"] == 8443  # env values are parsed as JSON
    assert app.config["PUBLIC_SCHEME"] == "http"  # the test mapping beats everything


def test_embedded_defaults_create_their_files(tmp_path, clean_env):
    instance = tmp_path / "instance"
    app = create_app({"INSTANCE_PATH": str(instance)})
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    assert uri == f"sqlite:///{instance / 'whoopadmin.sqlite3'}"
    assert app.config["REDIS_URL"].startswith("unix://")
    for name in ("secret_key", "encryption_keys"):
        path = instance / name
        assert path.exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert (instance / "whoopadmin.sqlite3").exists()
    # The embedded Redis started on first use, and is recorded for other processes.
    assert app.config["REDIS_URL"] == f"unix://{instance / 'redis.sock'}"
    assert (instance / "redis.json").exists()
    # A second start reuses the generated keys instead of making new ones.
    key = (instance / "encryption_keys").read_text()
    again = create_app({"INSTANCE_PATH": str(instance)})
    assert (instance / "encryption_keys").read_text() == key
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    app.extensions["whoopadmin.embedded_redis"].stop()
    assert not (instance / "redis.json").exists()


def test_generated_keys_are_announced(tmp_path, clean_env, redis_url, caplog):
    create_app({"INSTANCE_PATH": str(tmp_path / "i"), "REDIS_URL": redis_url})
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "Generated WHOOPADMIN_ENCRYPTION_KEYS" in messages
    assert "Generated WHOOPADMIN_SECRET_KEY" in messages
    key = (tmp_path / "i" / "encryption_keys").read_text().strip()
    assert key not in messages


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ENCRYPTION_KEYS"])
def test_production_refuses_missing_keys(tmp_path, clean_env, redis_url, encryption_key, missing):
    config = {
        "INSTANCE_PATH": str(tmp_path / "i"),
        "ENV": "production",
        "SECRET_KEY": "a-real-secret",
        "ENCRYPTION_KEYS": encryption_key,
        "REDIS_URL": redis_url,
    }
    config[missing] = None
    with pytest.raises(ConfigError, match=f"WHOOPADMIN_{missing} is not set"):
        create_app(config)
    assert not (tmp_path / "i" / missing.lower()).exists()


def test_production_from_env_starts_with_secure_cookies(
    tmp_path, clean_env, redis_url, encryption_key
):
    clean_env.setenv("WHOOPADMIN_ENV", "production")
    clean_env.setenv("WHOOPADMIN_SECRET_KEY", "a-real-secret")
    clean_env.setenv("WHOOPADMIN_ENCRYPTION_KEYS", encryption_key)
    clean_env.setenv("WHOOPADMIN_REDIS_URL", redis_url)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i")})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True


def test_bad_encryption_key_is_a_clear_startup_error(tmp_path, clean_env, redis_url):
    with pytest.raises(ConfigError, match="WHOOPADMIN_ENCRYPTION_KEYS: encryption key #1"):
        create_app(
            {"INSTANCE_PATH": str(tmp_path), "ENCRYPTION_KEYS": "abc", "REDIS_URL": redis_url}
        )


def test_postgres_urls_use_psycopg(make_app):
    app = make_app(DATABASE_URL="postgresql://u@127.0.0.1:5432/x")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@127.0.0.1:5432/x"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["database"] == "ok" and response.json["redis"] == "ok"


def test_readyz_names_unreachable_redis(make_app):
    from tests.helpers import reset_schema

    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    reset_schema(app)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == ["redis"]


def test_readyz_names_unreachable_database(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == ["database"]


def test_security_headers(client):
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers
    secure = client.get("/login", base_url="https://admin.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_bootstrap_is_served_locally(client):
    page = client.get("/login").get_data(as_text=True)
    assert "cdn.jsdelivr.net" not in page and "https://" not in page
    css = client.get("/bootstrap/static/css/bootstrap.min.css")
    assert css.status_code == 200 and b".btn" in css.data
    css.close()


def test_styled_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b'data-testid="error-page"' in response.data
    assert b"Page not found" in response.data


def test_json_404_for_api_paths(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.json["error"] == "page_not_found"


def test_500_page_shows_no_stack_trace(make_app):
    from tests.helpers import reset_schema

    app = make_app(TESTING=False)
    reset_schema(app)

    @app.route("/boom")
    def boom():
        raise RuntimeError("internal detail sk-secret-value")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body
    assert "Traceback" not in body and "sk-secret-value" not in body


def test_database_down_is_a_clean_503(make_app):
    app = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none", TESTING=False)
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 503
    assert b"database is not reachable" in page.data and b"Traceback" not in page.data
    api = client.get("/api/v1/users?reference_id=x", headers={"Authorization": "Bearer wa_x"})
    assert api.status_code == 503
    assert api.json["error"] == "service_unavailable"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/login?next=%00", None),
        ("get", "/setup/prod%00uction", None),
        ("get", "/api/v1/users/%00", None),
        ("post", "/login", {"email": "a\x00@example.com", "password": "x"}),
    ],
)
def test_nul_characters_are_a_400(client, method, path, data):
    from tests.helpers import csrf_from

    if data is not None:
        data["csrf_token"] = csrf_from(client.get("/login").get_data(as_text=True))
    response = getattr(client, method)(path, data=data)
    assert response.status_code == 400
    assert b"NUL character" in response.data


def test_missing_schema_says_what_to_run(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}", TESTING=False)
    page = app.test_client().get("/login")
    assert page.status_code == 503
    assert b"whoopadmin db upgrade" in page.data


def test_embedded_database_is_upgraded_at_start(tmp_path, clean_env):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i")})
    assert app.test_client().get("/login").status_code == 200


@pytest.mark.parametrize("value", ["abc", "-1", "100000", "[1]"])
@pytest.mark.parametrize(
    "name", ["WEBHOOK_CONNECTION_CACHE_SECONDS", "WEBHOOK_QUEUE_DELAY_SECONDS"]
)
def test_bad_number_of_seconds_is_a_clear_startup_error(
    tmp_path, clean_env, redis_url, name, value
):
    clean_env.setenv(f"WHOOPADMIN_{name}", value)
    with pytest.raises(ConfigError, match=f"WHOOPADMIN_{name} must be"):
        create_app({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url})


def test_numbers_of_seconds_from_the_environment(tmp_path, clean_env, redis_url):
    clean_env.setenv("WHOOPADMIN_WHOOP_TIMEOUT", "2.5")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url})
    assert app.config["WHOOP_TIMEOUT"] == 2.5

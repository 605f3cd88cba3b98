"""whoopadmin: a self-hosted admin dashboard for WHOOP bring-your-own-credentials connections."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent


def _stop_embedded_redis() -> None:
    # Registered when the package is first imported, so it runs after every other exit
    # handler of whoopadmin's (atexit runs them last-in, first-out): work that flushes to
    # Redis at exit still finds it up. Nothing to do unless redisconn was ever used.
    redisconn = sys.modules.get("whoopadmin.redisconn")
    if redisconn is not None:
        redisconn.stop_owned()


atexit.register(_stop_embedded_redis)


def _configured_flask(test_config: dict[str, Any]) -> Flask:
    """A bare Flask object with whoopadmin's settings in order; it creates no file."""
    from whoopadmin import config

    instance_path = test_config.pop("INSTANCE_PATH", None) or os.environ.get(
        "WHOOPADMIN_INSTANCE_PATH"
    )
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_relative_config=True,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
    )
    app.config.from_mapping(config.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("WHOOPADMIN")
    app.config.from_mapping(test_config)
    return app


def read_settings() -> Mapping[str, Any]:
    """The settings as create_app would see them, without creating an app, files or keys.

    For commands that need a setting or two but neither the database nor Redis
    (``whoopadmin dns check``).
    """
    return _configured_flask({}).config


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the whoopadmin app: defaults → instance/config.py → WHOOPADMIN_* env → test_config."""
    from whoopadmin import config, errors, extensions, i18n, models, redisconn, web

    app = _configured_flask(dict(test_config or {}))
    config.finalise(app)
    app.config["REDIS_URL"] = redisconn.resolve_url(app)
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", redisconn.limiter_storage_uri(app.config["REDIS_URL"])
    )

    assert models.__all__  # every table is known before the first query or migration
    # The process that owns this app's database connections (see jobs.AppJob).
    app.extensions["whoopadmin.pid"] = os.getpid()
    extensions.db.init_app(app)
    extensions.migrate.init_app(
        app, extensions.db, directory=str(PACKAGE / "migrations"), render_as_batch=True
    )
    extensions.login_manager.init_app(app)
    extensions.csrf.init_app(app)
    extensions.bootstrap.init_app(app)
    extensions.limiter.init_app(app)
    i18n.init_app(app)

    from whoopadmin.webhooks.fastpath import FastPath

    app.wsgi_app = FastPath(app, app.wsgi_app)  # inside the proxy fix web.init_app adds
    web.init_app(app)
    errors.init_app(app)
    _register_blueprints(app)

    from whoopadmin.cli import register_commands

    register_commands(app)
    if not app.config.get("DATABASE_URL") and not app.testing:
        _upgrade_embedded_database(app)
    return app


def _upgrade_embedded_database(app: Flask) -> None:
    """Bring the embedded SQLite database to the latest schema, so `whoopadmin run` just works.

    Only for the embedded default: a configured database is upgraded deliberately, with
    `whoopadmin db upgrade`, as part of a deployment.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask_migrate import upgrade

    with app.app_context():
        from whoopadmin.extensions import db

        config = app.extensions["migrate"].migrate.get_config(app.extensions["migrate"].directory)
        head = ScriptDirectory.from_config(config).get_current_head()
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            upgrade(directory=app.extensions["migrate"].directory)
            app.logger.warning("Upgraded the embedded database in %s", app.instance_path)


def _register_blueprints(app: Flask) -> None:
    from whoopadmin.api.views import bp as api_bp
    from whoopadmin.api.views import keys_bp
    from whoopadmin.auth.views import bp as auth_bp
    from whoopadmin.connect.views import bp as connect_bp
    from whoopadmin.demokit.views import bp as demokit_bp
    from whoopadmin.destinations.views import bp as destinations_bp
    from whoopadmin.health.views import bp as health_bp
    from whoopadmin.main.views import bp as main_bp
    from whoopadmin.mfa.views import bp as mfa_bp
    from whoopadmin.ops.views import bp as ops_bp
    from whoopadmin.passwords.views import bp as passwords_bp
    from whoopadmin.sessions.views import bp as sessions_bp
    from whoopadmin.setup.views import bp as setup_bp
    from whoopadmin.setup.views import internal as internal_bp
    from whoopadmin.sso.views import bp as sso_bp
    from whoopadmin.support.views import bp as support_bp
    from whoopadmin.webhooks.views import bp as webhooks_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(setup_bp)
    app.register_blueprint(internal_bp)
    app.register_blueprint(connect_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(keys_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(destinations_bp)
    # Staff accounts: sessions, second factor, passwords, single sign-on.
    for blueprint in (sessions_bp, mfa_bp, passwords_bp, sso_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(health_bp)
    app.register_blueprint(demokit_bp)
    from whoopadmin.erasure.views import bp as erasure_bp

    app.register_blueprint(erasure_bp)

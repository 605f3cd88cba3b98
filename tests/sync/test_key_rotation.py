"""``whoopadmin keys rotate`` while refreshes run: no token is lost (issue 14).

Refresh tokens are single use at WHOOP: a rotation that wrote back a link's old (re-sealed)
token over one a refresh had just stored would leave the link holding a dead token, and its
next refresh would get ``invalid_grant``. Here real threads keep refreshing real sandbox
tokens while the real command runs in a process of its own; afterwards every link must
hold the refresh token the sandbox considers current, and still refresh.

Before the fix this failed on PostgreSQL (a few links a run ended ``reauth_required``). On
SQLite the old single-transaction rotation happened to hold the database's write lock
through the links whenever another sealed table came first, which serialised it.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from tests.helpers import cli_env
from whoopadmin.audit import utcnow
from whoopadmin.connect.models import Link, LinkEvent
from whoopadmin.crypto import generate_key
from whoopadmin.extensions import db
from whoopadmin.sandbox.state import token_key
from whoopadmin.sealing import keyring
from whoopadmin.setup.models import Connection
from whoopadmin.sync import tokens

LINKS = 200
REFRESHERS = 3
SAMPLE = 10  # links refreshed once more at the end, end to end


def _rotate_in_a_process(app) -> None:
    """``whoopadmin keys rotate``, as an operator runs it: its own process, same database."""
    done = subprocess.run(
        [sys.executable, "-m", "whoopadmin.cli", "keys", "rotate"],
        env=cli_env(app),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Re-encrypted" in done.stdout


def _seed_links(app, sandbox) -> list[int]:
    """LINKS links holding live sandbox tokens, sealed with the app's (old) key."""
    whoop_app = app.whoop_app
    sandbox.state.apps[whoop_app.client_id].approved = True  # past the 10-member cap
    ids = []
    with app.app_context():
        connection = db.session.scalar(sa.select(Connection))
        for n in range(LINKS):
            member = sandbox.state.create_member(days=1)
            token = sandbox.state.grant_tokens(whoop_app.client_id, member.user_id)
            link = Link(
                connection_id=connection.id,
                whoop_user_id=member.user_id,
                reference_id=f"rotation-{n}",
                status="active",
                token_version=1,
                scopes=token["scope"],
                access_expires_at=utcnow(),
            )
            link.access_token = token["access_token"]
            link.refresh_token = token["refresh_token"]
            link.email = member.email
            db.session.add(link)
            db.session.flush()
            ids.append(link.id)
        db.session.commit()
    return ids


def test_rotation_during_refreshes_loses_no_token(
    configured_app, make_app, sandbox, wizard_config, encryption_key
):
    ids = _seed_links(configured_app, sandbox)
    new_key = generate_key()
    # Workers and the rotation run with the new ring (new key first, old key kept).
    app = make_app(**wizard_config, ENCRYPTION_KEYS=f"{new_key},{encryption_key}")
    stop = threading.Event()
    done: list[tuple[float, str]] = []  # (finished at, outcome) of every refresh
    lock = threading.Lock()

    def refresher(seed: int) -> None:
        order = random.Random(seed)
        with app.app_context():
            while not stop.is_set():
                link_id = order.choice(ids)
                try:
                    outcome = tokens.refresh_link(link_id, "race", force=True)
                except tokens.RefreshFailed as exc:  # a busy lock: try another link
                    outcome = f"failed: {exc}"
                except Exception as exc:  # report it; the assertion below fails the test
                    outcome = f"error: {type(exc).__name__}: {exc}"
                    db.session.rollback()
                with lock:
                    done.append((time.monotonic(), outcome))
            db.session.remove()

    threads = [threading.Thread(target=refresher, args=(n,)) for n in range(REFRESHERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)  # the refreshers get going
        started = len(done)
        _rotate_in_a_process(app)
        assert len(done) > started  # refreshes went on while it ran
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    outcomes = [outcome for _, outcome in done]
    errors = [o for o in outcomes if o.startswith("error")]
    assert not errors, errors[:3]

    with app.app_context():
        ring = keyring()
        rows = db.session.scalars(sa.select(Link).where(Link.id.in_(ids))).all()
        for link in rows:
            assert link.status == "active", (link.id, link.status_reason)
            for column in ("access_token_sealed", "refresh_token_sealed", "email_sealed"):
                assert ring.sealed_with(getattr(link, column)) == ring.primary_id
            # The stored refresh token is the one WHOOP (the sandbox) holds as current.
            current = sandbox.state.tokens[token_key(link.refresh_token)]
            assert not (current.used or current.revoked), f"link {link.id} lost its token"
        dead = db.session.scalars(
            sa.select(LinkEvent.link_id).where(LinkEvent.reason == "invalid_grant")
        ).all()
        assert dead == []
        for link_id in random.Random(1).sample(ids, SAMPLE):
            assert tokens.refresh_link(link_id, "after", force=True) == "refreshed", link_id
    only_new = make_app(**wizard_config, ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        for link in db.session.scalars(sa.select(Link).where(Link.id.in_(ids))):
            assert link.access_token and link.refresh_token and link.email


def test_rotation_without_the_old_key_writes_no_link(make_app):
    """Links are opened before anything is written: a missing key changes nothing."""
    from tests.factories import make_connection, make_link
    from tests.helpers import reset_schema

    old = make_app()
    reset_schema(old)
    with old.app_context():
        make_link(make_connection(), whoop_user_id=5)
        before = db.session.execute(sa.select(Link.__table__)).all()
        secret = db.session.scalar(sa.select(Connection.client_secret_sealed))
    app = make_app(ENCRYPTION_KEYS=generate_key())
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 1 and "Nothing was changed" in result.output
    with app.app_context():
        assert db.session.execute(sa.select(Link.__table__)).all() == before
        assert db.session.scalar(sa.select(Connection.client_secret_sealed)) == secret

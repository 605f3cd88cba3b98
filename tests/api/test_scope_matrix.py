"""The API scope matrix: every key scope × every permission set × every endpoint × every
connection, with the exact answer each must get (2xx, 403 or 404), and nothing changed
by a refused call."""

from __future__ import annotations

import re
from collections import Counter
from itertools import combinations

import sqlalchemy as sa

from tests.api.conftest import new_key
from tests.api.support import ApiClient
from tests.factories import make_connection, make_link
from whoopadmin.api.models import PERMISSIONS
from whoopadmin.audit import AuditEvent, utcnow
from whoopadmin.connect.models import ConnectSession, Link
from whoopadmin.extensions import db
from whoopadmin.setup.models import Connection

# Every non-empty set of permissions (7).
PERMISSION_SETS = [frozenset(combo) for n in range(1, 4) for combo in combinations(PERMISSIONS, n)]
# Which connections each kind of key names; "later" is created after the keys.
SCOPES = {"all": None, "one": ["alpha"], "several": ["alpha", "beta"]}
ENVIRONMENTS = ["alpha", "beta", "gamma", "later"]


def live_connection(environment: str):
    """A connection that can take connect sessions (credentials, subdomain, live)."""
    return make_connection(
        environment=environment,
        display_name=environment.title(),
        hostname=f"{environment}.acme.test",
        status="live",
        live_at=utcnow(),
    )


def test_scope_matrix(app):
    with app.app_context():
        ids = {env: live_connection(env).id for env in ENVIRONMENTS[:3]}
    keys = {}
    for scope, names in SCOPES.items():
        for permissions in PERMISSION_SETS:
            label = f"{scope}:{'+'.join(sorted(permissions))}"
            keys[label] = (
                scope,
                permissions,
                new_key(
                    app,
                    label,
                    connection_ids=None if names is None else [ids[n] for n in names],
                    permissions=permissions,
                ),
            )
    # A connection created after every key: "all" keys include it, scoped keys do not.
    with app.app_context():
        ids["later"] = live_connection("later").id
        links = {}
        for n, label in enumerate(keys):
            for m, env in enumerate(ENVIRONMENTS):
                connection = db.session.get(Connection, ids[env])
                links[label, env] = make_link(
                    connection, whoop_user_id=1000 * n + m, reference_id=f"ref-{n}"
                ).uid

    expected_calls: Counter[str] = Counter()
    for n, (label, (scope, permissions, key)) in enumerate(keys.items()):
        api = ApiClient(app, key)
        visible = set(ENVIRONMENTS) if scope == "all" else set(SCOPES[scope])
        for env in ENVIRONMENTS:
            where = (label, env)
            in_scope = env in visible
            uid = links[label, env]

            # POST /connect-sessions: "connect", then the scope (403 outside it).
            response = api.post(
                "/connect-sessions", json={"connection": env, "reference_id": f"ref-{n}"}
            )
            want = 201 if "connect" in permissions and in_scope else 403
            assert response.status_code == want, (where, response.json)
            if want == 201:
                expected_calls["connect_session.create"] += 1
            elif "connect" in permissions:
                assert response.json["field"] == "connection", where

            # GET /users/<id>: "read", then the scope (404 outside it).
            response = api.get(f"/users/{uid}")
            want = 403 if "read" not in permissions else 200 if in_scope else 404
            assert response.status_code == want, (where, response.json)

            # POST /users/<id>/backfill: "write", then the scope.
            response = api.post(f"/users/{uid}/backfill", json={})
            want = 403 if "write" not in permissions else 202 if in_scope else 404
            assert response.status_code == want, (where, response.json)
            if want == 202:
                expected_calls["link.backfill"] += 1

            # DELETE /users/<id>: "write", then the scope.
            response = api.delete(f"/users/{uid}")
            want = 403 if "write" not in permissions else 200 if in_scope else 404
            assert response.status_code == want, (where, response.json)
            if want == 200:
                expected_calls["link.disconnect"] += 1
            with app.app_context():
                link = db.session.scalar(sa.select(Link).where(Link.uid == uid))
                assert (link.status == "revoked") == (want == 200), where

        # GET /users?reference_id=: "read"; only the links on the key's connections.
        response = api.get("/users", query_string={"reference_id": f"ref-{n}"})
        if "read" in permissions:
            assert response.status_code == 200, label
            assert {u["connection"] for u in response.json["users"]} == visible, label
            assert {u["user_id"] for u in response.json["users"]} == {
                links[label, env] for env in visible
            }
        else:
            assert response.status_code == 403, label

    # Every 2xx state change is in the audit log, by that key; a refused call left nothing.
    with app.app_context():
        actions = Counter(
            db.session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.actor.startswith("api-key:"))
            )
        )
        assert actions == expected_calls
        assert (
            db.session.scalar(sa.select(sa.func.count(ConnectSession.id)))
            == (expected_calls["connect_session.create"])
        )
    # 3 scopes × 7 permission sets: all keys reach 4 connections, "several" 2, "one" 1.
    per_scope = {"all": 4, "several": 2, "one": 1}
    with_permission = sum(1 for p in PERMISSION_SETS if "connect" in p)  # 4 of 7
    assert expected_calls["connect_session.create"] == with_permission * sum(per_scope.values())


def test_every_api_operation_names_its_permission(app):
    """A new endpoint cannot slip in without a permission (issue 17's data API included)."""
    from whoopadmin.api.openapi import document

    doc = document()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "api.openapi":
            assert not hasattr(view, "api_permissions")
            continue
        permissions = getattr(view, "api_permissions", ())
        assert len(permissions) == 1 and permissions[0] in PERMISSIONS, rule.endpoint
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path][method.lower()]
            assert f"'{permissions[0]}' permission" in operation["description"], rule.endpoint
            assert "403" in operation["responses"], rule.endpoint

"""link integrity: PKCE on by default, browser-bound states, reference-id policy

Revision ID: 5e1f0a7c3d21
Revises: 98416526a319
Create Date: 2026-12-01 09:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5e1f0a7c3d21"
down_revision = "98416526a319"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reference_id_policy",
                sa.String(length=16),
                nullable=False,
                server_default="refuse",
            )
        )
        batch_op.alter_column(
            "use_pkce",
            existing_type=sa.Boolean(),
            existing_nullable=False,
            server_default=sa.true(),
        )
    # PKCE becomes the default for every connection, existing ones included: the settings
    # page keeps a switch to turn it off for compatibility.
    op.execute(sa.text("UPDATE connections SET use_pkce = :on").bindparams(on=True))

    with op.batch_alter_table("connect_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_link_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_connect_sessions_target_link_id_links"),
            "links",
            ["target_link_id"],
            ["id"],
        )

    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("binding_hash", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.drop_column("binding_hash")

    with op.batch_alter_table("connect_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_connect_sessions_target_link_id_links"), type_="foreignkey"
        )
        batch_op.drop_column("target_link_id")

    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.alter_column(
            "use_pkce",
            existing_type=sa.Boolean(),
            existing_nullable=False,
            server_default=sa.false(),
        )
        batch_op.drop_column("reference_id_policy")

"""api keys scoped to connections and permissions, with an optional expiry

Revision ID: 4f079f4ec490
Revises: 5e1f0a7c3d21
Create Date: 2026-12-06 02:14:28.655782

Existing keys become all-connections keys with every permission (the server defaults),
so they keep working exactly as before.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "4f079f4ec490"
down_revision = "5e1f0a7c3d21"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_key_connections",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_connections_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_api_key_connections_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "connection_id", name=op.f("pk_api_key_connections")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("all_connections", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "permissions",
                sa.String(length=64),
                server_default="connect read write",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("permissions")
        batch_op.drop_column("all_connections")
    op.drop_table("api_key_connections")

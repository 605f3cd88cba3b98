"""erasures (requests and receipts) and per-connection data policies (retention)

Revision ID: c3e8a1f0d917
Revises: 4f079f4ec490
Create Date: 2026-12-06 06:40:00.000000

Two new tables; no existing table changes. A connection without a data_policies row
uses the documented defaults.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c3e8a1f0d917"
down_revision = "4f079f4ec490"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("user_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("previous_status", sa.String(length=24), nullable=True),
        sa.Column("previous_reason", sa.String(length=500), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_by", sa.String(length=255), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("whoop_revoke", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_erasures_connection_id_connections"),
        ),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_erasures_link_id_links")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("public_id", name=op.f("uq_erasures_public_id")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index("ix_erasures_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_erasures_connection_id"), ["connection_id"])
        batch_op.create_index(batch_op.f("ix_erasures_link_id"), ["link_id"])
        batch_op.create_index(batch_op.f("ix_erasures_user_hash"), ["user_hash"])

    op.create_table(
        "data_policies",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("raw_days", sa.Integer(), nullable=False),
        sa.Column("webhook_days", sa.Integer(), nullable=False),
        sa.Column("delivery_days", sa.Integer(), nullable=False),
        sa.Column("erasure_grace_days", sa.Integer(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_counts", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_data_policies_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_data_policies")),
    )


def downgrade():
    op.drop_table("data_policies")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_user_hash"))
        batch_op.drop_index(batch_op.f("ix_erasures_link_id"))
        batch_op.drop_index(batch_op.f("ix_erasures_connection_id"))
        batch_op.drop_index("ix_erasures_status_due")
    op.drop_table("erasures")

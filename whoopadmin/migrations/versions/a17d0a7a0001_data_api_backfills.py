"""data API: backfills (window and progress), backfill_days per connect session, and the
index record pages are read from

Revision ID: a17d0a7a0001
Revises: c3e8a1f0d917
Create Date: 2026-12-06 06:40:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a17d0a7a0001"
down_revision = "c3e8a1f0d917"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("current_type", sa.String(length=16), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_backfills_link_id_links")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )
    op.create_index("ix_backfills_link_id", "backfills", ["link_id", "id"], unique=False)
    with op.batch_alter_table("connect_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backfill_days", sa.Integer(), nullable=True))
    op.create_index(
        "ix_whoop_records_link_type_start_id",
        "whoop_records",
        ["link_id", "type", "start", "id"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_whoop_records_link_type_start_id", table_name="whoop_records")
    with op.batch_alter_table("connect_sessions", schema=None) as batch_op:
        batch_op.drop_column("backfill_days")
    op.drop_index("ix_backfills_link_id", table_name="backfills")
    op.drop_table("backfills")

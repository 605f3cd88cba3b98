"""link status counts, kept by triggers on links; links searchable by WHOOP user id

Revision ID: c3a1e0d5f719
Revises: a17d0a7a0001
Create Date: 2026-12-06 06:10:00

"""

import sqlalchemy as sa
from alembic import op

from whoopadmin.connect import counts

# revision identifiers, used by Alembic.
revision = "c3a1e0d5f719"
down_revision = "a17d0a7a0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "link_status_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index("ix_links_whoop_user_id", ["whoop_user_id"], unique=False)
    # After the batch operation: on SQLite it rebuilds the table, dropping its triggers.
    connection = op.get_bind()
    counts.create_triggers(connection)
    counts.recount(connection)


def downgrade():
    counts.drop_triggers(op.get_bind())
    op.drop_table("link_status_counts")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_whoop_user_id")

"""connection health: missed webhooks, webhook activity, signals, member cap

Revision ID: 98416526a319
Revises: 97d8604d1102
Create Date: 2026-12-06 02:20:52.047388

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "98416526a319"
down_revision = "97d8604d1102"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "connection_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_connection_signals_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_signals")),
        sa.UniqueConstraint(
            "connection_id", "signal", name=op.f("uq_connection_signals_connection_id")
        ),
    )
    op.create_table(
        "missed_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("record_type", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_missed_webhooks_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missed_webhooks")),
        sa.UniqueConstraint(
            "connection_id", "day", "record_type", name=op.f("uq_missed_webhooks_connection_id")
        ),
    )
    op.create_table(
        "webhook_activity",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("event_cursor", sa.Integer(), nullable=False),
        sa.Column("rate_per_hour", sa.Double(), nullable=False),
        sa.Column("learned_seconds", sa.Double(), nullable=False),
        sa.Column("learned_webhooks", sa.Integer(), nullable=False),
        sa.Column("last_webhook_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_webhook_id", sa.Integer(), nullable=False),
        sa.Column("missed_since_webhook", sa.Integer(), nullable=False),
        sa.Column("last_missed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_change_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("causes", sa.JSON(), nullable=True),
        sa.Column("causes_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_activity_connection_id_connections"),
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_webhook_activity")),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_cap", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("member_cap")

    op.drop_table("webhook_activity")
    op.drop_table("missed_webhooks")
    op.drop_table("connection_signals")

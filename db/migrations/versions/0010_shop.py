"""shop: tariff overrides edited from the chat (/shop) and the log of their changes

`tariff_overrides` holds what admins changed of tariffs.toml (price, days, hidden,
titles and feature lines per language); `shop_changes` every change asked for, with its
fate: the applied ones are the audit log. New tables only: nothing to fill. Definitions
are frozen here, as in the other revisions.

Revision ID: 0010_shop
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_shop"
down_revision = "0009_gifts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tariff_overrides",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("hidden", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("titles", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_tariff_overrides"),
    )
    op.create_table(
        "shop_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("tariff", sa.String(16), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("value_before", sa.JSON(), nullable=False),
        sa.Column("value_after", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shop_changes"),
    )
    op.create_index("ix_shop_changes_status_id", "shop_changes", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shop_changes_status_id", table_name="shop_changes")
    op.drop_table("shop_changes")
    op.drop_table("tariff_overrides")

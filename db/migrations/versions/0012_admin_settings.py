"""admin settings: each admin's choice between payment notices at once and a daily digest

Revision ID: 0012_admin_settings
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_admin_settings"
down_revision = "0011_broadcasts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_settings",
        sa.Column("admin_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=True),
        sa.Column("digest_since", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("admin_id", name=op.f("pk_admin_settings")),
    )


def downgrade() -> None:
    op.drop_table("admin_settings")

"""merge the lifecycle (0002) and admin search (0003) branches, both made from 0001

A merge revision rather than re-parenting either: a database already at 0003 (or at
0002) upgrades by applying only the branch it lacks.

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-23
"""

revision = '0004'
down_revision = ('0002', '0003')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

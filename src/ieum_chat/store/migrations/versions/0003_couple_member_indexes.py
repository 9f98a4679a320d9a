"""couple member indexes: find a user's couple without scanning couples

Every CONNECT and room lookup asks "which couple is this user in?", by either member column.

Revision ID: 0003
Revises: 0002
Create Date: 2024-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_couples_user1_id", "couples", ["user1_id"])
    op.create_index("ix_couples_user2_id", "couples", ["user2_id"])


def downgrade() -> None:
    op.drop_index("ix_couples_user2_id", table_name="couples")
    op.drop_index("ix_couples_user1_id", table_name="couples")

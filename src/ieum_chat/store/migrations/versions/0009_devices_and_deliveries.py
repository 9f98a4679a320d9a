"""devices, the push preview setting, and what the delivery engine owes

``devices``: each user's phones and browsers that take push notifications, keyed by the id
the app gives the device (``user_id, device_id``: one user's ids never touch another's). A
device is a provider token (FCM, APNs) or a Web Push subscription (its endpoint in
``token``, its keys beside it). ``token_key`` is the SHA-256 of the token: a token names one
device, so registering it for one user removes it from any other (a phone that changed
accounts), and a token of 4 KiB is too long for a b-tree entry itself.

``users.push_preview``: whether this user's notifications show the sender and the text.

The delivery engine derives what it owes from the committed couple streams, with nothing
written on the send path: ``delivery_cursors`` holds, per consumer (push, webhook) and
stream (a couple's; a deleted user's, whose one event is ``user.erased``), the last seq
turned into deliveries (``closed``: the stream's end was too);
``delivery_consumers`` when each consumer first ran (a couple it has never seen starts after
the messages older than that, so turning webhooks on does not replay years of history).
A cursor moves by compare-and-set in the same transaction that inserts the ``deliveries``
it owes, so each is owed once however many nodes race. A delivery row lives until its
provider or the webhook receiver accepted it; ``due_at`` is also its lease: a node claims a
row by moving ``due_at`` past the request's timeout, and a row whose node died comes due again.
``queue`` orders webhooks: one couple's (or one user's) deliveries go out one at a time, in id
order (which is seq order); pushes have none.

Revision ID: 0009
Revises: 0008
Create Date: 2024-05-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("push_preview", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_table(
        "devices",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("device_id", sa.String(100), primary_key=True),
        sa.Column("platform", sa.String(10), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("token_key", sa.String(64), nullable=False),
        sa.Column("p256dh", sa.Text()),
        sa.Column("auth", sa.Text()),
        sa.Column("locale", sa.String(35)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_devices_token_key", "devices", ["token_key"])
    op.create_table(
        "delivery_consumers",
        sa.Column("name", sa.String(10), primary_key=True),
        sa.Column("since", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "delivery_cursors",
        sa.Column("consumer", sa.String(10), primary_key=True),
        sa.Column("stream_id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("queue", sa.String(80)),
        sa.Column("couple_id", sa.Uuid()),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("device_id", sa.String(100)),
        sa.Column("seq", sa.BigInteger()),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deliveries_due", "deliveries", ["channel", "due_at"])
    op.create_index("ix_deliveries_queue", "deliveries", ["queue", "id"])
    op.create_index("ix_deliveries_couple", "deliveries", ["couple_id"])
    op.create_index("ix_deliveries_device", "deliveries", ["user_id", "device_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("delivery_cursors")
    op.drop_table("delivery_consumers")
    op.drop_table("devices")
    # Not batch mode on SQLite: copying the table would drop its directory triggers.
    op.execute("ALTER TABLE users DROP COLUMN push_preview")

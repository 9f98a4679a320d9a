"""The tables as the migrations leave them (SQLAlchemy Core), and how time is stored.

The plan's three tables (``plan_schema``) plus what revision 0002/0003 add: ``messages.seq``
(the per-couple order, unique with ``couple_id``), ``messages.temp_id`` (the client's retry key,
unique with ``couple_id, sender_id``; NULLs never collide), ``couples.last_seq`` (the counter
``seq`` is drawn from) and lookups of a couple by member. Keep this module and the migrations
in step: ``tests/conformance/store`` compares the two. Revisions 0004 and 0005 add no table but
PostgreSQL's append functions, which name columns of ``couples`` and ``messages`` (0005's
returns ``messages`` rows in the order of ``records.Message``): a revision that changes those
re-creates them. Revision 0006 adds ``directory_changes``, filled by triggers on ``users`` and
``couples`` (read by ``store.directory``). Revision 0007 adds what messages become after they
are sent (``messages.reply_to_id, edited_at, unsent_at, reactions``), the couple stream's other
events (``message_events``, numbered from the same ``last_seq``), messages hidden per member
(``message_hides``) and the append function v3 (which stores ``reply_to_id``). Revision 0008
adds the ends of couples and accounts (``couples.dissolved_at``, ``users.deleted_at``), the
system sender of notices (a ``users`` row with the nil UUID), ``maintenance_runs`` and the
append function v4 (which refuses dissolved couples and takes the system sender's notices).
Revision 0009 adds push and webhooks: ``devices``, ``users.push_preview``, and what the
delivery engine owes (``delivery_consumers``, ``delivery_cursors``, ``deliveries``).
Revision 0010 adds media: ``messages.media_url, media``, ``uploads`` and the append function
v5 (which stores the two columns).

Timestamps are naive UTC datetimes in ``TIMESTAMP`` (without time zone) columns, as in the plan.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
    true,
)

__all__ = [
    "couples",
    "deliveries",
    "delivery_consumers",
    "delivery_cursors",
    "devices",
    "directory_changes",
    "maintenance_runs",
    "message_events",
    "message_hides",
    "messages",
    "metadata",
    "to_db_time",
    "users",
    "utcnow",
]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("profile_image", Text),
    Column("created_at", DateTime, server_default=func.now()),
    # Set when the account is deleted; the row goes when the purge erases the user's data.
    Column("deleted_at", DateTime),
    # Whether the user's push notifications show the sender and the text (revision 0009).
    Column("push_preview", Boolean, nullable=False, server_default=true()),
)

couples = Table(
    "couples",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user1_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("user2_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("created_at", DateTime, server_default=func.now()),
    # The last seq handed out in this couple; bumped under a row lock by every append.
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    # Set when the couple ends; its messages are erased after the retention period.
    Column("dissolved_at", DateTime),
    Index("ix_couples_user1_id", "user1_id"),
    Index("ix_couples_user2_id", "user2_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("couple_id", Uuid, ForeignKey("couples.id"), nullable=False),
    Column("sender_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("content", Text),
    Column("type", String(20), nullable=False),
    Column("image_url", Text),
    Column("is_read", Boolean, server_default=false()),
    Column("read_at", DateTime),
    Column("created_at", DateTime, server_default=func.now()),
    Column("seq", BigInteger, nullable=False),
    Column("temp_id", String(64)),
    # What a message becomes after it is sent (revision 0007): the message it answers, when
    # it was last edited or unsent, and its reactions as a JSON array [{"emoji", "userIds"}]
    # (NULL: none). The quoted message is not a foreign key: erasing one must not cascade.
    Column("reply_to_id", Uuid),
    Column("edited_at", DateTime),
    Column("unsent_at", DateTime),
    Column("reactions", Text),
    # The file of a media message (IMAGE too), and what the upload's check learnt of it as
    # JSON {thumbnailUrl, durationMs, fileName, size, width, height} (revision 0010).
    Column("media_url", Text),
    Column("media", Text),
    # Backs history pages and replay (WHERE couple_id = ? AND seq < ? ORDER BY seq).
    UniqueConstraint("couple_id", "seq", name="uq_messages_couple_seq"),
    UniqueConstraint("couple_id", "sender_id", "temp_id", name="uq_messages_couple_sender_temp"),
)

# The couple stream's events other than messages (edits, unsends, reactions, read marks),
# numbered from the same couples.last_seq: (couple_id, seq) is unique across both tables.
# temp_id: the actor's retry key (one change stored once). data: JSON of the kind's fields.
message_events = Table(
    "message_events",
    metadata,
    Column("couple_id", Uuid, ForeignKey("couples.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("actor_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("message_id", Uuid),
    Column("temp_id", String(64)),
    Column("data", Text),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("couple_id", "actor_id", "temp_id", name="uq_message_events_actor_temp"),
    # An unsend scrubs the text of the message's earlier edits.
    Index("ix_message_events_message", "message_id"),
)

# Messages a member hid for themselves (delete for me). position: the couple's last seq when
# it was hidden; a device resuming after seq N is told of the hides at N and later.
message_hides = Table(
    "message_hides",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id"), primary_key=True),
    Column("message_id", Uuid, primary_key=True),
    Column("couple_id", Uuid, ForeignKey("couples.id"), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_message_hides_position", "couple_id", "user_id", "position"),
)

# One row per inserted, updated or deleted user or couple, written by triggers (whoever
# changed the row); nodes read it by position to drop what they cached. kind: user|couple,
# op: I|U|D, changed_at: UTC.
directory_changes = Table(
    "directory_changes",
    metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(6), nullable=False),
    Column("entity_id", Uuid, nullable=False),
    Column("op", String(1), nullable=False),
    Column("changed_at", DateTime, nullable=False),
    sqlite_autoincrement=True,
)

# When each periodic job (the daily purge) last started, and on which node; a node claims a
# run by moving started_at to now with a compare-and-set (store.maintenance).
maintenance_runs = Table(
    "maintenance_runs",
    metadata,
    Column("job", String(40), primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("node", String(100)),
)

# Each user's devices that take push notifications (revision 0009): a provider token, or a
# Web Push subscription (endpoint in token, keys beside it). token_key: SHA-256 hex of token.
devices = Table(
    "devices",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id"), primary_key=True),
    Column("device_id", String(100), primary_key=True),
    Column("platform", String(10), nullable=False),
    Column("token", Text, nullable=False),
    Column("token_key", String(64), nullable=False),
    Column("p256dh", Text),
    Column("auth", Text),
    Column("locale", String(35)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_devices_token_key", "token_key"),
)

# When each delivery consumer (push, webhook) first ran: where a couple it never saw starts.
delivery_consumers = Table(
    "delivery_consumers",
    metadata,
    Column("name", String(10), primary_key=True),
    Column("since", DateTime, nullable=False),
)

# Per consumer and stream (a couple's; a user's, whose one event is user.erased), the last seq
# turned into deliveries; closed: the stream's end (couple.dissolved, user.erased) was too.
delivery_cursors = Table(
    "delivery_cursors",
    metadata,
    Column("consumer", String(10), primary_key=True),
    Column("stream_id", Uuid, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("closed", Boolean, nullable=False, server_default=false()),
)

# What is owed to a provider or the webhook receiver, until it accepted it. due_at is also
# the lease of the node sending it; queue: webhooks of one couple (or user) go out in id order.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("channel", String(10), nullable=False),
    Column("queue", String(80)),
    Column("couple_id", Uuid),
    Column("user_id", Uuid),
    Column("device_id", String(100)),
    Column("seq", BigInteger),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("due_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_deliveries_due", "channel", "due_at"),
    Index("ix_deliveries_queue", "queue", "id"),
    Index("ix_deliveries_couple", "couple_id"),
    Index("ix_deliveries_device", "user_id", "device_id"),
    sqlite_autoincrement=True,
)

# Each presigned upload (revision 0010), from its ticket: state issued -> ready (checked and
# published) -> kept (a message names it) or doomed (its message was unsent); deleted with its
# files when no message names it after expires_at. size: declared, then stored (the quota).
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("couple_id", Uuid, ForeignKey("couples.id"), nullable=False),
    Column("uploader_id", Uuid, nullable=False),
    Column("key", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_name", Text),
    Column("state", String(10), nullable=False),
    Column("media", Text),
    Column("thumbnail_key", Text),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_uploads_url", "url", unique=True),
    Index("ix_uploads_couple_created", "couple_id", "created_at"),
    Index("ix_uploads_state_expires", "state", "expires_at"),
)

# A message naming an upload (the cleanup's question); other messages are not indexed.
Index(
    "ix_messages_media_url",
    messages.c.media_url,
    postgresql_where=messages.c.media_url.isnot(None),
    sqlite_where=messages.c.media_url.isnot(None),
)

# The plan's two indexes; idx_messages_unread also serves unread counts and mark-read.
Index("idx_messages_couple_created", messages.c.couple_id, messages.c.created_at.desc())
Index("idx_messages_unread", messages.c.couple_id, messages.c.is_read, messages.c.created_at)


def utcnow() -> datetime:
    """Now, as stored: naive UTC. (Put together from its date and time: ``replace(tzinfo=None)``
    parses its keyword arguments, and took three times as long, once per message sent.)"""
    now = datetime.now(UTC)
    return datetime.combine(now.date(), now.time())


def to_db_time(value: datetime) -> datetime:
    """``value`` as stored: aware datetimes are converted to UTC, naive ones are taken as UTC.

    SQLite's DATETIME storage would drop an offset without converting; do it here, once.
    """
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)

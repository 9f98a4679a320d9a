"""Prometheus metrics of one node. Each node (each ``ieum-chat serve``) serves its own
``/metrics``; Prometheus scrapes every node and sums.

A node of several worker processes (``IEUM_WORKERS``) runs prometheus-client's multiprocess
mode: the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a directory of its own before a
worker starts, every worker writes its values there, and whichever worker answers
``/metrics`` reads them all. Counters and histograms add up (a worker that exited still
counts); each gauge says how its workers' values combine (``multiprocess_mode``: ``livesum``
for what each worker holds, ``livemostrecent`` for what every worker would read alike). A
gauge read at scrape time (``set_function``) cannot be read in another process, so there each
worker writes its value down every :data:`SAMPLE_INTERVAL` seconds (:func:`sample_forever`).
What the message path counts many times a second goes through tallies (``tallies``), added to
their metrics by the same :func:`sample`, which each ``/metrics`` answer runs first.

Names are the contract of the dashboards in ``deploy/grafana/``; a test checks every name
a dashboard uses exists here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from ieum_chat.observability.tallies import CounterTally, HistogramTally

__all__ = [
    "ADMIN_CALLS",
    "ADMISSIONS_REFUSED",
    "AUTH_FAILURES",
    "BROKER_DROPPED",
    "BROKER_UP",
    "COMMIT_TO_DELIVERY",
    "CONNECTIONS",
    "CONTENT_TYPE_LATEST",
    "DATABASE_UP",
    "DEGRADED",
    "ERRORS",
    "HTTP_REQUESTS",
    "LIFECYCLE_EVENTS",
    "MEDIA_CHECK_SECONDS",
    "MESSAGES_DELIVERED",
    "MESSAGES_RECEIVED",
    "MESSAGES_STORED",
    "MULTIPROCESS",
    "OUTBOUND_BACKLOG",
    "PURGED",
    "READ_RECEIPTS",
    "REGISTRY",
    "REPLICA_READS",
    "SAMPLE_INTERVAL",
    "SEND_TO_COMMIT",
    "SLOW_CONSUMERS",
    "STOMP_SESSIONS",
    "SUBSCRIPTIONS",
    "TYPING_EVENTS",
    "UPLOADS",
    "WRITE_BATCH_SIZE",
    "WRITE_QUEUE",
    "WRITE_TRANSACTION",
    "Gauge",
    "counter_tally",
    "histogram_tally",
    "render",
    "sample",
    "sample_forever",
]

# prometheus-client chooses where values live when it is imported, from this variable.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
SAMPLE_INTERVAL = 1.0  # seconds; how stale another worker's scrape-time gauge may be

REGISTRY = CollectorRegistry(auto_describe=True)

_sampled: dict[Gauge, Callable[[], float]] = {}
_tallies: list[CounterTally | HistogramTally] = []


class Gauge(prometheus_client.Gauge):
    """A gauge whose ``set_function`` also works with several worker processes: there the
    function's value is written down by :func:`sample` instead of read at scrape time."""

    def set_function(self, f: Callable[[], float]) -> None:
        if MULTIPROCESS:
            _sampled[self] = f
            self.set(f())
        else:
            super().set_function(f)


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CONNECTIONS = Gauge(
    "ieum_connections_open",
    "Open client connections, by transport",
    ["transport"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
STOMP_SESSIONS = Gauge(
    "ieum_stomp_sessions",
    "STOMP sessions past CONNECT",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
SUBSCRIPTIONS = Gauge(
    "ieum_subscriptions",
    "Live subscriptions to couple topics",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
MESSAGES_RECEIVED = Counter(
    "ieum_messages_received",
    "Chat messages received (STOMP SEND or REST), before validation",
    ["via"],
    registry=REGISTRY,
)
MESSAGES_STORED = Counter(
    "ieum_messages_stored",
    "Chat messages committed (repeated tempIds not counted)",
    registry=REGISTRY,
)
MESSAGES_DELIVERED = Counter(
    "ieum_messages_delivered",
    "MESSAGE frames queued to subscribers (chat, receipts, events)",
    registry=REGISTRY,
)
READ_RECEIPTS = Counter("ieum_read_receipts", "READ_RECEIPT events published", registry=REGISTRY)
LIFECYCLE_EVENTS = Counter(
    "ieum_lifecycle_events",
    "Lifecycle events of couples and accounts, by event (couple_created, couple_dissolved, "
    "user_upserted, user_deleted, notice)",
    ["event"],
    registry=REGISTRY,
)
PURGED = Counter(
    "ieum_purged",
    "Rows and files the purge erased, by kind (couples, messages, events, hides, users, uploads)",
    ["kind"],
    registry=REGISTRY,
)
UPLOADS = Counter(
    "ieum_uploads",
    "Uploads by kind (image, audio, video, file) and outcome: published (checked and in "
    "place), refused (not what its type says), quota (the couple's day was used up), "
    "unnamed (deleted: no message named it in time), unsent (deleted with its message)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
MEDIA_CHECK_SECONDS = Histogram(
    "ieum_media_check_seconds",
    "Seconds from an upload's bytes to its publication: the check, EXIF removal, thumbnail",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ADMIN_CALLS = Counter(
    "ieum_admin_calls",
    "Calls of the service API (/admin/v1), by key name and status",
    ["key", "status"],
    registry=REGISTRY,
)
MESSAGE_CHANGES = Counter(
    "ieum_message_changes",
    "Changes committed, by kind (EDIT, UNSEND, REACT, HIDE; READ counts read marks that "
    "marked something); repeated tempIds and changes that changed nothing not counted",
    ["kind"],
    registry=REGISTRY,
)
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
PUSHES = Counter(
    "ieum_pushes",
    "Push requests by provider (fcm, apns, webpush), result (sent, retried, dead: the device "
    "was removed, failed: refused for good, expired) and reason (ok, http_429, timeout...)",
    ["provider", "result", "reason"],
    registry=REGISTRY,
)
PUSHES_SKIPPED = Counter(
    "ieum_pushes_skipped",
    "Devices of a recipient that got no push for a message, by reason (watching: a session of "
    "the device is subscribed to the couple; no_provider: its platform is not configured)",
    ["reason"],
    registry=REGISTRY,
)
PUSH_LAG = Histogram(
    "ieum_push_lag_seconds",
    "From a message's commit to its provider accepting the push, by provider",
    ["provider"],
    buckets=_DELIVERY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "ieum_webhooks",
    "Webhook requests by result (sent, retried) and reason (ok, http_500, timeout...)",
    ["result", "reason"],
    registry=REGISTRY,
)
WEBHOOK_LAG = Histogram(
    "ieum_webhook_lag_seconds",
    "From a change's commit to the webhook receiver's 2xx",
    buckets=_DELIVERY_BUCKETS,
    registry=REGISTRY,
)
DELIVERY_BACKLOG = Gauge(
    "ieum_delivery_backlog",
    "Deliveries owed and not yet accepted, by channel (fcm, apns, webpush, webhook), all nodes",
    ["channel"],
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
REPLICA_READS = Counter(
    "ieum_replica_reads",
    "History and resume reads with a read replica configured, by the database that answered "
    "(replica, primary) and why (caught_up; lagging, short, unavailable, error)",
    ["target", "reason"],
    registry=REGISTRY,
)
TYPING_EVENTS = Counter("ieum_typing_events", "TYPING events published", registry=REGISTRY)
ERRORS = Counter("ieum_errors", "Errors sent to clients, by wire code", ["code"], registry=REGISTRY)
AUTH_FAILURES = Counter(
    "ieum_auth_failures",
    "Refused tokens, by where they were presented",
    ["where"],
    registry=REGISTRY,
)
SLOW_CONSUMERS = Counter(
    "ieum_slow_consumer_disconnects",
    "Sessions closed because they read too slowly",
    registry=REGISTRY,
)
SEND_TO_COMMIT = Histogram(
    "ieum_send_commit_seconds",
    "From a message's arrival to its commit",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WRITE_TRANSACTION = Histogram(
    "ieum_write_transaction_seconds",
    "A writer's transaction, from its call to its commit, by what it stored",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
COMMIT_TO_DELIVERY = Histogram(
    "ieum_commit_delivery_seconds",
    "From a commit to the message's publication to subscribers",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WRITE_BATCH_SIZE = Histogram(
    "ieum_write_batch_messages",
    "Messages per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
WRITE_QUEUE = Gauge(
    "ieum_write_queue_depth",
    "Messages waiting for the writer",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
OUTBOUND_BACKLOG = Gauge(
    "ieum_outbound_backlog_bytes",
    "Bytes written to sessions and not yet taken by the peers, all sessions together",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
HTTP_REQUESTS = Histogram(
    "ieum_http_request_seconds",
    "REST requests, by route template, method and status",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BROKER_DROPPED = Gauge(
    "ieum_broker_dropped_payloads",
    "Payloads never handed to the broker (Redis down): delivered locally only; remote "
    "subscribers catch up by seq",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "ieum_database_up",
    "1 when the last database check succeeded",
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
BROKER_UP = Gauge(
    "ieum_broker_up",
    "1 when the last broker check succeeded",
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
ADMISSIONS_REFUSED = Counter(
    "ieum_admissions_refused",
    "New sessions refused past the node's admission rate (503 with Retry-After)",
    registry=REGISTRY,
)
DEGRADED = Gauge(
    "ieum_degraded",
    "1 when the last readiness check found the broker down and the database up: the node "
    "serves its own sessions, cross-node delivery waits",
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)


def counter_tally(counter: Counter) -> CounterTally:
    """A tally for ``counter`` on the message path (see ``tallies``), flushed by
    :func:`sample`."""
    tally = CounterTally(counter)
    _tallies.append(tally)
    return tally


def histogram_tally(histogram: Histogram) -> HistogramTally:
    """A tally for ``histogram`` on the message path (see ``tallies``), flushed by
    :func:`sample`."""
    tally = HistogramTally(histogram)
    _tallies.append(tally)
    return tally


def sample() -> None:
    """Bring the metrics up to this process's latest: the tallies' counts and observations
    added to their metrics, and (multiprocess mode) the scrape-time gauges written down."""
    for tally in _tallies:
        tally.flush()
    for gauge, f in list(_sampled.items()):
        gauge.set(f())


async def sample_forever(interval: float = SAMPLE_INTERVAL) -> None:
    while True:
        sample()
        await asyncio.sleep(interval)


def render() -> bytes:
    sample()  # this process's own values as of now; other workers' as of their last sample
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)

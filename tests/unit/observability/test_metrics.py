"""Every gauge says how the values of several worker processes combine."""

from __future__ import annotations

from prometheus_client import Gauge

from ieum_chat.observability import metrics

# What each gauge holds decides its mode: a worker's own share (summed over live workers), or
# a value every worker reads alike from the database or a readiness check (the latest).
EXPECTED = {
    "ieum_connections_open": "livesum",
    "ieum_stomp_sessions": "livesum",
    "ieum_subscriptions": "livesum",
    "ieum_write_queue_depth": "livesum",
    "ieum_outbound_backlog_bytes": "livesum",
    "ieum_broker_dropped_payloads": "livesum",
    "ieum_delivery_backlog": "livemostrecent",
    "ieum_database_up": "livemostrecent",
    "ieum_broker_up": "livemostrecent",
    "ieum_degraded": "livemostrecent",
}


def test_every_gauge_has_its_multiprocess_mode() -> None:
    gauges = {
        value._name: value._multiprocess_mode
        for value in vars(metrics).values()
        if isinstance(value, Gauge)
    }
    assert gauges == EXPECTED


def test_one_process_reads_scrape_time_gauges_at_scrape_time() -> None:
    assert not metrics.MULTIPROCESS
    gauge = metrics.Gauge("ieum_test_sampled", "a test gauge", registry=None)
    values = iter([3.0, 5.0])
    gauge.set_function(lambda: next(values))
    for expected in (3.0, 5.0):
        (family,) = gauge.collect()
        assert [s.value for s in family.samples] == [expected]

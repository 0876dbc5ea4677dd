"""Prometheus metrics: the adapter behind the core's Metrics port, its gauges, and the `/metrics` HTTP handler.

One `PrometheusMetrics` per bot, built by the composition root with a registry of its own (never the library's
global one), so several bots in one process (tests) keep separate counts. Every series carries a `replica` label
(host:pid), so replicas behind one load balancer never mix their counts even when scraped through it.

    hkaipulse_deliveries_total{replica="web-1:42",platform="telegram",kind="digest",outcome="sent"} 1200.0
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from tornado.httpserver import HTTPServer
from tornado.web import Application as WebApplication
from tornado.web import RequestHandler

from bot.core.ports import Metrics
from bot.logs import brief_error

log = logging.getLogger(__name__)

PREFIX = "hkaipulse"
# Seconds. Replies and sends take milliseconds to seconds; a tick milliseconds; a digest's lag seconds to hours.
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
GAUGE_READ_TIMEOUT = 5.0  # seconds a scrape waits for the store before answering with the gauges it has
# Headers a proxy adds: a request carrying one came from elsewhere, even when the proxy itself runs on localhost.
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded")


@dataclass(frozen=True)
class GaugeReading:
    """What a scrape reads just before answering: the store's queue and subscriptions, the content in force."""

    open_deliveries: int = 0
    oldest_open_seconds: float = 0.0  # age of the oldest pending or sending delivery (0: none)
    active_by_cadence: dict[str, int] = field(default_factory=dict)
    content_version: str = ""
    content_loaded_at: datetime | None = None
    content_broken: bool = False
    open_candidates: int | None = None  # None: no review queue in this deployment


ReadGauges = Callable[[], Awaitable[GaugeReading]]


class _Buckets:
    """One histogram series: a count per bucket (value <= bound; the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)
        self.total = 0.0


class DeliveryCounts:
    """The series the delivery engine records for every message, kept as plain numbers and turned into Prometheus
    families only when scraped.

    A prometheus-client child takes a lock and checks exemplars on every call: the three calls of a sent digest
    cost about five times the CPU they cost here (bench/metrics_cost.py: 9.6 us against 1.9 us on a busy machine).
    Everything is recorded on the event loop's thread, so the numbers need no lock; a scrape copies them first.
    """

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.deliveries: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.platform_errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.round_trips: dict[str, _Buckets] = {}
        self.lags: dict[str, _Buckets] = {}

    def observe(self, series: dict[str, _Buckets], bounds: tuple[float, ...], platform: str, seconds: float) -> None:
        """Add one value to a platform's histogram."""
        buckets = series.get(platform)
        if buckets is None:
            buckets = series[platform] = _Buckets(len(bounds))
        buckets.counts[bisect_left(bounds, seconds)] += 1
        buckets.total += seconds

    def collect(self) -> Iterator[Metric]:
        """The families, for a scrape."""
        replica = self.replica
        deliveries = CounterMetricFamily(f"{PREFIX}_deliveries", "Deliveries by outcome: sent, failed, retried, "
                                         "deactivated, migrated, possible_duplicate.",
                                         labels=("replica", "platform", "kind", "outcome"))
        for (platform, kind, outcome), count in list(self.deliveries.items()):
            deliveries.add_metric((replica, platform, kind, outcome), count)
        yield deliveries
        errors = CounterMetricFamily(f"{PREFIX}_platform_errors", "Flood control (429) and server errors (5xx) "
                                     "answered by the platform to sends.", labels=("replica", "platform", "status"))
        for (platform, status), count in list(self.platform_errors.items()):
            errors.add_metric((replica, platform, status), count)
        yield errors
        yield self._histogram("send_round_trip_seconds", "Time one send takes to be answered.", self.round_trips,
                              FAST_BUCKETS)
        yield self._histogram("digest_lag_seconds", "From a digest's scheduled time to its sending.", self.lags,
                              LAG_BUCKETS)

    def _histogram(self, name: str, doc: str, series: dict[str, _Buckets],
                   bounds: tuple[float, ...]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=("replica", "platform"))
        for platform, buckets in list(series.items()):
            counts, total = list(buckets.counts), buckets.total
            cumulative, running = [], 0
            for bound, count in zip((*bounds, float("inf")), counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric((self.replica, platform), cumulative, sum_value=total)
        return family


class PrometheusMetrics:
    """The Metrics port over prometheus-client, in a registry of its own; labelled children are cached, so a
    recorded delivery costs a dictionary lookup and a locked addition."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.registry = CollectorRegistry(auto_describe=True)
        reg, r = self.registry, ("replica",)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, (*r, *labels), registry=reg)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, (*r, *labels), buckets=buckets, registry=reg)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, (*r, *labels), registry=reg)

        self._updates = counter("updates_handled", "Updates handled, by kind and command.", "kind", "command")
        self._replies = counter("replies_sent", "Replies sent to users (one per reply, whatever its parts).")
        self._admin = counter("admin_actions", "Admin-only commands run by admins.", "action")
        self._per_message = DeliveryCounts(replica)
        reg.register(self._per_message)
        self._reloads = counter("content_reloads", "Content reloads, by outcome (ok, failed).", "outcome")
        self._reply_seconds = histogram("reply_build_seconds", "Time a command takes to build its reply.",
                                        FAST_BUCKETS)
        self._tick_seconds = histogram("scheduler_tick_seconds", "Duration of the leader's scheduler tick.",
                                       FAST_BUCKETS)
        self._leader = gauge("scheduler_leader", "1 while this replica schedules digests, else 0.")
        self._open = gauge("deliveries_open", "Deliveries pending or being sent.")
        self._oldest = gauge("deliveries_oldest_open_seconds", "Age of the oldest open delivery (0: none).")
        self._active = gauge("subscriptions_active", "Active subscriptions, by cadence.", "cadence")
        self._content = gauge("content_info", "Always 1; the label names the content version in force.", "version")
        self._loaded = gauge("content_loaded_timestamp_seconds", "When the content in force was loaded (Unix time).")
        self._broken = gauge("content_broken", "1 while the content on disk fails validation (old content served).")
        self._candidates = gauge("review_candidates_open", "Items from official sources waiting for review.")
        self._children: dict[tuple[Any, ...], Any] = {}
        self._reply_child = self._replies.labels(replica)
        self._reply_seconds_child = self._reply_seconds.labels(replica)
        self._tick_child = self._tick_seconds.labels(replica)
        self._leader_child = self._leader.labels(replica)
        self._shown_version: str | None = None
        self._shown_cadences: set[str] = set()

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(self.replica, *labels)
        return child

    def update_handled(self, kind: str, command: str) -> None:
        """Count an update."""
        self._child(self._updates, kind, command).inc()

    def reply_built(self, seconds: float) -> None:
        """Time a reply's making."""
        self._reply_seconds_child.observe(seconds)

    def reply_sent(self) -> None:
        """Count a reply."""
        self._reply_child.inc()

    def admin_action(self, action: str) -> None:
        """Count an admin action."""
        self._child(self._admin, action).inc()

    def delivery(self, platform: str, kind: str, outcome: str) -> None:
        """Count a delivery's outcome."""
        self._per_message.deliveries[platform, kind, outcome] += 1

    def platform_error(self, platform: str, status: str) -> None:
        """Count a 429 or a 5xx."""
        self._per_message.platform_errors[platform, status] += 1

    def send_round_trip(self, platform: str, seconds: float) -> None:
        """Time a send."""
        self._per_message.observe(self._per_message.round_trips, FAST_BUCKETS, platform, seconds)

    def digest_lag(self, platform: str, seconds: float) -> None:
        """Record how late a digest went out."""
        self._per_message.observe(self._per_message.lags, LAG_BUCKETS, platform, max(seconds, 0.0))

    def scheduler_tick(self, seconds: float, *, leading: bool) -> None:
        """Record a tick: whether this replica leads, and (when it does) how long the tick took."""
        self._leader_child.set(1 if leading else 0)
        if leading:
            self._tick_child.observe(seconds)

    def content_reload(self, outcome: str) -> None:
        """Count a reload."""
        self._child(self._reloads, outcome).inc()

    def show(self, reading: GaugeReading) -> None:
        """Set the gauges read at a scrape."""
        replica = self.replica
        self._open.labels(replica).set(reading.open_deliveries)
        self._oldest.labels(replica).set(reading.oldest_open_seconds)
        for cadence in self._shown_cadences - set(reading.active_by_cadence):
            self._active.labels(replica, cadence).set(0)
        for cadence, count in reading.active_by_cadence.items():
            self._active.labels(replica, cadence).set(count)
        self._shown_cadences |= set(reading.active_by_cadence)
        if reading.content_version != self._shown_version:
            if self._shown_version is not None:
                self._content.remove(replica, self._shown_version)  # one version series at a time
            self._content.labels(replica, reading.content_version).set(1)
            self._shown_version = reading.content_version
        if reading.content_loaded_at is not None:
            self._loaded.labels(replica).set(reading.content_loaded_at.timestamp())
        self._broken.labels(replica).set(1 if reading.content_broken else 0)
        if reading.open_candidates is not None:
            self._candidates.labels(replica).set(reading.open_candidates)

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)

    def metric_names(self) -> set[str]:
        """Every series name this registry can export (`..._total`, `..._bucket` and the like included)."""
        names = set()
        for family in self.registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.update({f"{family.name}_total", f"{family.name}_created"})
            elif family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum", "_created"))
        return names


if TYPE_CHECKING:
    _conforms: type[Metrics] = PrometheusMetrics  # mypy checks the Protocol here


# --- /metrics over HTTP ----------------------------------------------------------------------------------------


def is_local(peer: str, headers: Any) -> bool:
    """Whether a request came from this machine: a loopback peer that no proxy forwarded (a proxy on localhost
    forwarding the internet's requests adds X-Forwarded-For or the like, so those count as remote)."""
    if any(headers.get(name) for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return False


class MetricsHandler(RequestHandler):
    """GET /metrics: free from localhost; from elsewhere only with `Authorization: Bearer <METRICS_TOKEN>`
    (403 when no token is configured, 401 when a wrong one or none is given)."""

    def initialize(self, metrics: PrometheusMetrics, read: ReadGauges | None, token: str) -> None:
        self.metrics = metrics
        self.read = read
        self.token = token

    async def get(self) -> None:
        """Check access, read the gauges, answer the exposition."""
        # The socket's own peer: with xheaders on, request.remote_ip would believe a client's X-Real-Ip.
        context = getattr(self.request.connection, "context", None)
        address = getattr(context, "address", None)
        peer = address[0] if isinstance(address, tuple) and address else ""
        if not is_local(str(peer), self.request.headers):
            if not self.token:
                self._refuse(403, "metrics are served to localhost only (set METRICS_TOKEN for remote scrapes)")
                return
            given = self.request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                self.set_header("WWW-Authenticate", "Bearer")
                self._refuse(401, "a bearer token is required")
                return
        if self.read is not None:
            try:
                self.metrics.show(await asyncio.wait_for(self.read(), GAUGE_READ_TIMEOUT))
            except Exception as exc:  # the counters are still worth answering; the gauges keep their last values
                log.warning("could not read the gauges for /metrics: %s", brief_error(exc))
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.metrics.exposition())

    def _refuse(self, status: int, description: str) -> None:
        self.set_status(status)
        self.finish({"ok": False, "description": description})


def metrics_route(metrics: PrometheusMetrics, read: ReadGauges | None,
                  token: str) -> tuple[str, type[RequestHandler], dict[str, Any]]:
    """The /metrics route, for the webhook server or a server of its own."""
    return ("/metrics", MetricsHandler, {"metrics": metrics, "read": read, "token": token})


def metrics_server(metrics: PrometheusMetrics, read: ReadGauges | None, token: str) -> HTTPServer:
    """An HTTP server with only /metrics (long polling has no webhook server to add it to); not yet listening."""
    return HTTPServer(WebApplication([metrics_route(metrics, read, token)]), max_body_size=64 * 1024)


def seconds_since(moment: datetime | None, now: datetime) -> float:
    """Seconds from `moment` to `now` (0 when there is no moment)."""
    return 0.0 if moment is None else max((now - moment).total_seconds(), 0.0)

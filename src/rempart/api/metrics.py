"""Prometheus metrics of one API server, in its own registry (several apps can live in one process).

Request counts and latency by route template and status come from the
middleware; gateway decisions (allowed, denied), the log's size, its latest
checkpoint's size and age are read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rempart.api.operations import DecisionCounts
from rempart.log.sequencer import TransparencyLog
from rempart.log.storage import StoredCheckpoint

__all__ = ["CONTENT_TYPE", "ApiMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], Iterator[GaugeMetricFamily | CounterMetricFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return self._read()


class ApiMetrics:
    def __init__(self, *, log: TransparencyLog, decisions: DecisionCounts) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.log = log
        self.decisions = decisions
        self.requests = Counter(
            "rempart_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rempart_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._checkpoint_at = time.time()
        latest = log.latest_checkpoint()
        self._checkpoint_size = 0 if latest is None else latest.size
        log.on_checkpoint(self._on_checkpoint)
        self.registry.register(_StateCollector(self._state))

    def _on_checkpoint(self, stored: StoredCheckpoint) -> None:
        with self._lock:
            self._checkpoint_at = time.time()
            self._checkpoint_size = stored.size

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def _state(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        decisions = CounterMetricFamily(
            "rempart_gateway_decisions",
            "Gateway decisions on record access through this server, by outcome.",
            labels=["outcome"],
        )
        decisions.add_metric(["allowed"], self.decisions.allowed)
        decisions.add_metric(["denied"], self.decisions.denied)
        yield decisions
        yield GaugeMetricFamily(
            "rempart_log_size", "Entries committed to the transparency log.", value=self.log.size
        )
        with self._lock:
            at, size = self._checkpoint_at, self._checkpoint_size
        yield GaugeMetricFamily(
            "rempart_log_checkpoint_size", "Tree size of the latest checkpoint.", value=size
        )
        yield GaugeMetricFamily(
            "rempart_log_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was published (or since the server started).",
            value=max(0.0, time.time() - at),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

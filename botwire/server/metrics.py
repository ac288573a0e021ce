"""Prometheus metrics for ``/metrics``: requests, latency, errors and quota rejections.

Kept by ``prometheus_client``. With ``--workers N``, :func:`share_between_workers` puts it in
its multiprocess mode before the workers start: each worker writes its counts to files in one
directory, and ``/metrics``, whichever worker answers, adds up every worker's, so the server
reports one set of numbers.
"""

from __future__ import annotations

import os
import tempfile

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import disable_created_metrics as _no_created_series
from prometheus_client.multiprocess import MultiProcessCollector

from botwire.errors import BotWireError, QuotaExceeded

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""Where every worker writes its counts in multiprocess mode (``prometheus_client``'s name)."""
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""Methods counted under their own name; any other is counted as ``other``, so that clients
cannot make up label values (and series) without end. Routes are the app's own route paths."""

# A *_created series per counter would double what a scrape carries.
_no_created_series()  # type: ignore[no-untyped-call]


def share_between_workers() -> str:
    """Turn on multiprocess mode for the worker processes about to start; return the directory
    their counts go to (the caller removes it when the server stops). Call it before a worker
    imports ``prometheus_client``: the workers inherit the environment."""
    directory = tempfile.mkdtemp(prefix="botwire-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    return directory


class Metrics:
    """The server's counters and latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "botwire_requests", "HTTP requests by method, route and status.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "botwire_request_duration_seconds", "Time to answer a request.", ["route"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "botwire_errors", "Requests refused, by error.", ["error"], registry=self.registry
        )
        self.quota_rejections = Counter(
            "botwire_quota_rejections", "Writes refused by a namespace quota.", ["quota"],
            registry=self.registry,
        )  # fmt: skip
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request: ``route`` is the matched route's path (or ``unmatched``)."""
        series = (method if method in METHODS else "other", route, status)
        counters = self._series.get(series)
        if counters is None:  # finding a labelled child costs more than counting in it
            counters = self._series[series] = (
                self.requests.labels(series[0], route, str(status)),
                self.latency.labels(route),
            )
        counters[0].inc()
        counters[1].observe(seconds)

    def refused(self, error: BotWireError | str) -> None:
        """Count a refusal: a botwire error (a quota it hit counts as a quota rejection too),
        or the name of another kind of refusal."""
        self.errors.labels(error if isinstance(error, str) else type(error).__name__).inc()
        if isinstance(error, QuotaExceeded):
            self.quota_rejections.labels(error.quota).inc()

    def render(self) -> bytes:
        """The Prometheus text format: this process's counts, or in multiprocess mode every
        worker's, added up."""
        directory = os.environ.get(MULTIPROCESS_DIR)
        if not directory:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, directory)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)

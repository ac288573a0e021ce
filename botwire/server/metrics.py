"""Prometheus metrics for ``/metrics``: requests, latency, errors and quota rejections.

Counted per server process; with ``--workers N`` each worker reports its own.
"""

from __future__ import annotations

import bisect
from collections import Counter

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""Methods counted under their own name; any other is counted as ``other``, so that clients
cannot make up label values (and series) without end. Routes are the app's own route paths."""


class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.quota_rejections: Counter[str] = Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request: ``route`` is the matched route's path (or ``unmatched``)."""
        self.requests[(method if method in METHODS else "other", route, status)] += 1
        counts = self._buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[route] = self._sums.get(route, 0.0) + seconds

    def refused(self, error: str, quota: str | None = None) -> None:
        """Count a refusal: ``error`` is its error's name, ``quota`` the quota it hit."""
        self.errors[error] += 1
        if quota is not None:
            self.quota_rejections[quota] += 1

    def render(self) -> str:
        lines = [
            "# HELP botwire_requests_total HTTP requests by method, route and status.",
            "# TYPE botwire_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            labels = f'method="{method}",route="{route}",status="{status}"'
            lines.append(f"botwire_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP botwire_request_duration_seconds Time to answer a request.",
            "# TYPE botwire_request_duration_seconds histogram",
        ]
        for route, counts in sorted(self._buckets.items()):
            total = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += count
                labels = f'route="{route}",le="{bound}"'
                lines.append(f"botwire_request_duration_seconds_bucket{{{labels}}} {total}")
            lines.append(
                f'botwire_request_duration_seconds_sum{{route="{route}"}} {self._sums[route]}'
            )
            lines.append(f'botwire_request_duration_seconds_count{{route="{route}"}} {total}')
        lines += [
            "# HELP botwire_errors_total Requests refused, by error.",
            "# TYPE botwire_errors_total counter",
        ]
        lines += [
            f'botwire_errors_total{{error="{name}"}} {n}' for name, n in sorted(self.errors.items())
        ]
        lines += [
            "# HELP botwire_quota_rejections_total Writes refused by a namespace quota.",
            "# TYPE botwire_quota_rejections_total counter",
        ]
        lines += [
            f'botwire_quota_rejections_total{{quota="{name}"}} {n}'
            for name, n in sorted(self.quota_rejections.items())
        ]
        return "\n".join(lines) + "\n"

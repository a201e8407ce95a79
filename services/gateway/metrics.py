"""The gateway's Prometheus metrics: requests by route template and status, latencies, jobs submitted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

UNMATCHED = "unmatched"


class HttpMetrics:
    """Metrics of one app, in its own registry (so several apps in one process never collide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "dreamforge_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "dreamforge_http_request_duration_seconds",
            "Time from request to the end of the response (event streams: until they close).",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
        self.jobs_submitted = Counter(
            "dreamforge_jobs_submitted_total",
            "Story jobs submitted through the gateway, by API (v1 or legacy) and whether a new job was made.",
            ["api", "created"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The matched route's path template (``/api/v1/jobs/{job_id}``), never the raw path (unbounded labels)."""
    route = scope.get("route")
    if route is None:
        # Older Starlette releases do not record the matched route in the scope.
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return path or "/"

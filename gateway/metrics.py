"""The gateway's own Prometheus series, served next to TorchServe's on `GET /metrics`.

Every app gets its own `CollectorRegistry` (not prometheus_client's global one), so several apps in
one process, as in the tests, never share or collide on a series.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.torchserve_client import ErrorKind

INTERNAL_SERVER_ERROR = int(HTTPStatus.INTERNAL_SERVER_ERROR)
UNMATCHED_ROUTE = "unmatched"
"""One label for every path no route matched, so scanners cannot grow the label set."""
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""From a health check (ms) to the default TorchServe timeout (60 s), where a request becomes a 504."""
UPLOAD_BUCKETS_BYTES = tuple(float(4**power * 1024) for power in range(1, 10))
"""4 KiB to 256 MiB by factors of 4: a second of 8 kHz telephone audio up to past the 50 MiB limit."""

disable_created_metrics()  # `*_created` series would double the output and no query here uses them


class GatewayMetrics:
    """The gateway's series: what it answered, how fast, what it was sent, and how TorchServe failed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "Requests answered by the gateway, by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and status class.",
            ["route", "status_class"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.upload_bytes = Histogram(
            "gateway_upload_bytes",
            "Size of the files uploaded to POST /predict-file/ (bodies refused while streaming excluded).",
            buckets=UPLOAD_BUCKETS_BYTES,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "gateway_audio_seconds",
            "Seconds of audio the served model scored, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.torchserve_errors = Counter(
            "gateway_torchserve_errors",
            "TorchServe calls that failed, by kind: connection, timeout, 4xx, 5xx, bad_answer.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ErrorKind:  # present at 0 from the start, so rate() works before the first failure
            self.torchserve_errors.labels(kind.value)
        self.torchserve_up = Gauge(
            "gateway_torchserve_up",
            "Whether TorchServe's metrics endpoint answered this scrape.",
            registry=self.registry,
        )

    def render(self, torchserve_up: bool) -> str:
        """Prometheus text exposition (format 0.0.4) of the gateway's series."""
        self.torchserve_up.set(int(torchserve_up))
        return generate_latest(self.registry).decode()


class RequestMetrics:
    """Pure ASGI middleware timing and counting every answer by route template and status.

    `routes` are the app's routes, to find the template of a request that was answered before
    the router ran (see `route_template`).
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = INTERNAL_SERVER_ERROR  # what ServerErrorMiddleware answers if an exception escapes

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = route_template(scope, self.routes)
            self.metrics.requests.labels(route, str(status)).inc()
            elapsed = time.perf_counter() - started
            self.metrics.request_seconds.labels(route, f"{status // 100}xx").observe(elapsed)


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of the route a request was for, even when a middleware answered before routing.

    The router records the route it matched in the scope; a request refused earlier (an upload
    whose declared size is over the limit) is matched against `routes` here, so its 413 counts
    under its route rather than as unmatched.
    """
    route = scope.get("route") or next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
    return getattr(route, "path", UNMATCHED_ROUTE)


def get_metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]

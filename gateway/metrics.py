"""The gateway's own Prometheus counters, served next to TorchServe's on `GET /metrics`."""

from __future__ import annotations

from collections import Counter
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

INTERNAL_SERVER_ERROR = int(HTTPStatus.INTERNAL_SERVER_ERROR)
UNMATCHED_ROUTE = "unmatched"
"""One label for every path no route matched, so scanners cannot grow the label set."""


class RequestCounter:
    """Pure ASGI middleware counting answers by route template and status."""

    def __init__(self, app: ASGIApp, counts: Counter[tuple[str, int]]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = INTERNAL_SERVER_ERROR  # what ServerErrorMiddleware answers if an exception escapes

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.counts[route, status] += 1


def render(counts: Counter[tuple[str, int]], torchserve_up: bool) -> str:
    """Prometheus text exposition of the gateway's counters."""
    lines = [
        "# HELP gateway_requests_total Requests answered by the gateway, by route template and status.",
        "# TYPE gateway_requests_total counter",
        *(
            f'gateway_requests_total{{route="{route}",status="{status}"}} {count}'
            for (route, status), count in sorted(counts.items())
        ),
        "# HELP gateway_torchserve_up Whether TorchServe's metrics endpoint answered this scrape.",
        "# TYPE gateway_torchserve_up gauge",
        f"gateway_torchserve_up {int(torchserve_up)}",
    ]
    return "\n".join(lines) + "\n"

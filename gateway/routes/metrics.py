"""`GET /metrics`: TorchServe's Prometheus metrics plus the gateway's own counters."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from gateway import metrics
from gateway.dependencies import TorchServeDep
from gateway.torchserve_client import TorchServeError

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {PROMETHEUS_CONTENT_TYPE: {}}}},
)
async def prometheus_metrics(request: Request, torchserve: TorchServeDep) -> PlainTextResponse:
    """Always answers, so the gateway's counters stay scrapeable while TorchServe is down."""
    try:
        served, up = await torchserve.metrics(), True
    except TorchServeError:
        served, up = "", False
    if served and not served.endswith("\n"):
        served += "\n"
    gateway = metrics.render(request.app.state.request_counts, torchserve_up=up)
    return PlainTextResponse(served + gateway, media_type=PROMETHEUS_CONTENT_TYPE)

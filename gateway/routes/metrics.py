"""`GET /metrics`: TorchServe's Prometheus metrics plus the gateway's own series."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gateway.dependencies import TorchServeDep
from gateway.metrics import MetricsDep
from gateway.torchserve_client import TorchServeError

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The format TorchServe writes and prometheus_client's `generate_latest` still writes by default."""

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {PROMETHEUS_CONTENT_TYPE: {}}}},
)
async def prometheus_metrics(torchserve: TorchServeDep, metrics: MetricsDep) -> PlainTextResponse:
    """Always answers, so the gateway's series stay scrapeable while TorchServe is down."""
    try:
        served, up = await torchserve.metrics(), True
    except TorchServeError:
        served, up = "", False
    if served and not served.endswith("\n"):
        served += "\n"
    gateway = metrics.render(torchserve_up=up)
    return PlainTextResponse(served + gateway, media_type=PROMETHEUS_CONTENT_TYPE)

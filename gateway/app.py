"""The FastAPI application: `uvicorn gateway.app:app`.

`create_app` wires settings, error handlers, routers and middleware; its lifespan owns the one
pooled `httpx.AsyncClient` that every request to TorchServe goes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from gateway.errors import install_error_handlers
from gateway.metrics import GatewayMetrics, RequestMetrics
from gateway.routes import health, metrics, models, predict, ui
from gateway.settings import Settings, load_settings
from gateway.torchserve_client import TorchServeClient
from gateway.uploads import UploadLimitMiddleware

TITLE = "Audio deepfake detector"
DESCRIPTION = (
    "Scores speech recordings with the detector served by TorchServe: `prediction` is the probability "
    "that the audio is real. Version changes need `Authorization: Bearer <DETECTOR_ADMIN_TOKEN>`."
)
CORS_METHODS = ["GET", "POST"]
ROUTERS = (health.router, predict.router, models.router, models.admin, metrics.router, ui.router)


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway; `transport` replaces the network (tests pass an `httpx.MockTransport`)."""
    settings = settings or load_settings()
    gateway_metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.request_timeout_seconds, connect=settings.connect_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
            app.state.torchserve = TorchServeClient(http, settings, gateway_metrics.torchserve_errors)
            yield

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.state.api_routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=CORS_METHODS, allow_headers=["*"]
        )
    app.add_middleware(UploadLimitMiddleware, settings=settings)
    app.add_middleware(RequestMetrics, metrics=gateway_metrics, routes=app.state.api_routes)
    return app


app = create_app()

"""An in-memory TorchServe for `httpx.MockTransport`, and settings that ignore the environment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from gateway.settings import MIB, Settings

ADMIN_TOKEN = "test-admin-token"
LIMIT_BYTES = 1 * MIB
INFERENCE_URL = "http://torchserve.test:8080"
MANAGEMENT_URL = "http://torchserve.test:8081"
METRICS_URL = "http://torchserve.test:8082"
TORCHSERVE_METRICS = (
    '# TYPE ts_inference_requests_total counter\nts_inference_requests_total{model_name="detector"} 3\n'
)


def make_settings(**overrides: object) -> Settings:
    """Settings that never depend on the environment the tests run in."""
    values: dict[str, object] = {
        "torchserve_inference_url": INFERENCE_URL,
        "torchserve_management_url": MANAGEMENT_URL,
        "torchserve_metrics_url": METRICS_URL,
        "model_name": "detector",
        "admin_token": ADMIN_TOKEN,
        "max_upload_bytes": LIMIT_BYTES,
        "request_timeout_seconds": 5.0,
        "connect_timeout_seconds": 1.0,
        "cors_origins": [],
        "retry_after_seconds": 7,
    }
    return Settings(**{**values, **overrides})


def served_prediction(version: str) -> dict[str, object]:
    """A handler answer as the TorchServe contract describes it."""
    return {
        "prediction": 0.75,
        "label": "real",
        "threshold": 0.5,
        "duration_seconds": 3.0,
        "segments": [{"start_seconds": 0.0, "end_seconds": 3.0, "prediction": 0.75}],
        "model": "detector",
        "version": version,
    }


@dataclass
class FakeTorchServe:
    """Just enough of TorchServe's inference, management and metrics APIs for the gateway.

    `fail` replaces every answer, to script TorchServe's failures (a response or an exception).
    """

    versions: dict[str, str] = field(default_factory=lambda: {"1.0": "detector.mar"})
    default: str = "1.0"
    store: dict[str, str] = field(default_factory=lambda: {"detector-v2.mar": "2.0"})
    ready: bool = True
    fail: Callable[[httpx.Request], httpx.Response] | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail is not None:
            return self.fail(request)
        port, method, parts = request.url.port, request.method, request.url.path.strip("/").split("/")
        if port == 8082:
            return httpx.Response(200, text=TORCHSERVE_METRICS)
        if port == 8080:
            return self._inference(method, parts)
        return self._management(method, parts, request.url.params)

    def _inference(self, method: str, parts: list[str]) -> httpx.Response:
        if parts == ["ping"]:
            return httpx.Response(200, json={"status": "Healthy"})
        version = parts[2] if len(parts) > 2 else self.default
        if method != "POST" or parts[:2] != ["predictions", "detector"] or version not in self.versions:
            return _error(404, "Model not found")
        return httpx.Response(200, json=served_prediction(version))

    def _management(self, method: str, parts: list[str], params: httpx.QueryParams) -> httpx.Response:
        if method == "POST" and parts == ["models"]:
            archive = params["url"]
            if archive not in self.store:
                return _error(404, f"Model not found at: {archive}")
            self.versions[self.store[archive]] = archive
            return httpx.Response(200, json={"status": "registered"})
        if len(parts) < 2 or parts[:2] != ["models", "detector"]:
            return _error(404, "Model not found")
        selected = parts[2] if len(parts) > 2 else self.default
        if selected != "all" and selected not in self.versions:
            return _error(404, f"Model version: {selected} does not exist for model: detector")
        if method == "GET":
            names = list(self.versions) if selected == "all" else [selected]
            return httpx.Response(200, json=[self._describe(name) for name in names])
        if method == "PUT" and parts[3:] == ["set-default"]:
            self.default = selected
            return httpx.Response(200, json={"status": "Default version updated"})
        if method == "PUT":
            return httpx.Response(200, json={"status": "Processing worker updates..."})
        if method == "DELETE":
            if selected == self.default:
                return _error(403, "Cannot remove default version for model detector")
            del self.versions[selected]
            return httpx.Response(200, json={"status": "unregistered"})
        return _error(405, "Method not allowed")

    def _describe(self, version: str) -> dict[str, object]:
        workers = [{"id": "9000", "status": "READY" if self.ready else "LOADING"}]
        return {
            "modelName": "detector",
            "modelVersion": version,
            "modelUrl": self.versions[version],
            "minWorkers": 1,
            "maxWorkers": 1,
            "batchSize": 4,
            "maxBatchDelay": 50,
            "workers": workers,
        }


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, content=json.dumps({"code": status, "type": "Error", "message": message}))


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def gateway_client(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the gateway, with its lifespan (and so its pooled TorchServe client) running."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client

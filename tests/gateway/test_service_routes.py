"""Health, metrics, the upload page, CORS and the OpenAPI schema."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.fakes import TORCHSERVE_METRICS, FakeTorchServe, gateway_client, make_settings
from tests.prometheus_text import sample

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}


async def test_health_is_200_when_the_default_version_is_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "gateway": "up",
        "torchserve": "reachable",
        "model": "detector",
        "model_ready": True,
        "default_version": "1.0",
        "ready_workers": 1,
        "detail": "Version '1.0' has 1 ready worker(s).",
    }


async def test_health_is_503_when_torchserve_is_unreachable(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fake_torchserve.fail = refuse

    response = await client.get("/")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["torchserve"] == "unreachable"
    assert response.json()["model_ready"] is False


async def test_health_is_503_while_no_worker_is_ready(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.ready = False

    response = await client.get("/")

    assert response.status_code == 503
    assert response.json()["torchserve"] == "reachable"
    assert response.json()["default_version"] == "1.0"
    assert response.json()["ready_workers"] == 0


async def test_health_is_503_when_the_model_is_not_registered(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.versions.clear()

    response = await client.get("/")

    assert response.status_code == 503
    assert response.json()["detail"] == "Model 'detector' is not registered."


async def test_metrics_add_gateway_counters_to_torchserve_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/predict")
    await client.get("/nowhere")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.text.startswith(TORCHSERVE_METRICS)
    assert sample(response.text, "gateway_requests_total", route="/predict", status="200") == 1
    assert sample(response.text, "gateway_requests_total", route="unmatched", status="404") == 1
    assert sample(response.text, "gateway_torchserve_up") == 1


async def test_metrics_still_answer_while_torchserve_is_down(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fake_torchserve.fail = refuse

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert sample(response.text, "gateway_torchserve_up") == 0


async def test_upload_page_is_self_contained(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert 'type="file"' in response.text
    assert "predict-file/" in response.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text)


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/predict-file/", headers=PREFLIGHT)
    simple = await client.get("/models", headers={"Origin": ORIGIN})

    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_allows_only_configured_origins(fake_torchserve: FakeTorchServe) -> None:
    app = create_app(make_settings(cors_origins=[ORIGIN]), transport=httpx.MockTransport(fake_torchserve))
    async with gateway_client(app) as client:
        allowed = await client.options("/predict-file/", headers=PREFLIGHT)
        other = await client.options("/predict-file/", headers={**PREFLIGHT, "Origin": "https://evil.example"})

    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers


async def test_openapi_documents_every_route_with_precise_models(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert set(schema["paths"]) == {
        "/",
        "/predict",
        "/predict-file/",
        "/models",
        "/models/{version}",
        "/models/{version}/default",
        "/models/{version}/workers",
        "/metrics",
        "/ui",
    }
    predict_file = schema["paths"]["/predict-file/"]["post"]
    assert predict_file["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Prediction"
    }
    for status in ("413", "415", "422", "503", "504"):
        assert predict_file["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["paths"]["/models"]["post"]["security"] == [{"HTTPBearer": []}]

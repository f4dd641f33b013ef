"""The gateway's Prometheus series, through the app in front of the in-memory TorchServe."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gateway.app import create_app
from gateway.torchserve_client import ErrorKind
from tests.gateway.fakes import LIMIT_BYTES, FakeTorchServe, gateway_client, make_settings, served_prediction
from tests.prometheus_text import sample

pytestmark = pytest.mark.anyio

SERVED_SECONDS = served_prediction("1.0")["duration_seconds"]
UPLOAD = b"RIFF" + bytes(5_000)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_latency_is_observed_per_route_template_and_status_class(client: httpx.AsyncClient) -> None:
    await client.get("/predict")
    await client.get("/predict")
    await client.get("/models/9.9")  # a templated route: counted under its template, not its path
    await client.get("/nowhere")

    text = await scrape(client)

    assert sample(text, "gateway_request_duration_seconds_count", route="/predict", status_class="2xx") == 2
    assert sample(text, "gateway_request_duration_seconds_count", route="/models/{version}", status_class="4xx") == 1
    assert sample(text, "gateway_request_duration_seconds_count", route="unmatched", status_class="4xx") == 1
    assert sample(text, "gateway_request_duration_seconds_sum", route="/predict", status_class="2xx") > 0
    assert sample(text, "gateway_request_duration_seconds_bucket", route="/predict", status_class="2xx", le="+Inf") == 2
    assert sample(text, "gateway_requests_total", route="/models/{version}", status="404") == 1


async def test_uploads_are_measured_in_bytes_and_scored_audio_in_seconds(client: httpx.AsyncClient) -> None:
    await client.post("/predict-file/", files={"file": ("a.wav", UPLOAD)})
    await client.post("/predict-file/", files={"file": ("b.wav", UPLOAD + UPLOAD)})
    await client.get("/predict")

    text = await scrape(client)

    assert sample(text, "gateway_upload_bytes_count") == 2
    assert sample(text, "gateway_upload_bytes_sum") == 3 * len(UPLOAD)
    assert sample(text, "gateway_upload_bytes_bucket", le="4096.0") == 0
    assert sample(text, "gateway_upload_bytes_bucket", le="16384.0") == 2
    assert sample(text, "gateway_audio_seconds_total", route="/predict-file/") == 2 * SERVED_SECONDS
    assert sample(text, "gateway_audio_seconds_total", route="/predict") == SERVED_SECONDS


async def test_an_upload_refused_before_routing_counts_under_its_route(client: httpx.AsyncClient) -> None:
    refused = await client.post("/predict-file/", files={"file": ("big.wav", bytes(2 * LIMIT_BYTES))})

    text = await scrape(client)

    assert refused.status_code == 413
    assert sample(text, "gateway_requests_total", route="/predict-file/", status="413") == 1
    assert sample(text, "gateway_upload_bytes_count") == 0


async def test_unscored_uploads_add_no_audio_seconds(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.fail = lambda request: httpx.Response(415, json={"error": "not audio"})

    answer = await client.post("/predict-file/", files={"file": ("a.txt", UPLOAD)})
    fake_torchserve.fail = None
    text = await scrape(client)

    assert answer.status_code == 415
    assert sample(text, "gateway_upload_bytes_count") == 1
    assert sample(text, "gateway_audio_seconds_total", route="/predict-file/") is None


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


def crash(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"message": "worker died"})


def answer_nonsense(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"prediction": "very real"})


@pytest.mark.parametrize(
    ("fail", "path", "status", "kind"),
    [
        (refuse, "/predict", 503, ErrorKind.CONNECTION),
        (time_out, "/predict", 504, ErrorKind.TIMEOUT),
        (crash, "/predict", 502, ErrorKind.SERVER_ERROR),
        (answer_nonsense, "/predict", 502, ErrorKind.BAD_ANSWER),
        (None, "/predict?version=9.9", 404, ErrorKind.CLIENT_ERROR),
    ],
)
async def test_torchserve_errors_are_counted_by_kind(
    client: httpx.AsyncClient,
    fake_torchserve: FakeTorchServe,
    fail: Callable[[httpx.Request], httpx.Response] | None,
    path: str,
    status: int,
    kind: ErrorKind,
) -> None:
    fake_torchserve.fail = fail

    answer = await client.get(path)
    fake_torchserve.fail = None
    text = await scrape(client)

    assert answer.status_code == status
    counts = {other: sample(text, "gateway_torchserve_errors_total", kind=other.value) for other in ErrorKind}
    assert counts == {other: float(other == kind) for other in ErrorKind}


async def test_a_failed_scrape_of_torchserve_counts_as_a_connection_error(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.fail = refuse

    text = await scrape(client)

    assert sample(text, "gateway_torchserve_up") == 0
    assert sample(text, "gateway_torchserve_errors_total", kind="connection") == 1


async def test_each_app_has_its_own_registry(fake_torchserve: FakeTorchServe) -> None:
    transport = httpx.MockTransport(fake_torchserve)
    first, second = create_app(make_settings(), transport=transport), create_app(make_settings(), transport=transport)
    async with gateway_client(first) as one, gateway_client(second) as other:
        await one.get("/predict")
        first_text, second_text = await scrape(one), await scrape(other)

    assert sample(first_text, "gateway_requests_total", route="/predict", status="200") == 1
    assert sample(second_text, "gateway_requests_total", route="/predict", status="200") is None

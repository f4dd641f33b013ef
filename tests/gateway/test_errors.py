"""TorchServe's failures become clear JSON answers with statuses a client can act on."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from gateway.builtin_signal import builtin_signal_wav
from gateway.dependencies import get_torchserve
from tests.gateway.fakes import FakeTorchServe, gateway_client

pytestmark = pytest.mark.anyio

WAV = builtin_signal_wav()


def answer(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=json.dumps(body))


def raise_(error: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return fail


@pytest.mark.parametrize(
    ("fail", "status", "detail"),
    [
        (raise_(httpx.ConnectError), 503, "The model server is unreachable; retry later."),
        (raise_(httpx.ConnectTimeout), 503, "The model server is unreachable; retry later."),
        (raise_(httpx.RemoteProtocolError), 503, "The model server is unreachable; retry later."),
        (raise_(httpx.ReadTimeout), 504, "The model server did not answer within 5 seconds."),
        (answer(415, {"error": "Could not decode the audio."}), 415, "Could not decode the audio."),
        (answer(422, {"error": "The audio is shorter than 0.5 s."}), 422, "The audio is shorter than 0.5 s."),
        (answer(413, {"error": "The audio is longer than 600 s."}), 413, "The audio is longer than 600 s."),
        (answer(415, {}), 415, "The file is not audio the model server can decode."),
        (answer(404, {"code": 404, "message": "Model not found"}), 404, "Model 'detector' was not found."),
        (
            answer(503, {"code": 503, "message": "No worker"}),
            503,
            "Model 'detector' has no worker ready to answer; retry later.",
        ),
        (
            answer(507, {"code": 507, "message": "Worker died."}),
            503,
            "Model 'detector' has no worker ready to answer; retry later.",
        ),
        (
            answer(500, {"code": 500, "message": "Traceback ... /opt/handler.py"}),
            502,
            "The model server failed to answer the request.",
        ),
        (answer(200, {"unexpected": True}), 502, "The model server failed to answer the request."),
        (lambda request: httpx.Response(200, text="<html>"), 502, "The model server failed to answer the request."),
    ],
)
async def test_torchserve_failures_map_to_clear_answers(
    client: httpx.AsyncClient,
    fake_torchserve: FakeTorchServe,
    fail: Callable[[httpx.Request], httpx.Response],
    status: int,
    detail: str,
) -> None:
    fake_torchserve.fail = fail

    response = await client.post("/predict-file/", files={"file": ("a.wav", WAV)})

    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert ("retry-after" in response.headers) == (status == 503)


async def test_unavailable_answers_say_when_to_retry(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.fail = raise_(httpx.ConnectError)

    response = await client.get("/predict")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


async def test_handler_messages_lose_urls_and_paths(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    message = "Cannot decode /tmp/models/abc123/upload.bin (see http://127.0.0.1:8080/predictions/detector)"
    fake_torchserve.fail = answer(415, {"error": message})

    response = await client.post("/predict-file/", files={"file": ("a.wav", WAV)})

    assert response.json() == {"detail": "Cannot decode <path> (see <url>)"}


async def test_unexpected_errors_are_a_bare_500(app: FastAPI) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals at /srv/gateway")

    app.dependency_overrides[get_torchserve] = broken
    async with gateway_client(app, raise_app_exceptions=False) as raw:
        response = await raw.get("/predict")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


async def test_unknown_routes_answer_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_method_not_allowed_lists_every_allowed_method(client: httpx.AsyncClient) -> None:
    collection = await client.patch("/models")
    version = await client.patch("/models/1.0")

    assert collection.status_code == version.status_code == 405
    assert collection.headers["allow"] == "GET, POST"
    assert version.headers["allow"] == "DELETE, GET"
    assert collection.json() == {"detail": "Method Not Allowed"}

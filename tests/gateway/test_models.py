"""Version management through the gateway: open reads, admin-only changes."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.fakes import FakeTorchServe, bearer, gateway_client, make_settings

pytestmark = pytest.mark.anyio

CHANGES = [
    ("POST", "/models", {"archive": "detector-v2.mar"}),
    ("PUT", "/models/1.0/default", None),
    ("PUT", "/models/1.0/workers", {"min_workers": 2}),
    ("DELETE", "/models/1.0", None),
]


async def test_list_marks_the_default_version(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    fake_torchserve.versions["2.0"] = "detector-v2.mar"

    response = await client.get("/models")

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "detector"
    assert body["default_version"] == "1.0"
    assert [(v["version"], v["default"], v["ready_workers"]) for v in body["versions"]] == [
        ("1.0", True, 1),
        ("2.0", False, 1),
    ]


async def test_list_is_empty_when_the_model_is_not_registered(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.versions.clear()

    response = await client.get("/models")

    assert response.json() == {"model": "detector", "default_version": None, "versions": []}


async def test_describe_one_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/models/1.0")

    assert response.status_code == 200
    assert response.json() == {
        "version": "1.0",
        "default": True,
        "archive": "detector.mar",
        "min_workers": 1,
        "max_workers": 1,
        "workers": 1,
        "ready_workers": 1,
        "batch_size": 4,
        "max_batch_delay_ms": 50,
    }


async def test_describe_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/models/3.0")

    assert response.status_code == 404
    assert response.json() == {"detail": "Model 'detector' version '3.0' was not found."}


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
@pytest.mark.parametrize("headers", [{}, bearer("wrong-token"), {"Authorization": "Basic dXNlcjpwYXNz"}])
async def test_changes_without_the_admin_token_are_401(
    client: httpx.AsyncClient,
    fake_torchserve: FakeTorchServe,
    method: str,
    path: str,
    body: dict | None,
    headers: dict[str, str],
) -> None:
    response = await client.request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "A valid admin bearer token is required to change model versions."}
    assert fake_torchserve.requests == []


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
async def test_changes_are_403_when_no_admin_token_is_configured(
    fake_torchserve: FakeTorchServe, method: str, path: str, body: dict | None
) -> None:
    app = create_app(make_settings(admin_token=None), transport=httpx.MockTransport(fake_torchserve))
    async with gateway_client(app) as client:
        response = await client.request(method, path, json=body, headers=bearer())

    assert response.status_code == 403
    assert "no admin token" in response.json()["detail"]
    assert fake_torchserve.requests == []


async def test_register_set_default_and_roll_back(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    registered = await client.post("/models", json={"archive": "detector-v2.mar"}, headers=bearer())
    assert registered.status_code == 201
    assert registered.json()["version"] == "2.0"
    assert registered.json()["default"] is False
    call = next(r for r in fake_torchserve.requests if r.method == "POST")
    assert dict(call.url.params) == {
        "url": "detector-v2.mar",
        "model_name": "detector",
        "initial_workers": "1",
        "synchronous": "true",
    }

    promoted = await client.put("/models/2.0/default", headers=bearer())
    assert promoted.json()["default_version"] == "2.0"
    assert (await client.post("/predict-file/", files={"file": ("a.wav", b"RIFF")})).json()["version"] == "2.0"

    rolled_back = await client.put("/models/1.0/default", headers=bearer())
    assert rolled_back.json()["default_version"] == "1.0"

    removed = await client.delete("/models/2.0", headers=bearer())
    assert removed.status_code == 200
    assert [v["version"] for v in removed.json()["versions"]] == ["1.0"]


async def test_removing_the_default_version_is_a_conflict(client: httpx.AsyncClient) -> None:
    response = await client.delete("/models/1.0", headers=bearer())

    assert response.status_code == 409
    assert response.json() == {"detail": "The model server refused: Cannot remove default version for model detector"}


async def test_registering_a_registered_version_again_is_a_conflict(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    fake_torchserve.fail = lambda request: httpx.Response(
        409, json={"code": 409, "message": "Model version 2.0 is already registered for model detector"}
    )

    response = await client.post("/models", json={"archive": "detector-v2.mar"}, headers=bearer())

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The model server refused: Model version 2.0 is already registered for model detector"
    }


async def test_registering_an_archive_missing_from_the_store_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/models", json={"archive": "nope.mar"}, headers=bearer())

    assert response.status_code == 404
    assert response.json() == {"detail": "Archive 'nope.mar' in the model store was not found."}


async def test_scale_workers(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    response = await client.put("/models/1.0/workers", json={"min_workers": 2, "max_workers": 3}, headers=bearer())

    assert response.status_code == 200
    call = next(r for r in fake_torchserve.requests if r.method == "PUT")
    assert call.url.path == "/models/detector/1.0"
    assert dict(call.url.params) == {"min_worker": "2", "max_worker": "3", "synchronous": "true"}


@pytest.mark.parametrize(
    "body",
    [
        {"archive": "../detector.mar"},
        {"archive": "http://example.com/detector.mar"},
        {"archive": "file:///etc/detector.mar"},
        {"archive": "detector.zip"},
        {"archive": "detector-v2.mar", "initial_workers": -1},
        {"archive": "detector-v2.mar", "url": "http://example.com/x.mar"},
    ],
)
async def test_register_accepts_only_store_archive_names(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe, body: dict
) -> None:
    response = await client.post("/models", json=body, headers=bearer())

    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid request: body")
    assert fake_torchserve.requests == []


async def test_workers_max_below_min_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put("/models/1.0/workers", json={"min_workers": 2, "max_workers": 1}, headers=bearer())

    assert response.status_code == 422

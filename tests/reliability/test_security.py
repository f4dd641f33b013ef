"""Security of the served path, as behaviour: the admin token, registration confined to the model
store, no CORS unless configured, and no token echoed in answers or logs.

TorchServe's loopback-only listening is pinned in tests/scripts/test_torchserve.py, and its refusal
of http/https/file:///etc/passwd registrations there too; this adds archives outside the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from scripts.archive import build_archive
from tests.conftest import TorchServeFixture
from tests.reliability.conftest import ADMIN_TOKEN
from tests.reliability.stack import Gateway, assert_json_error, assert_no_leak

pytestmark = pytest.mark.integration

CANARY = "canary-7f3a9c-not-the-admin-token"
OUTSIDE_VERSION = "7.7"
# (method, path, JSON body) of every route that changes versions
ADMIN_ROUTES = [
    ("POST", "/models", {"archive": "detector.mar"}),
    ("PUT", "/models/1.0/default", None),
    ("PUT", "/models/1.0/workers", {"min_workers": 1}),
    ("DELETE", "/models/1.0", None),
]
# Authorization headers that are not the token, including near misses a careless comparison accepts.
NOT_THE_TOKEN = {
    "missing": {},
    "wrong": {"Authorization": f"Bearer {CANARY}"},
    "prefix": {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    "suffix": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    "other-case": {"Authorization": f"Bearer {ADMIN_TOKEN.upper()}"},
    "scheme-only": {"Authorization": "Bearer"},
    "basic-scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"},
}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REMOTE_ARCHIVES = [
    "http://127.0.0.1:9/detector.mar",
    "https://example.com/detector.mar",
    "file:///etc/passwd",
    "../detector.mar",
    "/etc/passwd",
    "..%2Fdetector.mar",
    "sub/detector.mar",
    "detector.mar?url=http://example.com/x.mar",
]
ORIGIN = "https://attacker.example"


def call(client: httpx.Client, method: str, path: str, body: dict | None, headers: dict[str, str]) -> httpx.Response:
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("credentials", NOT_THE_TOKEN)
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p, _ in ADMIN_ROUTES])
def test_version_changes_without_the_exact_token_are_401(
    client: httpx.Client, method: str, path: str, body: dict | None, credentials: str
) -> None:
    response = call(client, method, path, body, NOT_THE_TOKEN[credentials])

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert assert_json_error(response) == "A valid admin bearer token is required to change model versions."
    versions = client.get("/models").json()
    assert (versions["default_version"], [v["version"] for v in versions["versions"]]) == ("1.0", ["1.0"])


def test_the_exact_token_is_accepted(client: httpx.Client) -> None:
    response = client.put("/models/1.0/default", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["default_version"] == "1.0"


@pytest.mark.parametrize("archive", REMOTE_ARCHIVES)
def test_registration_through_the_gateway_names_only_a_file_in_the_store(client: httpx.Client, archive: str) -> None:
    response = client.post("/models", json={"archive": archive}, headers=AUTH)

    assert_no_leak(response)
    assert response.status_code == 422, response.text
    assert "archive" in assert_json_error(response)
    assert [v["version"] for v in client.get("/models").json()["versions"]] == ["1.0"]


def test_registering_an_archive_missing_from_the_store_is_404_without_paths(client: httpx.Client) -> None:
    response = client.post("/models", json={"archive": "not-in-the-store.mar"}, headers=AUTH)

    assert_no_leak(response)
    assert response.status_code == 404, response.text
    assert assert_json_error(response) == "Archive 'not-in-the-store.mar' in the model store was not found."


@pytest.fixture(scope="module")
def outside_archive(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A valid archive of a new version, in a folder beside the model store, not in it."""
    outside = torchserve.run_dir.parent / "outside"
    archive = build_archive(torchserve.checkpoint, outside, OUTSIDE_VERSION, torchserve.model_name, True)
    try:
        yield archive
    finally:  # should a registration have got through, leave the session's server as it was
        httpx.delete(f"{torchserve.management_url}/models/{torchserve.model_name}/{OUTSIDE_VERSION}", timeout=30)


@pytest.mark.parametrize("form", ["relative", "absolute", "file-url", "file-url-via-store"])
def test_torchserve_refuses_archives_outside_its_store(
    torchserve: TorchServeFixture, outside_archive: Path, form: str
) -> None:
    urls = {
        "relative": f"../{outside_archive.parent.name}/{outside_archive.name}",
        "absolute": str(outside_archive),
        "file-url": outside_archive.as_uri(),
        "file-url-via-store": f"file://{torchserve.model_store}/../{outside_archive.parent.name}/{outside_archive.name}",
    }

    reply = httpx.post(
        f"{torchserve.management_url}/models?url={quote(urls[form], safe='')}&synchronous=true", timeout=60
    )
    listed = httpx.get(f"{torchserve.management_url}/models/{torchserve.model_name}/all", timeout=30).json()

    assert reply.status_code == 404, reply.text
    assert [version["modelVersion"] for version in listed] == ["1.0"]


def test_no_cors_headers_unless_origins_are_configured(client: httpx.Client) -> None:
    preflight = client.options("/predict-file/", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    simple = client.get("/", headers={"Origin": ORIGIN})

    for response in (preflight, simple):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")], response.headers


def test_tokens_are_never_echoed_in_answers_or_logs(
    client: httpx.Client, gateway: Gateway, torchserve: TorchServeFixture
) -> None:
    answers = [
        call(client, method, path, body, {"Authorization": f"Bearer {CANARY}"}) for method, path, body in ADMIN_ROUTES
    ]
    answers += [
        client.get("/models", headers={"Authorization": f"Bearer {CANARY}"}),
        client.post("/predict-file/", headers={"Authorization": f"Bearer {CANARY}"}, files={"file": ("x", b"junk")}),
        client.put("/models/1.0/default", headers=AUTH),
    ]
    logs = [gateway.log, *sorted((torchserve.run_dir / "logs").glob("*.log"))]

    for response in answers:
        echoed = response.text + str(response.headers)
        assert CANARY not in echoed
        assert ADMIN_TOKEN not in echoed
    for log in logs:
        text = log.read_text(errors="replace")
        assert CANARY not in text, log.name
        assert ADMIN_TOKEN not in text, log.name

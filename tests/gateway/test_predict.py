"""The seed's prediction routes against an in-memory TorchServe."""

from __future__ import annotations

import httpx
import pytest

from gateway.builtin_signal import builtin_signal_wav
from gateway.uploads import FALLBACK_FILENAME, MAX_FILENAME_CHARS, safe_filename
from tests.gateway.fakes import FakeTorchServe

pytestmark = pytest.mark.anyio

WAV = builtin_signal_wav()
PREDICTION_KEYS = {
    "prediction",
    "filename",
    "label",
    "model",
    "version",
    "duration_seconds",
    "threshold",
    "segments",
}


async def test_predict_file_answers_the_seed_contract_and_more(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    response = await client.post("/predict-file/", files={"file": ("clip.wav", WAV, "audio/wav")})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PREDICTION_KEYS
    assert body["filename"] == "clip.wav"
    assert 0.0 <= body["prediction"] <= 1.0
    assert body["version"] == "1.0"
    sent = fake_torchserve.requests[-1]
    assert sent.url.path == "/predictions/detector"
    assert sent.headers["content-type"] == "application/octet-stream"
    assert sent.content == WAV


async def test_version_query_picks_the_version(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    fake_torchserve.versions["2.0"] = "detector-v2.mar"

    response = await client.post("/predict-file/?version=2.0", files={"file": ("a.wav", WAV)})

    assert response.json()["version"] == "2.0"
    assert fake_torchserve.requests[-1].url.path == "/predictions/detector/2.0"


async def test_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict-file/?version=9.9", files={"file": ("a.wav", WAV)})

    assert response.status_code == 404
    assert response.json() == {"detail": "Model 'detector' version '9.9' was not found."}


@pytest.mark.parametrize("version", ["../../models", "1.0/../x", "a b", ""])
async def test_malformed_version_never_reaches_torchserve(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe, version: str
) -> None:
    response = await client.post("/predict-file/", params={"version": version}, files={"file": ("a.wav", WAV)})

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert fake_torchserve.requests == []


async def test_builtin_test_signal_goes_through_the_served_model(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    response = await client.get("/predict")

    assert response.status_code == 200
    assert set(response.json()) == PREDICTION_KEYS
    assert response.json()["filename"] == "test-signal.wav"
    assert fake_torchserve.requests[-1].content == WAV


async def test_missing_file_field_is_a_clear_422(client: httpx.AsyncClient, fake_torchserve: FakeTorchServe) -> None:
    response = await client.post("/predict-file/", files={"audio": ("a.wav", WAV)})

    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid request: body field 'file': Field required"}
    assert fake_torchserve.requests == []


async def test_empty_file_is_422_without_calling_torchserve(
    client: httpx.AsyncClient, fake_torchserve: FakeTorchServe
) -> None:
    response = await client.post("/predict-file/", files={"file": ("empty.wav", b"")})

    assert response.status_code == 422
    assert response.json() == {"detail": "The uploaded file is empty."}
    assert fake_torchserve.requests == []


async def test_echoed_filename_is_sanitised(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict-file/", files={"file": ("../..\\Windows\\secret.wav", WAV)})

    assert response.json()["filename"] == "secret.wav"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("clip.wav", "clip.wav"),
        ("/home/someone/clips/clip.wav", "clip.wav"),
        ("C:\\Users\\someone\\clip.wav", "clip.wav"),
        ("../../../etc/passwd", "passwd"),
        ("bell\x07\x1b[31mred\u202e.wav", "bell[31mred.wav"),
        ("  spaced name.flac  ", "spaced name.flac"),
        ("..", FALLBACK_FILENAME),
        ("dir/", FALLBACK_FILENAME),
        ("", FALLBACK_FILENAME),
        (None, FALLBACK_FILENAME),
        ("résumé-é.ogg", "résumé-é.ogg"),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    assert safe_filename(name) == expected


def test_long_filenames_are_capped_keeping_the_extension() -> None:
    name = safe_filename("x" * 1000 + ".wav")

    assert len(name) == MAX_FILENAME_CHARS
    assert name.endswith("x.wav")
    assert len(safe_filename("y" * 1000)) == MAX_FILENAME_CHARS

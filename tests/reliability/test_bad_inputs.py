"""The bad-input corpus through the real gateway, and straight to TorchServe.

Every case gets a prediction or one precise JSON refusal (400/413/415/422, never 5xx); no answer
shows an internal path or a traceback; and the service answers a normal request right after each.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from model.inference import AudioDetector
from model.timeline import SEGMENT_SECONDS
from tests.audio_fixtures import encode
from tests.conftest import TorchServeFixture
from tests.reliability.corpus import CORPUS, OK, Case, pcm8_wav, silence_wav
from tests.reliability.stack import (
    HTTP_TIMEOUT_SECONDS,
    assert_json_error,
    assert_no_leak,
    assert_prediction,
    probe_clip,
)

pytestmark = pytest.mark.integration

PREDICT = "/predict-file/"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}
UNDER_LIMIT_SECONDS = 590.0  # the served default limit is 600 s
TOLERANCE = 1e-5
PROBE = probe_clip()

# name: (httpx request arguments, status, words the message must contain)
REQUEST_SHAPES: dict[str, tuple[dict[str, Any], int, str]] = {
    "missing-file-field": ({"files": {"audio": ("a.wav", PROBE)}}, 422, "field 'file': Field required"),
    "two-files": ({"files": [("file", ("a.wav", PROBE)), ("file", ("b.wav", PROBE))]}, 422, "one file per request"),
    "text-instead-of-file": ({"files": {"file": (None, "clip.wav")}}, 422, "must be a file"),
    "json-body": ({"json": {"file": "clip.wav"}}, 415, "multipart/form-data"),
    "form-urlencoded": ({"data": {"file": "clip.wav"}}, 415, "multipart/form-data"),
    "raw-audio-body": ({"content": PROBE, "headers": OCTET_STREAM}, 415, "multipart/form-data"),
    "multipart-without-boundary": (
        {"content": PROBE, "headers": {"Content-Type": "multipart/form-data"}},
        400,
        "boundary",
    ),
}
# the uploaded name: the name the answer echoes
FILENAMES = {
    "../../etc/passwd.wav": "passwd.wav",
    "C:\\Users\\me\\clips\\take 1.wav": "take 1.wav",
    "grüße-声音-🎙.wav": "grüße-声音-🎙.wav",
    "right-to-left\u202e.wav": "right-to-left.wav",
    "..": "upload",
    "a" * 996 + ".wav": "a" * 124 + ".wav",
}


def assert_answer(response: httpx.Response, case: Case, message_key: str) -> None:
    assert_no_leak(response)
    assert response.status_code == case.status, response.text[:300]
    if case.status == OK:
        assert_prediction(response.json(), case.seconds)
    else:
        assert case.detail in assert_json_error(response, message_key)


def upload(client: httpx.Client, filename: str, payload: bytes) -> httpx.Response:
    return client.post(PREDICT, files={"file": (filename, payload, OCTET_STREAM["Content-Type"])})


def assert_gateway_serves(client: httpx.Client) -> None:
    probe = upload(client, "probe.wav", PROBE)
    assert probe.status_code == 200, probe.text


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_corpus_through_the_gateway(client: httpx.Client, case: Case) -> None:
    response = upload(client, case.filename, case.build())

    assert_answer(response, case, "detail")
    if case.status == OK:
        assert response.json()["filename"] == case.filename
    assert_gateway_serves(client)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_corpus_straight_to_torchserve(torchserve: TorchServeFixture, case: Case) -> None:
    url = torchserve.predictions_url()

    response = httpx.post(url, content=case.build(), headers=OCTET_STREAM, timeout=HTTP_TIMEOUT_SECONDS)

    assert_answer(response, case, "error")
    probe = httpx.post(url, content=PROBE, headers=OCTET_STREAM, timeout=HTTP_TIMEOUT_SECONDS)
    assert probe.status_code == 200, probe.text


@pytest.mark.parametrize("shape", REQUEST_SHAPES)
def test_request_that_is_not_one_upload_gets_a_precise_refusal(client: httpx.Client, shape: str) -> None:
    arguments, status, words = REQUEST_SHAPES[shape]

    response = client.post(PREDICT, **arguments)

    assert_no_leak(response)
    assert response.status_code == status, response.text
    assert words in assert_json_error(response)
    assert_gateway_serves(client)


@pytest.mark.parametrize("filename", FILENAMES, ids=["path", "windows-path", "unicode", "bidi", "dots", "1000-chars"])
def test_filename_is_echoed_as_a_safe_base_name(client: httpx.Client, filename: str) -> None:
    response = upload(client, filename, PROBE)

    assert response.status_code == 200, response.text
    assert response.json()["filename"] == FILENAMES[filename]


def test_audio_just_under_the_duration_limit_is_scored_in_segments(client: httpx.Client) -> None:
    response = upload(client, "long.wav", pcm8_wav(UNDER_LIMIT_SECONDS))

    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body, UNDER_LIMIT_SECONDS)
    assert len(body["segments"]) == math.ceil(UNDER_LIMIT_SECONDS / SEGMENT_SECONDS)


def test_digital_silence_is_scored_the_same_in_every_encoding(
    client: httpx.Client, torchserve: TorchServeFixture
) -> None:
    """Whisper's log-mel floors the power at 1e-10, so all-zero audio gives finite features and a score."""
    encodings = {
        "pcm16.wav": silence_wav(),
        "pcm8.wav": silence_wav(subtype="PCM_U8"),
        "float.wav": silence_wav(subtype="FLOAT"),
        "lossless.flac": encode(silence_wav(), "flac"),
    }
    offline = AudioDetector.from_checkpoint(torchserve.checkpoint).score_audio(silence_wav()).probability_real

    answers = {name: upload(client, name, audio) for name, audio in encodings.items()}

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(encodings, 200)
    for answer in answers.values():
        assert answer.json()["prediction"] == pytest.approx(offline, abs=TOLERANCE)

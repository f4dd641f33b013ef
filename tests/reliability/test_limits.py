"""Limits set through the environment: audio duration and decode time (handler), request time (gateway).

A private TorchServe is started with DETECTOR_MAX_AUDIO_SECONDS and DETECTOR_DECODE_TIMEOUT_SECONDS
in its environment; its workers inherit them and they override the archive's model-config.yaml
(600 s and 60 s), so an operator changes a limit with a restart, not a new archive.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handler.detector_handler import DECODE_TIMEOUT_ENV, MAX_AUDIO_SECONDS_ENV, serving_limit
from model.timeline import SEGMENT_SECONDS
from scripts import torchserve as torchserve_control
from tests.audio_fixtures import encode, speech_wav
from tests.conftest import TorchServeFixture, free_ports
from tests.reliability.stack import (
    HTTP_TIMEOUT_SECONDS,
    assert_json_error,
    assert_no_leak,
    assert_prediction,
    group_commands,
    probe_clip,
    running_gateway,
)

MAX_AUDIO_SECONDS = 20.0
DECODE_TIMEOUT_SECONDS = 0.001  # shorter than any ffmpeg run: every ffmpeg decode is cut
INSIDE_SECONDS = 19.0
OVER_SECONDS = 25.0
REQUEST_TIMEOUT_SECONDS = 0.01  # far shorter than scoring a 19 s clip (its speech check alone takes ~70 ms)
PREDICT = "/predict-file/"


@pytest.fixture(scope="module")
def limited_torchserve(
    torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[torchserve_control.Server]:
    """A private TorchServe serving the session's archive, with tight limits in its environment."""
    run_dir = tmp_path_factory.mktemp("limited") / "torchserve"
    environment = {MAX_AUDIO_SECONDS_ENV: str(MAX_AUDIO_SECONDS), DECODE_TIMEOUT_ENV: str(DECODE_TIMEOUT_SECONDS)}
    server = torchserve_control.start(run_dir, torchserve.model_store, *free_ports(3), environment=environment)
    try:
        yield server
    finally:
        torchserve_control.stop(run_dir)


@pytest.fixture(scope="module")
def limited(
    limited_torchserve: torchserve_control.Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    server = limited_torchserve
    log = tmp_path_factory.mktemp("limited-gateway") / "gateway.log"
    with (
        running_gateway(server.inference_url, server.management_url, server.metrics_url, log) as gateway,
        httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT_SECONDS) as client,
    ):
        yield client


def upload(client: httpx.Client, audio: bytes) -> httpx.Response:
    return client.post(PREDICT, files={"file": ("clip", audio)})


@pytest.mark.integration
def test_duration_limit_from_the_environment_overrides_the_archive(limited: httpx.Client) -> None:
    response = upload(limited, speech_wav(OVER_SECONDS))

    assert response.status_code == 413, response.text
    assert assert_json_error(response) == (
        f"the audio lasts {OVER_SECONDS:.1f} s, more than the limit of {MAX_AUDIO_SECONDS:g} s"
    )


@pytest.mark.integration
def test_audio_inside_the_limit_is_scored_in_segments_not_truncated(limited: httpx.Client) -> None:
    response = upload(limited, speech_wav(INSIDE_SECONDS))

    assert response.status_code == 200, response.text
    assert_prediction(response.json(), INSIDE_SECONDS)
    assert len(response.json()["segments"]) == math.ceil(INSIDE_SECONDS / SEGMENT_SECONDS)


@pytest.mark.integration
def test_slow_decode_is_cut_by_the_decode_time_limit(
    limited: httpx.Client, limited_torchserve: torchserve_control.Server
) -> None:
    response = upload(limited, encode(speech_wav(3.0), "m4a"))  # M4A is decoded by ffmpeg

    assert response.status_code == 415, response.text
    assert assert_json_error(response) == f"decoding took longer than {DECODE_TIMEOUT_SECONDS:g} s"
    assert not [command for command in group_commands(limited_torchserve.pid).values() if "ffmpeg" in command]
    assert upload(limited, probe_clip()).status_code == 200  # WAV needs no ffmpeg


@pytest.mark.integration
def test_gateway_request_timeout_answers_504_and_the_next_request_is_served(
    limited_torchserve: torchserve_control.Server, limited: httpx.Client, tmp_path: Path
) -> None:
    server = limited_torchserve
    with (
        running_gateway(
            server.inference_url,
            server.management_url,
            server.metrics_url,
            tmp_path / "impatient.log",
            request_timeout_seconds=str(REQUEST_TIMEOUT_SECONDS),
        ) as impatient,
        httpx.Client(base_url=impatient.url, timeout=HTTP_TIMEOUT_SECONDS) as hurried,
    ):
        # Not the 1 s probe clip: with a 5 ms batch delay a quiet server can answer that within 10 ms.
        response = upload(hurried, speech_wav(INSIDE_SECONDS, seed=5))

    assert_no_leak(response)
    assert response.status_code == 504, response.text
    assert assert_json_error(response) == f"The model server did not answer within {REQUEST_TIMEOUT_SECONDS:g} seconds."
    assert upload(limited, probe_clip()).status_code == 200


@pytest.mark.parametrize(
    ("environment", "configured", "expected"),
    [
        ({}, None, 600.0),
        ({}, 30, 30.0),
        ({MAX_AUDIO_SECONDS_ENV: "45"}, 30, 45.0),
        ({MAX_AUDIO_SECONDS_ENV: ""}, 30, 30.0),
    ],
    ids=["default", "archive", "environment-wins", "empty-is-unset"],
)
def test_limit_precedence(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], configured: float | None, expected: float
) -> None:
    monkeypatch.delenv(MAX_AUDIO_SECONDS_ENV, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert serving_limit(MAX_AUDIO_SECONDS_ENV, configured, 600.0) == expected


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "ten"])
def test_a_limit_that_is_not_a_positive_number_stops_the_worker(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(MAX_AUDIO_SECONDS_ENV, value)

    with pytest.raises(ValueError):
        serving_limit(MAX_AUDIO_SECONDS_ENV, None, 600.0)

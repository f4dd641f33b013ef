"""Serving's speech check end to end: a private TorchServe with DETECTOR_SPEECH_CHECK=1 behind the gateway.

Speech is scored as offline scoring scores it; silence, a tone and white noise get 422 with one
clear message instead of a confident verdict. The suite's other servers run with the check off
(tests/conftest.py), since their test signal is not speech to the VAD.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from model.audio import SAMPLE_RATE
from model.inference import AudioDetector
from model.signals import spoken, wav_bytes
from model.vad import NO_SPEECH_MESSAGE, SPEECH_CHECK_ENV
from scripts import torchserve as torchserve_control
from tests.conftest import TorchServeFixture, free_ports
from tests.reliability.stack import (
    HTTP_TIMEOUT_SECONDS,
    assert_json_error,
    assert_no_leak,
    assert_prediction,
    running_gateway,
)

PREDICT = "/predict-file/"
TOLERANCE = 1e-5
SECONDS = 3.0


@pytest.fixture(scope="module")
def checking(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The gateway in front of a private TorchServe that serves the session's archive with the check on."""
    run_dir = tmp_path_factory.mktemp("speech-check") / "torchserve"
    server = torchserve_control.start(
        run_dir, torchserve.model_store, *free_ports(3), environment={SPEECH_CHECK_ENV: "1"}
    )
    log = run_dir.parent / "gateway.log"
    try:
        with (
            running_gateway(server.inference_url, server.management_url, server.metrics_url, log) as gateway,
            httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT_SECONDS) as client,
        ):
            yield client
    finally:
        torchserve_control.stop(run_dir)


def silence() -> np.ndarray:
    return np.zeros(round(SECONDS * SAMPLE_RATE), np.float32)


def tone() -> np.ndarray:
    t = np.arange(round(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def white_noise() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(round(SECONDS * SAMPLE_RATE))).astype(np.float32)


@pytest.mark.integration
def test_speech_is_scored_as_offline_scoring_scores_it(checking: httpx.Client, torchserve: TorchServeFixture) -> None:
    audio = wav_bytes(spoken(text="Please call me back when you have read the letter."))
    response = checking.post(PREDICT, files={"file": ("speech.wav", audio)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body)
    expected = AudioDetector.from_checkpoint(torchserve.checkpoint).score_audio(audio)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)


@pytest.mark.integration
@pytest.mark.parametrize("make", [silence, tone, white_noise], ids=["silence", "tone", "white-noise"])
def test_audio_without_speech_gets_422_and_a_clear_message(checking: httpx.Client, make) -> None:
    response = checking.post(PREDICT, files={"file": ("clip.wav", wav_bytes(make()))})
    assert response.status_code == 422, response.text
    assert assert_json_error(response) == NO_SPEECH_MESSAGE
    assert_no_leak(response)

"""Predictions through a real TorchServe equal offline scoring with the same checkpoint."""

from __future__ import annotations

import httpx
import pytest

from model.inference import AudioDetector
from tests.audio_fixtures import speech_wav
from tests.conftest import TorchServeFixture

pytestmark = pytest.mark.integration
TOLERANCE = 1e-5
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def offline(torchserve: TorchServeFixture) -> AudioDetector:
    return AudioDetector.from_checkpoint(torchserve.checkpoint)


def test_served_prediction_equals_offline_scoring(torchserve: TorchServeFixture, offline: AudioDetector) -> None:
    audio = speech_wav(7.5, seed=3)  # two windows, so the segments are checked too
    reply = httpx.post(torchserve.predictions_url(), content=audio, headers=OCTET_STREAM, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    expected = offline.score_audio(audio)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["label"] == expected.label
    assert body["threshold"] == offline.threshold
    assert body["duration_seconds"] == expected.duration_seconds
    assert [(s["start_seconds"], s["end_seconds"]) for s in body["segments"]] == [
        (s.start_seconds, s.end_seconds) for s in expected.segments
    ]
    for served, local in zip(body["segments"], expected.segments, strict=True):
        assert served["prediction"] == pytest.approx(local.probability_real, abs=TOLERANCE)
    assert body["model"] == "detector"
    assert body["version"] == torchserve.version

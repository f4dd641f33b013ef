"""A checkpoint trained with vad_trim, in the real handler: speech is scored, speech-free uploads get 422.

The refusal is per request: batch-mates with speech are scored as if alone. Under KServe the whole
request is refused, as any other unusable input of it is.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch
from ts.context import RequestProcessor
from ts.utils.util import PredictionException

from handler.detector_handler import DetectorHandler
from model.audio import SAMPLE_RATE
from model.checkpoint import save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig
from model.inference import AudioDetector
from model.signals import wav_bytes
from model.vad import NO_SPEECH_MESSAGE
from tests.handler.test_handler_unit import TOLERANCE, VERSION, make_context, run_batch
from tests.model.test_vad import SENTENCE, espeak, surround


@pytest.fixture(scope="module")
def vad_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(4)
    config = ModelConfig(channels=(4, 8))
    directory = tmp_path_factory.mktemp("vad") / "checkpoint"
    save_checkpoint(directory, build_detector(config), config, FeatureConfig(vad_trim=True), {"version": VERSION})
    return directory


@pytest.fixture(scope="module")
def vad_handler(vad_checkpoint: Path) -> DetectorHandler:
    instance = DetectorHandler()
    instance.initialize(make_context(vad_checkpoint))
    return instance


@pytest.fixture(scope="module")
def speech_upload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """espeak-ng's sentence with 1.5 s of faint noise before and 1 s after, as a WAV upload."""
    speech = espeak(SENTENCE, tmp_path_factory.mktemp("espeak"))
    return wav_bytes(surround(speech, 1.5, 1.0, 3e-4), subtype="FLOAT")


def silence_upload() -> bytes:
    return wav_bytes(np.zeros(2 * SAMPLE_RATE, np.float32))


def tone_upload() -> bytes:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return wav_bytes((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))


def test_speech_free_uploads_get_422_and_batch_mates_with_speech_are_scored(
    vad_handler: DetectorHandler, vad_checkpoint: Path, speech_upload: bytes
) -> None:
    rows = [{"body": silence_upload()}, {"file": speech_upload}, {"data": tone_upload()}]
    results = run_batch(vad_handler, rows)
    assert [status for status, _, _ in results] == [422, 200, 422]
    assert results[0][1] == results[2][1] == {"error": NO_SPEECH_MESSAGE}
    [(_, alone, _)] = run_batch(vad_handler, [{"body": speech_upload}])
    body = results[1][1]
    assert body["prediction"] == pytest.approx(alone["prediction"], abs=TOLERANCE)
    expected = AudioDetector.from_checkpoint(vad_checkpoint).score_audio(speech_upload)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["duration_seconds"] == expected.duration_seconds  # the upload's length, not the speech's
    assert 1.0 < body["segments"][0]["start_seconds"] < 1.5  # where the speech begins, less the pad


def test_a_kserve_request_with_a_speech_free_clip_is_refused_whole(vad_handler: DetectorHandler) -> None:
    text = base64.b64encode(silence_upload()).decode()
    rows = [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": text}]
    context = make_context(Path("unused"))
    context.request_processor = [RequestProcessor({})]
    with pytest.raises(PredictionException) as raised:
        vad_handler.handle(rows, context)
    assert raised.value.error_code == 422
    assert raised.value.message == f"clip 0: {NO_SPEECH_MESSAGE}"

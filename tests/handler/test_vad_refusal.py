"""Serving's speech check in the real handler: speech is scored, speech-free uploads get 422.

Both kinds of checkpoint are served: one trained with vad_trim (the VAD already ran to trim) and a
plain one (the check runs the VAD for it). The refusal is per request: batch-mates with speech are
scored as if alone. Under KServe the whole request is refused, as any other unusable input of it is.
With the check off (DETECTOR_SPEECH_CHECK=0) silence is scored like anything else.
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
from model.signals import spoken, wav_bytes
from model.vad import NO_SPEECH_MESSAGE, SPEECH_CHECK_ENV
from tests.handler.test_handler_unit import TOLERANCE, VERSION, make_context, run_batch
from tests.model.test_vad import SENTENCE, surround


def checkpoint_for(directory: Path, vad_trim: bool) -> Path:
    torch.manual_seed(4)
    config = ModelConfig(channels=(4, 8))
    save_checkpoint(directory, build_detector(config), config, FeatureConfig(vad_trim=vad_trim), {"version": VERSION})
    return directory


def handler_for(checkpoint: Path, check: str) -> DetectorHandler:
    instance = DetectorHandler()
    with pytest.MonkeyPatch.context() as patch:  # the suite turns the check off (tests/conftest.py)
        patch.setenv(SPEECH_CHECK_ENV, check)
        instance.initialize(make_context(checkpoint))
    return instance


@pytest.fixture(scope="module", params=[True, False], ids=["vad-trim", "plain"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_for(tmp_path_factory.mktemp("speech-check") / "checkpoint", request.param)


@pytest.fixture(scope="module")
def checking_handler(checkpoint: Path) -> DetectorHandler:
    return handler_for(checkpoint, "1")


@pytest.fixture(scope="module")
def speech_upload() -> bytes:
    """espeak-ng's sentence with 1.5 s of faint noise before and 1 s after, as a WAV upload."""
    return wav_bytes(surround(spoken(text=SENTENCE), 1.5, 1.0, 3e-4), subtype="FLOAT")


def silence_upload() -> bytes:
    return wav_bytes(np.zeros(2 * SAMPLE_RATE, np.float32))


def tone_upload() -> bytes:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    return wav_bytes((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))


def test_speech_free_uploads_get_422_and_batch_mates_with_speech_are_scored(
    checking_handler: DetectorHandler, checkpoint: Path, speech_upload: bytes
) -> None:
    rows = [{"body": silence_upload()}, {"file": speech_upload}, {"data": tone_upload()}]
    results = run_batch(checking_handler, rows)
    assert [status for status, _, _ in results] == [422, 200, 422]
    assert results[0][1] == results[2][1] == {"error": NO_SPEECH_MESSAGE}
    [(_, alone, _)] = run_batch(checking_handler, [{"body": speech_upload}])
    body = results[1][1]
    assert body["prediction"] == pytest.approx(alone["prediction"], abs=TOLERANCE)
    expected = AudioDetector.from_checkpoint(checkpoint).score_audio(speech_upload)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["duration_seconds"] == expected.duration_seconds  # the upload's length, not the speech's


def test_a_vad_trim_checkpoint_reports_where_the_speech_begins(tmp_path: Path, speech_upload: bytes) -> None:
    instance = handler_for(checkpoint_for(tmp_path / "checkpoint", vad_trim=True), "1")
    [(status, body, _)] = run_batch(instance, [{"body": speech_upload}])
    assert status == 200
    assert 1.0 < body["segments"][0]["start_seconds"] < 1.5  # where the speech begins, less the pad


def test_a_kserve_request_with_a_speech_free_clip_is_refused_whole(checking_handler: DetectorHandler) -> None:
    text = base64.b64encode(silence_upload()).decode()
    rows = [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": text}]
    context = make_context(Path("unused"))
    context.request_processor = [RequestProcessor({})]
    with pytest.raises(PredictionException) as raised:
        checking_handler.handle(rows, context)
    assert raised.value.error_code == 422
    assert raised.value.message == f"clip 0: {NO_SPEECH_MESSAGE}"


def test_with_the_check_off_silence_is_scored(checkpoint: Path) -> None:
    instance = handler_for(checkpoint, "0")
    [(status, body, _)] = run_batch(instance, [{"body": silence_upload()}])
    assert status == 200
    expected = AudioDetector.from_checkpoint(checkpoint).score_audio(silence_upload())
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)

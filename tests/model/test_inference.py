"""AudioDetector calibrates every window's logit before the sigmoid: segments and clip mean alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.calibration import CALIBRATED_THRESHOLD, Calibration
from model.checkpoint import METADATA_FILE, checkpoint_calibration, save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig
from model.inference import AudioDetector
from model.timeline import score_segments, segment_spans
from tests.model.conftest import voiced

CALIBRATION = Calibration(scale=2.5, bias=0.8)
SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "default"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> AudioDetector:
    torch.manual_seed(2)
    config = ModelConfig()
    directory = tmp_path_factory.mktemp("calibrated") / "checkpoint"
    metadata = {"version": "5.0", "threshold": CALIBRATED_THRESHOLD}
    save_checkpoint(directory, build_detector(config), config, FeatureConfig(), metadata, CALIBRATION)
    return AudioDetector.from_checkpoint(directory)


def test_window_probability_is_the_calibrated_sigmoid_of_the_raw_logit(calibrated: AudioDetector) -> None:
    clip = voiced(5.0, 16_000, seed=7)[:, 0]  # within one window: one segment, the detector's own logit
    features = [calibrated.extractor(clip)]
    raw = calibrated.window_logits(features).double().numpy()
    expected = 1.0 / (1.0 + np.exp(-(CALIBRATION.scale * raw + CALIBRATION.bias)))
    np.testing.assert_allclose(calibrated.score_features(features), expected, atol=1e-6, rtol=0)
    score = calibrated.score_waveforms([clip])[0]
    np.testing.assert_allclose([s.probability_real for s in score.segments], expected, atol=1e-6, rtol=0)
    assert score.probability_real == pytest.approx(float(np.mean(expected)), abs=1e-6)
    assert not np.allclose(expected, 1.0 / (1.0 + np.exp(-raw)), atol=1e-3)  # the calibration did something


def test_segment_probabilities_of_long_audio_are_calibrated_and_averaged(calibrated: AudioDetector) -> None:
    clip = np.tile(voiced(2.0, 16_000, seed=7)[:, 0], 7)  # 14 s: seven segments
    features = [calibrated.extractor(clip)]
    frames = [[(start // 160, end // 160) for start, end in segment_spans(len(clip), 96_000, 32_000)]]
    with torch.inference_mode():
        raw = score_segments(calibrated.scorer, features, frames, 600)[0].double().numpy()
    expected = 1.0 / (1.0 + np.exp(-(CALIBRATION.scale * raw + CALIBRATION.bias)))
    score = calibrated.score_waveforms([clip])[0]
    np.testing.assert_allclose([s.probability_real for s in score.segments], expected, atol=1e-6, rtol=0)
    assert score.probability_real == pytest.approx(float(np.mean(expected)), abs=1e-6)


def test_calibrated_label_uses_the_checkpoint_threshold(calibrated: AudioDetector) -> None:
    assert calibrated.threshold == CALIBRATED_THRESHOLD
    assert calibrated.label(0.5) == "real" and calibrated.label(0.4999) == "fake"


def test_shipped_model_is_calibrated_with_the_default_threshold() -> None:
    """artifacts/default carries its dev-fitted Platt scaling, so P(real) >= 0.5 means real."""
    metadata = json.loads((SHIPPED / METADATA_FILE).read_text())
    detector = AudioDetector.from_checkpoint(SHIPPED)
    assert not detector.calibration.is_identity
    assert detector.calibration == checkpoint_calibration(metadata)
    assert detector.threshold == metadata["threshold"] == CALIBRATED_THRESHOLD

"""AudioDetector calibrates every window's logit before the sigmoid: segments and clip mean alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.calibration import CALIBRATED_THRESHOLD, Calibration
from model.checkpoint import METADATA_FILE, save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig
from model.inference import AudioDetector
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
    clip = np.tile(voiced(2.0, 16_000, seed=7)[:, 0], 7)  # 14 s: three windows
    windows = calibrated.extractor.split(clip)
    features = [calibrated.extractor(w) for w in windows]
    raw = calibrated.window_logits(features).double().numpy()
    expected = 1.0 / (1.0 + np.exp(-(CALIBRATION.scale * raw + CALIBRATION.bias)))
    np.testing.assert_allclose(calibrated.score_features(features), expected, atol=1e-6, rtol=0)
    score = calibrated.score_waveforms([clip])[0]
    np.testing.assert_allclose([s.probability_real for s in score.segments], expected, atol=1e-6, rtol=0)
    assert score.probability_real == pytest.approx(float(np.mean(expected)), abs=1e-6)
    assert not np.allclose(expected, 1.0 / (1.0 + np.exp(-raw)), atol=1e-3)  # the calibration did something


def test_calibrated_label_uses_the_checkpoint_threshold(calibrated: AudioDetector) -> None:
    assert calibrated.threshold == CALIBRATED_THRESHOLD
    assert calibrated.label(0.5) == "real" and calibrated.label(0.4999) == "fake"


def test_shipped_model_is_uncalibrated_and_keeps_its_threshold() -> None:
    """artifacts/default predates calibration: identity, and the dev EER threshold it shipped with."""
    metadata = json.loads((SHIPPED / METADATA_FILE).read_text())
    assert "calibration" not in metadata
    detector = AudioDetector.from_checkpoint(SHIPPED)
    assert detector.calibration.is_identity
    assert detector.threshold == metadata["threshold"] == pytest.approx(0.0715, abs=1e-4)

"""Checkpoints round-trip exactly, and a checkpoint this code cannot reproduce is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.calibration import Calibration
from model.checkpoint import (
    FEATURE_CONFIG_FILE,
    METADATA_FILE,
    checkpoint_calibration,
    load_checkpoint,
    save_checkpoint,
)
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig, FeatureConfigMismatch
from model.inference import AudioDetector
from tests.model.conftest import voiced


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = ModelConfig()
    save_checkpoint(tmp_path / "ckpt", build_detector(config), config, FeatureConfig(), {"version": "3.1"})
    return tmp_path / "ckpt"


def test_round_trip_restores_identical_weights(checkpoint: Path) -> None:
    model, feature_config, metadata = load_checkpoint(checkpoint)
    saved = torch.load(checkpoint / "weights.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert not model.training
    assert feature_config == FeatureConfig()
    assert metadata["version"] == "3.1" and metadata["threshold"] == 0.5


def test_feature_config_mismatch_fails_loudly(checkpoint: Path) -> None:
    path = checkpoint / FEATURE_CONFIG_FILE
    values = json.loads(path.read_text())
    values["hop_length"] = 320
    path.write_text(json.dumps(values))
    with pytest.raises(FeatureConfigMismatch):
        load_checkpoint(checkpoint)


def test_drifted_extractor_fails_loudly(checkpoint: Path) -> None:
    path = checkpoint / FEATURE_CONFIG_FILE
    values = json.loads(path.read_text())
    values["reference_bin_means"] = [v * 1.01 for v in values["reference_bin_means"]]
    path.write_text(json.dumps(values))
    with pytest.raises(FeatureConfigMismatch, match="different features"):
        load_checkpoint(checkpoint)


def test_model_and_feature_mel_bins_must_agree(checkpoint: Path) -> None:
    path = checkpoint / FEATURE_CONFIG_FILE
    values = json.loads(path.read_text())
    values["n_mels"] = 128
    values["reference_bin_means"] = list(FeatureConfig(n_mels=128).with_reference().reference_bin_means)
    path.write_text(json.dumps(values))
    with pytest.raises(FeatureConfigMismatch, match="mel bins"):
        load_checkpoint(checkpoint)


def test_missing_files_are_named(checkpoint: Path) -> None:
    (checkpoint / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"weights\.pt"):
        load_checkpoint(checkpoint)


def test_long_audio_is_scored_in_segments_without_truncation(checkpoint: Path) -> None:
    detector = AudioDetector.from_checkpoint(checkpoint)
    long_clip = np.tile(voiced(2.0, 16_000)[:, 0], 7)  # 14 s → seven segments of 2 s
    short_clip = voiced(1.0, 16_000, seed=3)[:, 0]
    together = detector.score_waveforms([long_clip, short_clip])
    segments = together[0].segments
    assert len(segments) == 7 and segments[0].start_seconds == 0 and segments[-1].end_seconds == 14.0
    assert together[0].probability_real == pytest.approx(np.mean([s.probability_real for s in segments]))
    alone = detector.score_waveforms([short_clip])[0]
    assert alone.probability_real == pytest.approx(together[1].probability_real, abs=1e-5)
    assert together[1].label in ("real", "fake")


def test_calibrated_checkpoint_round_trips_to_the_same_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config, calibration = ModelConfig(), Calibration(scale=1.7, bias=-0.4)
    model = build_detector(config).eval()
    save_checkpoint(tmp_path / "calibrated", model, config, FeatureConfig(), {"version": "4.0"}, calibration)
    saved = json.loads((tmp_path / "calibrated" / METADATA_FILE).read_text())
    assert saved["calibration"] == {"scale": 1.7, "bias": -0.4}
    _, _, metadata = load_checkpoint(tmp_path / "calibrated")
    assert checkpoint_calibration(metadata) == calibration
    clips = [voiced(1.0, 16_000, seed=4)[:, 0], voiced(7.0, 16_000, seed=5)[:, 0]]
    in_memory = AudioDetector(model, FeatureConfig(), {"calibration": calibration.to_dict()})
    reloaded = AudioDetector.from_checkpoint(tmp_path / "calibrated")
    assert reloaded.calibration == calibration
    for before, after in zip(in_memory.score_waveforms(clips), reloaded.score_waveforms(clips), strict=True):
        assert after.probability_real == pytest.approx(before.probability_real, abs=1e-6)
        assert [s.probability_real for s in after.segments] == pytest.approx(
            [s.probability_real for s in before.segments], abs=1e-6
        )


def test_checkpoint_without_calibration_loads_as_identity_with_its_old_threshold(checkpoint: Path) -> None:
    """What training saved before calibration existed (e.g. artifacts/default, threshold 0.0715)."""
    path = checkpoint / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.pop("calibration", None)
    path.write_text(json.dumps({**metadata, "threshold": 0.0715}))
    detector = AudioDetector.from_checkpoint(checkpoint)
    assert detector.calibration == Calibration() and detector.threshold == 0.0715
    features = [detector.extractor(voiced(2.0, 16_000, seed=6)[:, 0])]
    raw = torch.sigmoid(detector.window_logits(features).double()).tolist()
    assert detector.score_features(features) == pytest.approx(raw, abs=1e-12)

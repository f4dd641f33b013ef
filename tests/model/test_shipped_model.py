"""The committed default model still loads with this code and still tells real from fake.

Integration tests serve a tiny fresh checkpoint; this is the check that a change to features,
detectors or checkpoint code has not silently broken the model users actually get.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.checkpoint import WEIGHTS_FILE
from model.inference import AudioDetector
from scripts.demo_samples import write_samples

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "default"
SIZE_LIMIT_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def detector() -> AudioDetector:
    return AudioDetector.from_checkpoint(SHIPPED)  # raises FeatureConfigMismatch if features drifted


def test_shipped_model_is_small_and_reports_its_measurements() -> None:
    assert (SHIPPED / WEIGHTS_FILE).stat().st_size < SIZE_LIMIT_BYTES
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert set(metrics["conditions"]) == {"clean", "mp3_64k", "mp3_16k_11k"}
    assert all(0 <= c["eer"] < 0.5 for c in metrics["conditions"].values())
    metadata = json.loads((SHIPPED / "metadata.json").read_text())
    assert metadata["threshold"] == metrics["threshold"]


def test_shipped_model_tells_the_demo_recording_from_its_tts_copy(detector: AudioDetector, tmp_path: Path) -> None:
    real, fake = write_samples(tmp_path)
    real_score = detector.score_audio(real)
    fake_score = detector.score_audio(fake)
    assert detector.label(real_score.probability_real) == "real"
    assert detector.label(fake_score.probability_real) == "fake"

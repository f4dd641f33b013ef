"""`--front-end` picks the features a run trains on and its checkpoint serves with."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.checkpoint import load_checkpoint
from model.features import EXTRACTOR_NAME, LFCC, LINEAR_LOG_SPEC, FeatureConfig
from model.inference import AudioDetector
from tests.model.conftest import voiced
from training.heldout import parse_overrides
from training.train import TrainConfig, parse_args, train


def tiny_run(toy_manifest: Path, out: Path, front_end: str, members: int = 1) -> TrainConfig:
    """Smallest run that still goes through data, loop, calibration and checkpoint."""
    return TrainConfig(
        manifest=str(toy_manifest), out=str(out), front_end=front_end, channels="4,8", epochs=1, patience=1,
        batch_size=16, cache_dir="", vocoded_copies=0, evaluate=False, threads=1, members=members,
    )  # fmt: skip


def test_flag_and_heldout_override_map_to_the_config() -> None:
    assert parse_args([]).front_end == EXTRACTOR_NAME
    assert parse_args(["--front-end", LFCC]).front_end == LFCC
    assert parse_overrides([f"front_end={LINEAR_LOG_SPEC}"]) == {"front_end": LINEAR_LOG_SPEC}


@pytest.mark.parametrize(("front_end", "members"), [(LFCC, 1), (LINEAR_LOG_SPEC, 2)])
def test_a_run_saves_and_serves_the_front_end_it_trained_on(
    toy_manifest: Path, tmp_path: Path, front_end: str, members: int
) -> None:
    train(tiny_run(toy_manifest, tmp_path / "run", front_end, members))
    _, feature_config, metadata = load_checkpoint(tmp_path / "run")  # the reference check passes
    assert feature_config == FeatureConfig.for_front_end(front_end)
    assert metadata["train_config"]["front_end"] == front_end
    score = AudioDetector.from_checkpoint(tmp_path / "run").score_waveforms([voiced(1.0, 16_000)[:, 0]])[0]
    assert 0.0 <= score.probability_real <= 1.0


def test_an_unknown_front_end_stops_the_run_before_training(toy_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown front end"):
        train(tiny_run(toy_manifest, tmp_path / "run", "cqt"))

"""`--vad-trim` (and heldout's `--set vad_trim=true`) trains on VAD-trimmed clips and serves with the same cut."""

from __future__ import annotations

from pathlib import Path

from model.checkpoint import load_checkpoint
from model.features import FeatureConfig
from tests.training.test_front_end_option import tiny_run
from training.heldout import parse_overrides
from training.train import parse_args, train


def test_flag_and_heldout_override_map_to_the_config() -> None:
    assert parse_args([]).vad_trim is False
    assert parse_args(["--vad-trim"]).vad_trim is True
    assert parse_overrides(["vad_trim=true"]) == {"vad_trim": True}


def test_a_run_with_the_option_saves_it_in_its_feature_config(toy_manifest: Path, tmp_path: Path) -> None:
    config = tiny_run(toy_manifest, tmp_path / "run", FeatureConfig().extractor)
    config.vad_trim = True
    train(config)
    _, feature_config, metadata = load_checkpoint(tmp_path / "run")
    assert feature_config == FeatureConfig(vad_trim=True)
    assert metadata["train_config"]["vad_trim"] is True

"""The frozen-encoder recipe: the head learns the toy set, the checkpoint holds the head alone, pooled
embeddings are cached once and are exactly what the served path computes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from model.audio import decode_audio
from model.checkpoint import WEIGHTS_FILE, load_checkpoint
from model.detectors import WhisperPitchProbeDetector, WhisperProbeDetector
from model.inference import AudioDetector
from training.dataset import FeatureCache
from training.manifest import read_manifest
from training.probe import POOLED_SUBDIR, pooled_statistics
from training.train import TrainConfig, train


def probe_config(toy_manifest: Path, out: Path, architecture: str = "whisper_probe") -> TrainConfig:
    return TrainConfig(
        manifest=str(toy_manifest), out=str(out), architecture=architecture, epochs=20, patience=20, batch_size=8,
        cache_dir=str(out.parent / "cache"), vocoded_dir=str(out.parent / "vocoded"), members=1, threads=2,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["whisper_probe", "whisper_pitch_probe"])
def probe_run(
    request: pytest.FixtureRequest, toy_manifest: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainConfig, dict]:
    config = probe_config(toy_manifest, tmp_path_factory.mktemp("probe") / "run", request.param)
    return config, train(config)


def test_the_head_learns_the_toy_set(probe_run: tuple[TrainConfig, dict]) -> None:
    _, results = probe_run
    assert results["conditions"]["clean"]["eer"] <= 0.1
    assert results["conditions"]["clean"]["auc"] >= 0.95


def test_the_checkpoint_holds_the_head_and_its_standardisation_only(probe_run: tuple[TrainConfig, dict]) -> None:
    config, _ = probe_run
    state = torch.load(Path(config.out) / WEIGHTS_FILE, weights_only=True)
    assert set(state) == {"pooled_mean", "pooled_scale", "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"}
    assert not torch.equal(state["pooled_scale"], torch.ones_like(state["pooled_scale"]))  # fitted, not the init
    model, feature_config, metadata = load_checkpoint(Path(config.out))
    assert feature_config == config.feature_config().with_reference()
    assert isinstance(model, WhisperProbeDetector) and "calibration" in metadata
    assert isinstance(model, WhisperPitchProbeDetector) == (config.architecture == "whisper_pitch_probe")


def test_pooled_embeddings_are_cached_once_and_equal_the_served_path(
    probe_run: tuple[TrainConfig, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = probe_run
    rows = [r for r in read_manifest(Path(config.manifest)) if r.split == "dev"]
    cache = FeatureCache(Path(config.cache_dir), config.feature_config())
    assert len(list((Path(config.cache_dir) / POOLED_SUBDIR).glob("*.pt"))) >= len(rows)
    detector = AudioDetector.from_checkpoint(Path(config.out))
    model = detector.model

    def no_encoder(*args: object) -> None:
        raise AssertionError("a cached clip went through the encoder again")

    monkeypatch.setattr(model, "embed", no_encoder)
    cached = pooled_statistics(model, rows, cache, 600, torch.device("cpu"), "dev")
    monkeypatch.undo()
    with torch.no_grad():
        logits = model.classify_statistics(cached)
    served = detector.score_waveforms([decode_audio(r.path) for r in rows])  # toy clips: one window each
    calibrated = torch.sigmoid(detector.calibration.apply(logits.double()))
    expected = torch.tensor([s.probability_real for s in served], dtype=torch.float64)
    torch.testing.assert_close(calibrated, expected, atol=1e-5, rtol=0)


def test_augmented_variants_join_the_training_vectors(toy_manifest: Path, tmp_path: Path) -> None:
    plain = dataclasses.replace(probe_config(toy_manifest, tmp_path / "plain"), evaluate=False)
    augmented = dataclasses.replace(
        plain, out=str(tmp_path / "augmented"), augmented_copies=1, augmented_dir=str(tmp_path / "variants")
    )
    for config in (plain, augmented):
        train(config)
    plain_clips, augmented_clips = (load_checkpoint(Path(c.out))[2]["train_clips"] for c in (plain, augmented))
    dev_clips = sum(r.split == "dev" for r in read_manifest(toy_manifest))
    assert len(list((tmp_path / "variants").glob("*.flac"))) == plain_clips  # every training clip, vocoded ones too
    assert augmented_clips == 2 * plain_clips
    assert len(list((tmp_path / "cache" / POOLED_SUBDIR).glob("*.pt"))) == augmented_clips + dev_clips

"""The ensemble-size curve combines members exactly as the shipped ensemble does."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from model.audio import decode_audio
from model.inference import AudioDetector
from training.ensemble_size import clip_features, main, member_dirs, subset_scores, subsets, window_logits
from training.manifest import read_manifest
from training.train import TrainConfig, train

MEMBERS = 3


@pytest.fixture(scope="module")
def ensemble_run(toy_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble")
    config = TrainConfig(
        manifest=str(toy_manifest), out=str(out), epochs=1, patience=1, batch_size=8, cache_dir=str(out / "cache"),
        threads=2, members=MEMBERS, evaluate=False, vocoded_copies=0,
    )  # fmt: skip
    train(config)
    return out


def test_all_members_together_score_like_the_saved_ensemble(ensemble_run: Path, toy_manifest: Path) -> None:
    rows = [r for r in read_manifest(toy_manifest) if r.split == "test"]
    detector = AudioDetector.from_checkpoint(ensemble_run)
    clips = clip_features([r.path for r in rows], detector.extractor, "features")
    logits = [window_logits(d, clips) for d in member_dirs(ensemble_run)]
    served = [s.probability_real for s in detector.score_waveforms([decode_audio(r.path) for r in rows])]
    np.testing.assert_allclose(subset_scores(logits, range(MEMBERS), detector.calibration), served, atol=1e-5)
    # One member alone is not the ensemble: the subsets really differ.
    assert not np.allclose(subset_scores(logits, [0]), served, atol=1e-5)


def test_subsets_are_all_combinations_or_a_seeded_sample() -> None:
    assert subsets(4, 2, samples=10, rng=random.Random(0)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    drawn = subsets(10, 5, samples=7, rng=random.Random(1))
    assert len(drawn) == len(set(drawn)) == 7 and all(len(s) == 5 for s in drawn)
    assert drawn == subsets(10, 5, samples=7, rng=random.Random(1))


def test_cli_writes_a_curve_per_split_and_a_plot(ensemble_run: Path, toy_manifest: Path, tmp_path: Path) -> None:
    main(["--run", str(ensemble_run), "--manifest", str(toy_manifest), "--splits", "dev,test", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "ensemble_size.json").read_text())
    assert set(report["curves"]) == {"dev", "test"}
    for curve in report["curves"].values():
        assert [p["members"] for p in curve] == [1, 2, 3]
        assert [p["subsets"] for p in curve] == [3, 3, 1]
        assert all(p["eer_min"] <= p["eer_mean"] <= p["eer_max"] for p in curve)
        assert curve[-1]["eer_std"] == 0.0
    assert (tmp_path / "ensemble_size.png").stat().st_size > 0


def test_a_run_without_members_is_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="at least two members"):
        main(["--run", str(tmp_path)])

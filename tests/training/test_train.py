"""A short training run learns a separable toy set and writes every artifact serving needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.inference import AudioDetector
from training.evaluate import main as evaluate_main
from training.train import TrainConfig, main, parse_args, train


@pytest.fixture(scope="module")
def trained_run(toy_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        manifest=str(toy_manifest), out=str(out), epochs=6, patience=6, batch_size=8, cache_dir=str(out / "cache"),
        version="7.2", threads=2,
    )  # fmt: skip
    return out, train(config)


def test_training_learns_the_toy_set(trained_run: tuple[Path, dict]) -> None:
    _, results = trained_run
    clean = results["conditions"]["clean"]
    assert clean["eer"] <= 0.1
    assert clean["auc"] >= 0.95


def test_run_folder_holds_checkpoint_metrics_and_plots(trained_run: tuple[Path, dict]) -> None:
    out, _ = trained_run
    for name in ("weights.pt", "model_config.json", "feature_config.json", "metadata.json", "history.json",
                 "metrics.json", "training_curves.png", "roc_det.png", "score_histograms.png"):  # fmt: skip
        assert (out / name).is_file(), name
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["version"] == "7.2" and 0 <= metadata["threshold"] <= 1
    history = json.loads((out / "history.json").read_text())
    assert history[0]["epoch"] == 1 and "dev_eer" in history[-1]
    assert AudioDetector.from_checkpoint(out).threshold == metadata["threshold"]


def test_evaluation_reports_mp3_condition_and_attacks(trained_run: tuple[Path, dict], toy_manifest: Path) -> None:
    out, _ = trained_run
    evaluate_main(["--checkpoint", str(out), "--manifest", str(toy_manifest), "--out", str(out / "eval"),
                   "--mp3-cache", str(out / "mp3")])  # fmt: skip
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["conditions"]) == {"clean", "mp3_64k"}
    mp3 = metrics["conditions"]["mp3_64k"]
    assert mp3["count"] == metrics["conditions"]["clean"]["count"] > 0
    assert set(mp3["eer_by_attack"]) == {"buzz"}
    assert len(list((out / "mp3").glob("*.mp3"))) == mp3["count"]


def test_cli_flags_map_to_the_config() -> None:
    config = parse_args(["--architecture", "improved", "--epochs", "3", "--no-evaluate", "--learning-rate", "0.01"])
    assert (config.architecture, config.epochs, config.evaluate, config.learning_rate) == ("improved", 3, False, 0.01)
    assert parse_args([]).channels == "8,16,32,64"
    assert parse_args(["--channels", "4,8"]).channels == "4,8"


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--manifest" in capsys.readouterr().out


def test_weight_average_is_the_mean_of_float_tensors_and_keeps_the_latest_counters() -> None:
    import torch

    from training.train import WeightAverage

    average = WeightAverage()
    for value in (1.0, 2.0, 6.0):
        average.add({"weight": torch.full((2,), value), "num_batches_tracked": torch.tensor(int(value))})
    state = average.state()
    assert torch.equal(state["weight"], torch.full((2,), 3.0))
    assert state["num_batches_tracked"].item() == 6
    assert average.count == 3

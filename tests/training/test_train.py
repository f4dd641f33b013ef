"""A short training run learns a separable toy set and writes every artifact serving needs."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from model.calibration import CALIBRATED_THRESHOLD, Calibration
from model.checkpoint import METADATA_FILE
from model.inference import AudioDetector
from training.evaluate import main as evaluate_main
from training.train import TrainConfig, has_native_bf16, main, parse_args, train


@pytest.fixture(scope="module")
def trained_run(toy_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    return out, train(run_config(toy_manifest, out))


def run_config(toy_manifest: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        manifest=str(toy_manifest), out=str(out), epochs=6, patience=6, batch_size=8, cache_dir=str(out / "cache"),
        vocoded_dir=str(out / "vocoded"), version="7.2", threads=2, members=1,
    )  # fmt: skip


def test_training_learns_the_toy_set(trained_run: tuple[Path, dict]) -> None:
    _, results = trained_run
    clean = results["conditions"]["clean"]
    assert clean["eer"] <= 0.1
    assert clean["auc"] >= 0.95


def test_run_folder_holds_checkpoint_metrics_and_plots(trained_run: tuple[Path, dict]) -> None:
    out, _ = trained_run
    for name in ("weights.pt", "model_config.json", "feature_config.json", "metadata.json", "history.json",
                 "metrics.json", "training_curves.png", "roc_det.png", "score_histograms.png",
                 "reliability.png"):  # fmt: skip
        assert (out / name).is_file(), name
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["version"] == "7.2" and metadata["threshold"] == CALIBRATED_THRESHOLD
    history = json.loads((out / "history.json").read_text())
    assert history[0]["epoch"] == 1 and "dev_eer" in history[-1]
    assert AudioDetector.from_checkpoint(out).threshold == metadata["threshold"]


def test_precision_is_bfloat16_only_where_the_cpu_has_it(trained_run: tuple[Path, dict]) -> None:
    out, _ = trained_run
    native = has_native_bf16(torch.device("cpu"))
    expected = "bfloat16 autocast" if native else "float32"
    assert json.loads((out / METADATA_FILE).read_text())["precision"] == expected
    assert TrainConfig().mixed_precision and parse_args(["--no-mixed-precision"]).mixed_precision is False


def test_best_epoch_is_calibrated_on_dev(trained_run: tuple[Path, dict]) -> None:
    out, results = trained_run
    metadata = json.loads((out / METADATA_FILE).read_text())
    calibration = Calibration.from_dict(metadata["calibration"])
    assert not calibration.is_identity and calibration.scale > 0
    assert 0 <= metadata["eer_threshold"] <= 1 and 0 <= metadata["uncalibrated_threshold"] <= 1
    assert set(metadata["dev_ece"]) == {"uncalibrated", "calibrated"}
    assert all(0 <= e <= 1 for e in metadata["dev_ece"].values())
    assert AudioDetector.from_checkpoint(out).calibration == calibration
    assert results["calibration"] == metadata["calibration"] and results["threshold"] == CALIBRATED_THRESHOLD
    for report in results["conditions"].values():
        assert 0 <= report["ece"] <= 1 and 0 <= report["brier"] <= 1


def test_evaluation_reports_mp3_condition_and_attacks(trained_run: tuple[Path, dict], toy_manifest: Path) -> None:
    out, _ = trained_run
    evaluate_main(["--checkpoint", str(out), "--manifest", str(toy_manifest), "--out", str(out / "eval"),
                   "--mp3-cache", str(out / "mp3")])  # fmt: skip
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["conditions"]) == {"clean", "mp3_64k", "mp3_16k_11k"}
    poor = metrics["conditions"]["mp3_16k_11k"]
    assert poor["count"] == metrics["conditions"]["clean"]["count"]
    assert 0 <= poor["real_labelled_real"] <= 1 and 0 <= poor["fake_labelled_fake"] <= 1
    assert all({"ece", "brier"} <= set(report) for report in metrics["conditions"].values())
    assert (out / "eval" / "reliability.png").stat().st_size > 0
    mp3 = metrics["conditions"]["mp3_64k"]
    assert mp3["count"] == metrics["conditions"]["clean"]["count"] > 0
    assert set(mp3["eer_by_attack"]) == {"buzz"}
    assert len(list((out / "mp3").glob("*.mp3"))) == 2 * mp3["count"]  # 64 kbit/s and the poor channel
    with (out / "eval" / "scores.csv").open() as handle:
        scores = list(csv.DictReader(handle))
    assert len(scores) == mp3["count"]
    assert {row["label"] for row in scores} == {"real", "fake"}
    assert all((toy_manifest.parent / row["path"]).is_file() and not Path(row["path"]).is_absolute() for row in scores)
    assert all(0 <= float(row["clean"]) <= 1 and 0 <= float(row["mp3_64k"]) <= 1 for row in scores)


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


def test_weight_ema_moves_toward_the_live_weights_and_copies_counters() -> None:
    import torch

    from model.detectors import ModelConfig, build_detector
    from training.train import WeightEMA

    live = build_detector(ModelConfig(architecture="improved", n_mels=4, hidden=2))
    ema = WeightEMA(live, decay=0.5)
    start = live.output.bias.detach().clone()
    with torch.no_grad():
        live.output.bias.add_(1.0)
    for _ in range(50):
        ema.update(live)
    assert torch.allclose(ema.model.output.bias, start + 1.0, atol=1e-6)
    assert not ema.model.output.bias.requires_grad

    cnn = build_detector(ModelConfig(channels=(2,)))
    cnn_ema = WeightEMA(cnn, decay=0.9)
    cnn.blocks[0].bn1.num_batches_tracked.fill_(7)
    cnn_ema.update(cnn)
    assert cnn_ema.model.blocks[0].bn1.num_batches_tracked.item() == 7
    # The decay ramps up from 2/11: the second update keeps only 3/12 of the average.
    weight = cnn.head[0].weight.detach().clone()
    with torch.no_grad():
        cnn.head[0].weight.add_(1.0)
    cnn_ema.update(cnn)
    assert torch.allclose(cnn_ema.model.head[0].weight, weight + (1 - 3 / 12), atol=1e-6)


def test_ensemble_trains_each_seed_and_averages_their_logits(toy_manifest: Path, tmp_path: Path) -> None:
    import torch

    from model.checkpoint import load_checkpoint

    config = TrainConfig(
        manifest=str(toy_manifest), out=str(tmp_path / "ens"), epochs=2, patience=2, batch_size=8,
        cache_dir=str(tmp_path / "cache"), threads=2, members=2, seed=4, evaluate=False, vocoded_copies=0,
    )  # fmt: skip
    metadata = train(config)
    assert [m["seed"] for m in metadata["members"]] == [4, 5]
    assert metadata["threshold"] == CALIBRATED_THRESHOLD
    ensemble, _, saved = load_checkpoint(tmp_path / "ens")
    assert saved["threshold"] == metadata["threshold"] and saved["calibration"] == metadata["calibration"]
    member_calibrations = [
        load_checkpoint(tmp_path / "ens" / "members" / f"seed-{seed}")[2]["calibration"] for seed in (4, 5)
    ]
    assert metadata["calibration"] not in member_calibrations  # fit again for the averaged logits
    singles = [load_checkpoint(tmp_path / "ens" / "members" / f"seed-{seed}")[0] for seed in (4, 5)]
    features, lengths = torch.randn(3, 80, 150), torch.tensor([150, 120, 40])
    with torch.no_grad():
        expected = torch.stack([s.logits(features, lengths) for s in singles]).mean(dim=0)
        torch.testing.assert_close(ensemble.logits(features, lengths), expected)
        assert not torch.allclose(singles[0].logits(features, lengths), singles[1].logits(features, lengths))
    history = json.loads((tmp_path / "ens" / "history.json").read_text())
    assert set(history) == {"seed-4", "seed-5"} and (tmp_path / "ens" / "training_curves.png").is_file()

    # Finished members of the same recipe are reused (an interrupted ensemble resumes); another recipe retrains.
    member_weights = tmp_path / "ens" / "members" / "seed-4" / "weights.pt"
    stamp = member_weights.stat().st_mtime_ns
    assert train(dataclasses.replace(config, threads=1))["dev_eer"] == metadata["dev_eer"]
    assert member_weights.stat().st_mtime_ns == stamp
    # A run recorded before an option existed counts as having used that option's default.
    metadata_file = tmp_path / "ens" / "members" / "seed-4" / "metadata.json"
    recorded = json.loads(metadata_file.read_text())
    del recorded["train_config"]["warp_augment"]
    del recorded["train_config"]["vocoded_copies"]  # ... or, for vocoded copies, none (its default is 1)
    metadata_file.write_text(json.dumps(recorded))
    train(config)
    assert member_weights.stat().st_mtime_ns == stamp
    train(dataclasses.replace(config, learning_rate=1e-3))
    assert member_weights.stat().st_mtime_ns != stamp

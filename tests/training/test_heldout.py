"""The held-out protocol end to end on a toy set of two fake and two real families: report, table, codecs, resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.checkpoint import WEIGHTS_FILE
from tests.training.conftest import toy_clip
from training.folds import speaker_key
from training.heldout import CONDITIONS, DEFAULT_MODELS, RESULT_FILE, TRAINED_ON, main, model_epochs, parse_args
from training.manifest import ManifestRow, read_manifest, write_manifest

RECIPE = DEFAULT_MODELS[0]

REAL_FAMILIES = ("src-a", "src-b")
SPLIT_OF_INDEX = ("train", "train", "train", "dev", "dev", "test")  # speaker index -> split
CLIPS_PER_SPEAKER = 3
FOLDS = ("fake-buzz", "fake-griffin-lim", "real-src-a", "real-src-b")


def hum_clip(index: int) -> np.ndarray:
    """A second fake family: the voice under a low sawtooth hum instead of a high buzz."""
    clip = toy_clip(index, real=True)
    t = np.arange(len(clip)) / 16_000
    return (0.6 * clip + 0.3 * (2 * ((700 * t) % 1.0) - 1)).astype(np.float32)


@pytest.fixture(scope="module")
def family_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per real clip a buzz fake (voices of its own) and a 'griffin-lim' fake in the real speaker's name."""
    root = tmp_path_factory.mktemp("families")
    (root / "clips").mkdir()
    rows, index = [], 0
    for family in REAL_FAMILIES:
        for speaker_index, split in enumerate(SPLIT_OF_INDEX):
            speaker = f"{family}-{speaker_index}"
            for clip in range(CLIPS_PER_SPEAKER):
                index += 1
                group = f"g{speaker_index}"  # both real families share each group, as languages do
                for kind, audio, attack, voice, fam in (
                    ("real", toy_clip(2 * index, True), "bonafide", speaker, family),
                    ("fake", toy_clip(2 * index + 1, False), "buzz", f"buzz-voice-{clip}", "buzz"),
                    ("fake", hum_clip(2 * index + 1), "griffin-lim", speaker, "griffin-lim"),
                ):
                    path = root / "clips" / f"{kind}-{fam}-{index:03d}.flac"
                    sf.write(path, audio, 16_000)
                    source = family if kind == "real" else "toy-tts"
                    extras = {"family": fam, "group": group}
                    rows.append(ManifestRow(path, kind, split, attack, voice, source, extras))
    write_manifest(rows, root / "manifest.csv")
    return root / "manifest.csv"


def arguments(manifest: Path, work: Path, *extra: str) -> list[str]:
    cache = work / "cache"
    return [
        "--manifest", str(manifest), "--out", str(work / "report" / "heldout.json"), "--work-dir", str(work / "folds"),
        "--epochs", "1", "--min-eval-clips", "4", "--max-eval-clips", "20", "--threads", "2", "--device", "cpu",
        "--cache-dir", str(cache / "features"), "--vocoded-dir", str(cache / "vocoded"),
        "--mp3-cache", str(cache / "mp3"), "--telephone-cache", str(cache / "telephone"), "--set", "batch_size=8",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def protocol_run(family_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("heldout")
    return work, main(arguments(family_manifest, work))


def test_report_has_every_fold_model_and_condition(protocol_run: tuple[Path, dict]) -> None:
    work, report = protocol_run
    saved = json.loads((work / "report" / "heldout.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert [f["name"] for f in saved["folds"]] == list(FOLDS)
    assert saved["primary_model"] == RECIPE and saved["baseline_models"] == ["improved"]
    assert saved["recipe"]["architecture"] == RECIPE and saved["recipe"]["members"] == 1
    assert saved["recipe"]["epochs"] == 1 and saved["recipe"]["batch_size"] == 8
    assert saved["models"]["improved"]["recipe"]["architecture"] == "improved"
    assert saved["command"].startswith("python -m training.heldout --manifest")
    assert saved["wall_seconds"] > 0 and saved["skipped"] == []
    for fold in saved["folds"]:
        assert fold["kind"] in ("fake", "real") and fold["name"] == f"{fold['kind']}-{fold['held_out']}"
        assert fold["counts"]["eval"]["real"] >= 4 and fold["counts"]["eval"]["fake"] >= 4
        for model in (RECIPE, "improved"):
            assert set(fold["models"][model]["eer"]) == set(CONDITIONS) == {"clean", "mp3_64k", "telephone"}
            assert all(0 <= e <= 1 for e in fold["models"][model]["eer"].values())
            for metric in ("auc", "ece", "brier"):
                assert set(fold["models"][model][metric]) == set(CONDITIONS)
                assert all(0 <= v <= 1 for v in fold["models"][model][metric].values())


def test_mean_and_worst_are_fractions_over_the_folds(protocol_run: tuple[Path, dict]) -> None:
    _, report = protocol_run
    for model in (RECIPE, "improved"):
        for condition in CONDITIONS:
            eers = [f["models"][model]["eer"][condition] for f in report["folds"]]
            summary = report["models"][model]["conditions"][condition]
            assert summary["mean_eer"] == pytest.approx(np.mean(eers))
            assert summary["worst_eer"] == max(eers)
            assert report["folds"][[f["name"] for f in report["folds"]].index(summary["worst_fold"])]["models"][model][
                "eer"
            ][condition] == max(eers)
    clean = [f["models"][RECIPE]["eer"]["clean"] for f in report["folds"]]
    assert report["mean_eer"] == pytest.approx(np.mean(clean)) and report["worst_eer"] == max(clean)
    assert 0 <= report["mean_eer"] <= report["worst_eer"] <= 1
    assert report["baseline"]["model"] == "improved"
    assert report["baseline"]["mean_eer"] == report["models"]["improved"]["mean_eer"]
    # The toy families are separable: the recipe learns something that carries over in most folds.
    assert report["mean_eer"] < 0.5


def test_markdown_table_lists_folds_mean_and_worst(protocol_run: tuple[Path, dict]) -> None:
    work, report = protocol_run
    table = (work / "report" / "heldout.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[2:] == [
        "recipe clean", "recipe MP3", "recipe tel", "baseline clean", "baseline MP3", "baseline tel",
    ]  # fmt: skip
    body = lines[2:]
    assert len(body) == len(FOLDS) + 2
    for fold, line in zip(report["folds"], body, strict=False):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == f"`{fold['name']}`"
        assert cells[2] == f"{100 * fold['models'][RECIPE]['eer']['clean']:.1f}"
        assert cells[7] == f"{100 * fold['models']['improved']['eer']['telephone']:.1f}"
    mean, worst = ([c.strip() for c in line.strip("|").split("|")] for line in body[-2:])
    assert mean[0] == "**mean**" and mean[2] == f"**{100 * report['mean_eer']:.1f}**"
    assert worst[0] == "**worst**" and worst[2] == f"**{100 * report['worst_eer']:.1f}**"


def test_telephone_and_mp3_copies_are_what_they_claim(protocol_run: tuple[Path, dict]) -> None:
    work, _ = protocol_run
    telephone = sorted((work / "cache" / "telephone").glob("*.wav"))
    mp3 = sorted((work / "cache" / "mp3").glob("*.mp3"))
    distinct_eval = {r.path for f in FOLDS for r in read_manifest(work / "folds" / f / "eval.csv")}
    assert len(telephone) == len(mp3) == len(distinct_eval)
    for path in telephone[:5]:
        info = sf.info(str(path))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "ULAW", 8000, 1)
    for path in mp3[:5]:
        assert sf.info(str(path)).format == "MP3"
    assert not list((work / "cache" / "telephone").glob("*.partial*"))


def test_folds_on_disk_keep_the_guarantees(protocol_run: tuple[Path, dict], family_manifest: Path) -> None:
    work, report = protocol_run
    test_paths = {r.path for r in read_manifest(family_manifest) if r.split == "test"}
    for fold in report["folds"]:
        trained = read_manifest(work / "folds" / fold["name"] / "manifest.csv")
        evaluated = read_manifest(work / "folds" / fold["name"] / "eval.csv")
        assert not {r.path for r in (*trained, *evaluated)} & test_paths
        training = [r for r in trained if r.split == "train"]
        held = [r for r in evaluated if r.is_real == (fold["kind"] == "real")]
        assert {r.extras["family"] for r in held} == {fold["held_out"]}
        assert fold["held_out"] not in {r.extras["family"] for r in training if r.is_real == (fold["kind"] == "real")}
        assert not {speaker_key(r) for r in held} & {speaker_key(r) for r in training}
        metadata = json.loads((work / "folds" / fold["name"] / RECIPE / "metadata.json").read_text())
        # Vocoded copies (Griffin-Lim) are trained on everywhere except where Griffin-Lim is held out.
        assert metadata["train_config"]["vocoded_copies"] == (0 if fold["name"] == "fake-griffin-lim" else 1)
        assert metadata["train_config"]["members"] == 1 and metadata["train_config"]["epochs"] == 1
    assert report["settings"]["vocoded_copies_off_in"] == ["fake-griffin-lim"]


def test_a_rerun_reuses_finished_folds_and_redoes_unfinished_ones(
    protocol_run: tuple[Path, dict], family_manifest: Path
) -> None:
    work, first = protocol_run
    folds = work / "folds"
    weights = {(f, m): (folds / f / m / WEIGHTS_FILE).stat().st_mtime_ns for f in FOLDS for m in (RECIPE, "improved")}
    # As if the run had been killed while training real-src-a's baseline and before scoring real-src-b's.
    (folds / "real-src-a" / "improved" / TRAINED_ON).unlink()
    (folds / "real-src-b" / RECIPE / RESULT_FILE).unlink()
    report = main(arguments(family_manifest, work, "--folds", "real-src-a,real-src-b,fake-buzz"))
    assert [f["name"] for f in report["folds"]] == ["fake-buzz", "real-src-a", "real-src-b"]
    reused = {(f["name"], m): f["models"][m]["reused"] for f in report["folds"] for m in (RECIPE, "improved")}
    assert reused == {
        ("fake-buzz", RECIPE): True, ("fake-buzz", "improved"): True,
        ("real-src-a", RECIPE): True, ("real-src-a", "improved"): False,
        ("real-src-b", RECIPE): False, ("real-src-b", "improved"): True,
    }  # fmt: skip
    after = {(f, m): (folds / f / m / WEIGHTS_FILE).stat().st_mtime_ns for f in FOLDS for m in (RECIPE, "improved")}
    assert {key for key in weights if weights[key] != after[key]} == {("real-src-a", "improved")}
    by_name = {f["name"]: f for f in first["folds"]}
    for fold in report["folds"]:
        if fold["name"] != "real-src-a":
            assert fold["models"][RECIPE]["eer"] == by_name[fold["name"]]["models"][RECIPE]["eer"]


def test_a_changed_fold_is_retrained(
    protocol_run: tuple[Path, dict], family_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = protocol_run
    copied = tmp_path / "work"
    shutil.copytree(work / "folds" / "fake-buzz", copied / "folds" / "fake-buzz")
    shutil.copytree(work / "cache", copied / "cache")
    rows = read_manifest(family_manifest)
    dropped = next(r for r in rows if r.split == "train" and r.is_real)
    (tmp_path / "data").mkdir()
    for row in rows:  # a dataset named by a path relative to the working directory
        shutil.copy(row.path, tmp_path / "data" / row.path.name)
    write_manifest([dataclasses.replace(r, path=tmp_path / "data" / r.path.name) for r in rows if r is not dropped],
                   tmp_path / "data" / "manifest.csv")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    report = main(arguments(Path("data/manifest.csv"), copied, "--folds", "fake-buzz", "--models", "improved"))
    assert report["folds"][0]["models"]["improved"]["reused"] is False
    before = json.loads((work / "report" / "heldout.json").read_text())["folds"][0]
    assert before["name"] == "fake-buzz"
    assert report["folds"][0]["counts"]["train"]["real"] == before["counts"]["train"]["real"] - 1


def test_the_frozen_encoder_recipe_runs_a_fold_with_its_own_epoch_count(
    protocol_run: tuple[Path, dict], family_manifest: Path
) -> None:
    work, _ = protocol_run
    argv = arguments(family_manifest, work, "--folds", "fake-buzz", "--models", "whisper_probe,improved")
    del argv[argv.index("--epochs") : argv.index("--epochs") + 2]  # each model's default
    argv[argv.index("--out") + 1] = str(work / "probe-report" / "heldout.json")
    argv[argv.index("--work-dir") + 1] = str(work / "probe-folds")  # the shared fixture's folds stay untouched
    report = main(argv)
    assert report["settings"]["epochs"] == {"whisper_probe": 30, "improved": 8}
    metadata = json.loads((work / "probe-folds" / "fake-buzz" / "whisper_probe" / "metadata.json").read_text())
    assert metadata["train_config"]["epochs"] == 30 and metadata["architecture"] == "whisper_probe"
    assert all(0 <= e <= 1 for e in report["folds"][0]["models"]["whisper_probe"]["eer"].values())
    table = (work / "probe-report" / "heldout.md").read_text()
    assert "`whisper_probe` 30 epochs, `improved` 8 epochs" in table


def test_cli_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--manifest", "--out", "--models", "--epochs", "--folds", "--threads", "--work-dir"):
        assert flag in out
    args = parse_args([])
    assert args.models == [RECIPE, "improved"] and args.epochs is None and args.patience == 0
    # heads on cached embeddings train 30 epochs, the rest 8
    assert [model_epochs(m, args) for m in (*args.models, "whisper_probe", "cnn")] == [30, 8, 30, 8]
    assert model_epochs("whisper_probe", parse_args(["--epochs", "3"])) == 3
    assert (args.min_eval_clips, args.max_eval_clips) == (40, 500)
    assert str(args.out) == "artifacts/heldout/heldout.json"
    assert parse_args(["--set", "eq_augment_db=6", "--set", "spec_augment=false"]).overrides == {
        "eq_augment_db": 6.0, "spec_augment": False,
    }  # fmt: skip
    for bad in (["--models", "cnn,transformer"], ["--set", "epochs=3"], ["--set", "nonsense=1"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(bad)
        assert exit_info.value.code == 2


def test_unknown_fold_names_are_refused(family_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown fold"):
        main(arguments(family_manifest, tmp_path, "--folds", "fake-nothing"))

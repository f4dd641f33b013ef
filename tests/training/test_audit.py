"""The shortcut audit: each planted cue is flagged, a balanced set is not, the cache spares the audio."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import resample
from model.signals import speech_like
from training import audit as audit_module
from training.audit import (
    ALL,
    AUC_LIMIT,
    CACHE_NAME,
    audit,
    audit_table,
    clip_features,
    leave_one_out_scores,
    main,
    median_pitch,
    score_features,
    speaking_rate,
)
from training.manifest import ManifestRow, write_manifest
from training.metrics import roc_auc

RATE = 16_000
SPLIT_CYCLE = ("train", "dev", "test")


def make_clip(
    rng: np.random.Generator,
    seconds: float = 0.9,
    lead: float = 0.1,
    trail: float = 0.1,
    band_limited: bool = False,
    rate: int = RATE,
) -> np.ndarray:
    """Speech-like sound with a broadband noise share, surrounded by silence with a faint noise floor."""
    speech = speech_like(seconds, rate, int(rng.integers(1 << 30))).astype(np.float64)
    speech = speech + 0.04 * rng.standard_normal(speech.size)
    if band_limited:
        speech = resample(resample(speech.astype(np.float32), rate, 8_000), 8_000, rate).astype(np.float64)
    speech *= 10 ** (rng.uniform(-6, 0) / 20)
    clip = np.concatenate([np.zeros(round(lead * rate)), speech, np.zeros(round(trail * rate))])
    return (clip + 10 ** (-75 / 20) * rng.standard_normal(clip.size)).astype(np.float32)


ClipMaker = Callable[[np.random.Generator, bool], tuple[np.ndarray, int]]


def write_set(root: Path, count: int, maker: ClipMaker, seed: int = 0, extras: bool = False) -> list[ManifestRow]:
    """`count` clips alternating real/fake, splits cycling per pair; `maker(rng, real)` -> (samples, rate)."""
    rng = np.random.default_rng(seed)
    rows = []
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        real = index % 2 == 0
        samples, rate = maker(rng, real)
        path = root / f"{index:04d}.flac"
        sf.write(path, samples, rate)
        columns = {
            "channel": str(rng.choice(["none", "mp3-32", "opus-16", "band8k"])),
            "language": str(rng.choice(["en", "ja"])),
        }
        rows.append(
            ManifestRow(
                path,
                "real" if real else "fake",
                SPLIT_CYCLE[(index // 2) % len(SPLIT_CYCLE)],
                "bonafide" if real else "tts",
                extras=columns if extras else {},
            )
        )
    return rows


def flagged_features(result: dict) -> set[str]:
    return {f["feature"] for f in result["flagged"]}


# --- single features ---------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [120.0, 220.0])
def test_pitch_of_a_harmonic_tone(f0: float) -> None:
    t = np.arange(RATE) / RATE
    tone = sum(0.8**k * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 9))
    assert median_pitch(0.1 * tone) == pytest.approx(f0, rel=0.05)


def test_no_pitch_for_noise() -> None:
    rng = np.random.default_rng(1)
    assert np.isnan(median_pitch(0.1 * rng.standard_normal(RATE)))
    features = audit_module.signal_features(0.1 * rng.standard_normal(RATE))
    assert np.isnan(features["pitch"])
    assert features["voiced_fraction"] < 0.1


def test_speaking_rate_follows_the_modulation() -> None:
    t = np.arange(3 * RATE) / RATE
    carrier = 0.2 * sum(np.sin(2 * np.pi * k * 150 * t) for k in range(1, 5))

    def modulated(hz: float) -> np.ndarray:
        return carrier * (0.5 * (1 - np.cos(2 * np.pi * hz * t))) ** 2

    slow, fast = speaking_rate(modulated(2.0)), speaking_rate(modulated(5.0))
    assert slow < fast
    assert slow == pytest.approx(2.0, rel=0.2)
    assert fast == pytest.approx(5.0, rel=0.2)


def test_clip_features_of_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "clip.wav"
    sf.write(path, make_clip(rng, seconds=1.0, lead=0.3, trail=0.5, rate=24_000), 24_000)
    features = clip_features(path)
    assert set(features) == set(audit_module.NUMERIC_FEATURES)
    assert features["sample_rate"] == 24_000
    assert features["duration"] == pytest.approx(1.8, abs=0.01)
    assert features["leading_silence"] == pytest.approx(0.3, abs=0.05)
    assert features["trailing_silence"] == pytest.approx(0.5, abs=0.05)
    assert 100 < features["pitch"] < 200  # speech_like wanders between about 85 and 175 Hz
    assert features["bandwidth"] > 5_000  # broadband noise share
    assert -40 < features["level"] < -5


# --- planted shortcuts -------------------------------------------------------------------------


def test_longer_fakes_flag_duration(tmp_path: Path) -> None:
    def maker(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
        return make_clip(rng, seconds=rng.uniform(0.5, 0.8) if real else rng.uniform(1.0, 1.3)), RATE

    result = audit(write_set(tmp_path, 66, maker), quiet=True)
    for split in (*SPLIT_CYCLE, ALL):
        assert result["splits"][split]["duration"]["auc"] > 0.95
        assert result["splits"][split]["duration"]["flagged"]
    assert result["splits"][ALL]["duration"]["raw_auc"] < 0.05  # real clips are the shorter ones
    assert result["splits"][ALL]["duration"]["n_real"] == 33
    assert {"split": ALL, "feature": "duration", "auc": result["splits"][ALL]["duration"]["auc"]} in result["flagged"]
    table = audit_table(result)
    duration_row = next(line for line in table.splitlines() if line.startswith("| duration"))
    assert duration_row.count("⚠") == 4


def test_leading_silence_of_fakes_is_flagged(tmp_path: Path) -> None:
    def maker(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
        lead = rng.uniform(0.05, 0.2) if real else rng.uniform(0.4, 0.6)
        return make_clip(rng, lead=lead, trail=0.7 - lead), RATE  # same duration: only the lead differs

    result = audit(write_set(tmp_path, 66, maker), quiet=True)
    assert result["splits"][ALL]["leading_silence"]["auc"] > 0.95
    assert "leading_silence" in flagged_features(result)


def test_band_limited_fakes_flag_bandwidth(tmp_path: Path) -> None:
    def maker(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
        return make_clip(rng, band_limited=not real), RATE

    result = audit(write_set(tmp_path, 66, maker), quiet=True)
    assert result["splits"][ALL]["bandwidth"]["auc"] > 0.95
    assert result["splits"][ALL]["bandwidth"]["raw_auc"] > 0.95  # real clips are the wider ones
    assert "bandwidth" in flagged_features(result)
    assert "duration" not in flagged_features(result)


def test_balanced_random_set_flags_nothing(tmp_path: Path) -> None:
    def maker(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
        rate = int(rng.choice([16_000, 24_000]))
        clip = make_clip(
            rng, rng.uniform(0.4, 0.9), rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.random() < 0.3, rate
        )
        return clip, rate

    result = audit(write_set(tmp_path, 480, maker, seed=5, extras=True), quiet=True)
    assert result["categorical"] == ["channel", "language"]
    assert result["flagged"] == []
    aucs = [cell["auc"] for cells in result["splits"].values() for cell in cells.values()]
    assert all(auc is not None and 0.5 <= auc < AUC_LIMIT for auc in aucs)
    assert "Nothing flagged." in audit_table(result)


# --- categorical columns -----------------------------------------------------------------------


def rows_with(labels: np.ndarray, categories: list[str]) -> list[ManifestRow]:
    return [
        ManifestRow(Path(f"{i}.flac"), "real" if real else "fake", extras={"channel": category})
        for i, (real, category) in enumerate(zip(labels, categories, strict=True))
    ]


def test_unrelated_small_categories_are_not_predictive() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.5
    categories = [f"c{c}" for c in rng.integers(0, 150, 400)]  # about 2.7 clips per category
    loo = roc_auc(leave_one_out_scores(categories, labels), labels)
    assert abs(loo - 0.5) < 0.08
    # the in-sample real fraction of such small categories would look like a strong cue
    fraction = {c: np.mean([r for r, k in zip(labels, categories, strict=True) if k == c]) for c in set(categories)}
    assert roc_auc([fraction[c] for c in categories], labels) > 0.75
    cells = score_features([{}] * 400, rows_with(labels, categories), ["channel"])
    assert not cells["channel"]["flagged"]
    assert cells["duration"]["auc"] is None  # no numeric values: reported as missing, never flagged


def test_categories_balanced_by_design_are_not_flagged() -> None:
    """Every category holds one real and one fake: leave-one-out alone would give AUC 0 (1 - AUC = 1)."""
    labels = np.tile([True, False], 100)
    categories = [f"pair{i // 2}" for i in range(200)]
    cell = score_features([{}] * 200, rows_with(labels, categories), ["channel"])["channel"]
    assert cell["raw_auc"] == pytest.approx(0.0)
    assert cell["auc"] == 0.5
    assert not cell["flagged"]


def test_category_equal_to_the_label_is_flagged() -> None:
    labels = np.random.default_rng(4).random(100) < 0.5
    cell = score_features([{}] * 100, rows_with(labels, ["A" if r else "B" for r in labels]), ["channel"])["channel"]
    assert cell["auc"] > 0.99
    assert cell["flagged"]


# --- cache, workers, command line --------------------------------------------------------------


def plain(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
    return make_clip(rng), RATE


def test_cache_is_reused_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = write_set(tmp_path / "clips", 24, plain)
    first = audit(rows, cache_dir=tmp_path / "cache", quiet=True)
    assert (tmp_path / "cache" / CACHE_NAME).is_file()

    def no_audio(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio was read although the features are cached")

    monkeypatch.setattr(audit_module, "decode_audio", no_audio)
    monkeypatch.setattr(audit_module.sf, "info", no_audio)
    assert audit(rows, cache_dir=tmp_path / "cache", quiet=True) == first
    sf.write(rows[0].path, make_clip(np.random.default_rng(9), seconds=0.5), RATE)  # changed: must be read again
    with pytest.raises(AssertionError, match="audio was read"):
        audit(rows, cache_dir=tmp_path / "cache", quiet=True)


def test_unreadable_clips_are_left_out(tmp_path: Path) -> None:
    rows = write_set(tmp_path, 24, plain)
    rows[0].path.write_bytes(b"not audio at all")
    rows.append(ManifestRow(tmp_path / "missing.flac", "fake", "train"))
    result = audit(rows, quiet=True)
    assert set(result["unreadable"]) == {str(rows[0].path), str(tmp_path / "missing.flac")}
    assert result["clips"] == 23
    assert result["splits"][ALL]["duration"]["n_real"] == 11


def test_workers_give_the_same_features(tmp_path: Path) -> None:
    rows = write_set(tmp_path, 8, plain)
    serial = audit_module.collect_features([r.path for r in rows], quiet=True)
    parallel = audit_module.collect_features([r.path for r in rows], workers=2, quiet=True)
    assert parallel[0].keys() == serial[0].keys()
    for path, features in serial[0].items():
        assert parallel[0][path] == pytest.approx(features, nan_ok=True)


def test_cli_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def maker(rng: np.random.Generator, real: bool) -> tuple[np.ndarray, int]:
        rate = RATE if real else 24_000  # fakes come at another native rate
        return make_clip(rng, rate=rate), rate

    manifest = tmp_path / "data" / "manifest.csv"
    write_manifest(write_set(tmp_path / "data" / "clips", 60, maker, extras=True), manifest)
    out = tmp_path / "audit"
    assert main(["--manifest", str(manifest), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "audit.json").read_text())
    assert "sample_rate" in {f["feature"] for f in result["flagged"]}
    assert result["splits"][ALL]["sample_rate"]["auc"] == 1.0
    markdown = (out / "audit.md").read_text()
    assert "| sample_rate | **1.000** ⚠" in markdown
    assert "| channel (categorical) |" in markdown
    assert "sample_rate" in printed
    assert (out / CACHE_NAME).is_file()
    assert main(["--manifest", str(manifest), "--out", str(out), "--quiet", "--strict"]) == 1


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--manifest" in capsys.readouterr().out

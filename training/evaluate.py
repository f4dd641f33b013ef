"""Evaluate a checkpoint on a manifest split: `python -m training.evaluate --checkpoint artifacts/default`.

Clips are scored through model.inference.AudioDetector, the code path serving uses. The same
clips are scored again after re-encoding every one of them, real and fake alike, to MP3 at
64 kbit/s, so a detector that keyed on file format would show it here, and through a poor channel
(11 kHz MP3 at 16 kbit/s), where a user's own real recording must still be labelled real. Besides
EER, AUC and accuracy, each condition reports the share of each class given its label and how
well P(real) is calibrated (ECE over 15 bins, Brier score), with a reliability diagram beside the
ROC/DET plot.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.audio import decode_audio
from model.inference import AudioDetector
from training.codecs import MP3_BITRATE, POOR_BITRATE, POOR_RATE, reencode_mp3, reencode_poor
from training.manifest import STANDARD_COLUMNS, ManifestRow, read_manifest, relative_path
from training.metrics import eer_by_group, summarize
from training.plots import plot_reliability, plot_roc_det, plot_score_histograms

CLIPS_PER_BATCH = 32
GROUP_COLUMNS = ("attack", "source")
METRICS_FILE = "metrics.json"
SCORES_FILE = "scores.csv"
DEFAULT_MP3_CACHE = "data/cache/mp3"
POOR_CONDITION = f"mp3_{POOR_BITRATE}_{POOR_RATE // 1000}k"


def score_paths(detector: AudioDetector, paths: Sequence[Path], description: str) -> np.ndarray:
    scores: list[float] = []
    progress = tqdm(total=len(paths), desc=description, unit="clip", leave=False)
    for start in range(0, len(paths), CLIPS_PER_BATCH):
        chunk = paths[start : start + CLIPS_PER_BATCH]
        results = detector.score_waveforms([decode_audio(p) for p in chunk])
        scores.extend(r.probability_real for r in results)
        progress.update(len(chunk))
    progress.close()
    return np.asarray(scores)


def condition_report(rows: Sequence[ManifestRow], scores: np.ndarray, threshold: float) -> dict:
    """Overall metrics plus EER per attack, per source and per extra column (e.g. codec)."""
    is_real = np.asarray([r.is_real for r in rows])
    report = summarize(scores, is_real, threshold)
    extra_columns = sorted({k for r in rows for k in r.extras} - set(STANDARD_COLUMNS))
    for column in (*GROUP_COLUMNS, *extra_columns):
        values = [r.column(column) for r in rows]
        if any(values):
            report[f"eer_by_{column}"] = eer_by_group(scores, is_real, values)
    return report


def write_scores(rows: Sequence[ManifestRow], conditions: dict[str, np.ndarray], manifest: Path, path: Path) -> None:
    """One line per clip with every condition's P(real), so errors can be traced to files.

    Paths are as in the manifest (relative to its folder), so the file means the same anywhere.
    """
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "attack", "source", *conditions])
        for index, row in enumerate(rows):
            scores = (f"{s[index]:.6f}" for s in conditions.values())
            writer.writerow([relative_path(row.path, manifest.parent), row.label, row.attack, row.source, *scores])


def evaluate_checkpoint(
    checkpoint: Path,
    manifest: Path,
    split: str = "test",
    out_dir: Path | None = None,
    mp3: bool = True,
    mp3_cache: Path = Path(DEFAULT_MP3_CACHE),
) -> dict:
    detector = AudioDetector.from_checkpoint(checkpoint)
    rows = [r for r in read_manifest(manifest) if r.split == split] if split else read_manifest(manifest)
    if not rows:
        raise SystemExit(f"{manifest}: no rows in split {split!r}")
    paths = [r.path for r in rows]
    conditions = {"clean": score_paths(detector, paths, f"scoring {split}")}
    if mp3:
        encoded = [reencode_mp3(p, mp3_cache) for p in tqdm(paths, desc="MP3 re-encoding", unit="clip", leave=False)]
        conditions[f"mp3_{MP3_BITRATE}"] = score_paths(detector, encoded, f"scoring {split} as MP3")
        poor = [reencode_poor(p, mp3_cache) for p in tqdm(paths, desc="poor-channel copies", unit="clip", leave=False)]
        conditions[POOR_CONDITION] = score_paths(detector, poor, f"scoring {split} through the poor channel")

    is_real = [r.is_real for r in rows]
    results = {
        "checkpoint": str(checkpoint),
        "manifest": str(manifest),
        "split": split,
        "threshold": detector.threshold,
        "calibration": detector.calibration.to_dict(),
        "conditions": {name: condition_report(rows, s, detector.threshold) for name, s in conditions.items()},
    }
    out_dir = Path(out_dir or checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    write_scores(rows, conditions, manifest, out_dir / SCORES_FILE)
    score_sets = {name: (s, is_real) for name, s in conditions.items()}
    plot_roc_det(score_sets, out_dir / "roc_det.png")
    plot_reliability(score_sets, out_dir / "reliability.png")
    plot_score_histograms(score_sets, detector.threshold, out_dir / "score_histograms.png")
    print_summary(results)
    return results


def print_summary(results: dict) -> None:
    calibration = results["calibration"]
    print(
        f"{results['split']} split, threshold {results['threshold']:.3f}, "
        f"calibration P(real) = sigmoid({calibration['scale']:.4g} * logit + {calibration['bias']:.4g})"
    )
    print(
        f"{'condition':<14} {'clips':>6} {'EER':>7} {'AUC':>7} {'accuracy':>9} {'real→real':>10} {'fake→fake':>10} "
        f"{'ECE':>7} {'Brier':>7}"
    )
    for name, r in results["conditions"].items():
        print(
            f"{name:<14} {r['count']:>6} {r['eer']:>7.2%} {r['auc']:>7.4f} {r['accuracy']:>9.2%} "
            f"{share(r['real_labelled_real']):>10} {share(r['fake_labelled_fake']):>10} "
            f"{r['ece']:>7.4f} {r['brier']:>7.4f}"
        )
    for name, report in results["conditions"].items():
        for key, groups in report.items():
            if key.startswith("eer_by_") and groups:
                cells = ", ".join(f"{group} {eer:.1%}" for group, eer in groups.items())
                print(f"  {name} {key.removeprefix('eer_')}: {cells}")


def share(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=(
            "EER, ROC AUC, accuracy and calibration (ECE, Brier) of a checkpoint on a manifest split, "
            "clean and MP3 re-encoded."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("artifacts/default"), help="checkpoint folder")
    parser.add_argument("--manifest", type=Path, default=Path("data/embedded/manifest.csv"), help="manifest CSV")
    parser.add_argument("--split", default="test", help="split to evaluate ('' = every row)")
    parser.add_argument("--out", type=Path, default=None, help="where to write metrics.json, scores.csv and plots")
    parser.add_argument(
        "--mp3", action=argparse.BooleanOptionalAction, default=True, help="also score MP3 and poor-channel copies"
    )
    parser.add_argument(
        "--mp3-cache", type=Path, default=Path(DEFAULT_MP3_CACHE), help="cache of the re-encoded copies"
    )
    args = parser.parse_args(argv)
    evaluate_checkpoint(args.checkpoint, args.manifest, args.split, args.out, args.mp3, args.mp3_cache)


if __name__ == "__main__":
    main()

"""How EER falls with ensemble size: `python -m training.ensemble_size --run artifacts/latest`.

One ensemble's EER is a single draw: on a split of 300 clips per class it moves in steps of a
third of a percent, and which seeds happen to be averaged moves it by more than that. This
scores every member of a run once, then averages the members of many subsets of each size
the way the ensemble does (mean logit per window, mean probability over a clip's windows),
and reports the mean, spread and range of EER per size, with a plot, so the choice of
`--members` rests on an expectation rather than on one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm import tqdm

from model.audio import decode_audio
from model.calibration import Calibration
from model.checkpoint import load_checkpoint
from model.features import AudioFeatureExtractor
from model.inference import AudioDetector, clip_windows
from training.manifest import read_manifest
from training.metrics import equal_error_rate
from training.plots import DPI
from training.train import MEMBERS_DIR

DEFAULT_SPLITS = ("dev", "test")
DEFAULT_SAMPLES = 60  # subsets per size when there are more combinations than this
DEFAULT_TARGET = 0.02  # the EER the project aims at; the report gives the share of subsets at or below it
RESULT_FILE = "ensemble_size.json"
PLOT_FILE = "ensemble_size.png"

MemberLogits = list[list[np.ndarray]]  # [member][clip] -> logits of the clip's windows


def member_dirs(run: Path) -> list[Path]:
    """The run's member checkpoints, by seed."""
    dirs = sorted((run / MEMBERS_DIR).glob("seed-*"), key=lambda d: int(d.name.split("-")[1]))
    if len(dirs) < 2:
        raise SystemExit(f"{run}: needs at least two members under {MEMBERS_DIR}/ (train with --members N)")
    return dirs


def clip_features(
    paths: Sequence[Path], extractor: AudioFeatureExtractor, description: str
) -> list[list[torch.Tensor]]:
    """Each clip's window features, through the extractor serving uses."""
    return [
        [f for f, _ in clip_windows(decode_audio(p), extractor)] for p in tqdm(paths, desc=description, unit="clip")
    ]


def window_logits(directory: Path, clips: list[list[torch.Tensor]]) -> list[np.ndarray]:
    """One member's logit for every window of every clip, grouped by clip."""
    flat = [window for windows in clips for window in windows]
    logits = AudioDetector.from_checkpoint(directory).window_logits(flat).numpy()
    ends = np.cumsum([len(windows) for windows in clips])
    return np.split(logits, ends[:-1])


def subset_scores(logits: MemberLogits, subset: Sequence[int], calibration: Calibration | None = None) -> np.ndarray:
    """P(real) per clip for the ensemble of `subset`: mean logit per window, mean probability per clip.

    Subsets have no calibration of their own (only the saved ensemble is fit on dev), so by default
    none is applied; EER depends on the ranking, which a calibration leaves almost unchanged.
    """
    calibration = calibration or Calibration()
    clips = len(logits[0])
    averaged = (np.mean([logits[m][c] for m in subset], axis=0) for c in range(clips))
    return np.asarray([float(np.mean(calibration.probabilities(a))) for a in averaged])


def subsets(members: int, size: int, samples: int, rng: random.Random) -> list[tuple[int, ...]]:
    combos = list(itertools.combinations(range(members), size))
    return combos if len(combos) <= samples else rng.sample(combos, samples)


def size_curve(logits: MemberLogits, is_real: np.ndarray, samples: int, target: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    curve = []
    for size in range(1, len(logits) + 1):
        eers = np.asarray(
            [equal_error_rate(subset_scores(logits, s), is_real)[0] for s in subsets(len(logits), size, samples, rng)]
        )
        curve.append(
            {
                "members": size,
                "subsets": len(eers),
                "eer_mean": float(eers.mean()),
                "eer_std": float(eers.std()),
                "eer_min": float(eers.min()),
                "eer_max": float(eers.max()),
                "share_at_or_below_target": float(np.mean(eers <= target)),
            }
        )
    return curve


def plot_curves(curves: dict[str, list[dict]], target: float, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for index, (split, curve) in enumerate(curves.items()):
        sizes = [p["members"] for p in curve]
        mean = np.asarray([100 * p["eer_mean"] for p in curve])
        std = np.asarray([100 * p["eer_std"] for p in curve])
        axis.plot(sizes, mean, marker="o", color=f"C{index}", label=f"{split}: mean over subsets")
        axis.fill_between(sizes, mean - std, mean + std, color=f"C{index}", alpha=0.2)
        axis.plot(
            sizes, [100 * p["eer_max"] for p in curve], color=f"C{index}", linestyle=":", label=f"{split}: worst subset"
        )
    axis.axhline(100 * target, color="grey", linestyle="--", label=f"target {100 * target:g} %")
    axis.set(xlabel="members averaged", ylabel="EER (%)", title="EER by ensemble size (band: ± 1 sd)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.ensemble_size",
        description="EER of random subsets of a run's members, by subset size (mean, spread, worst, plot).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--run", type=Path, default=Path("artifacts/latest"), help="run trained with --members N")
    parser.add_argument("--manifest", type=Path, default=Path("data/embedded/manifest.csv"), help="manifest CSV")
    parser.add_argument("--splits", default=",".join(DEFAULT_SPLITS), help="comma-separated splits to score")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="most subsets drawn per size")
    parser.add_argument(
        "--target", type=float, default=DEFAULT_TARGET, help="EER target (fraction) to count subsets against"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for drawing subsets")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder for {RESULT_FILE} and {PLOT_FILE} (default: the run)"
    )
    args = parser.parse_args(argv)

    dirs = member_dirs(args.run)
    _, feature_config, _ = load_checkpoint(dirs[0])
    extractor = AudioFeatureExtractor(feature_config)
    rows = read_manifest(args.manifest)
    curves = {}
    for split in args.splits.split(","):
        split_rows = [r for r in rows if r.split == split]
        if not split_rows:
            raise SystemExit(f"{args.manifest}: no rows with split={split}")
        clips = clip_features([r.path for r in split_rows], extractor, f"features of {split}")
        logits = [window_logits(d, clips) for d in tqdm(dirs, desc=f"members on {split}", unit="member")]
        is_real = np.asarray([r.is_real for r in split_rows])
        curves[split] = size_curve(logits, is_real, args.samples, args.target, args.seed)
        for point in curves[split]:
            print(
                f"{split:5s} {point['members']:2d} members ({point['subsets']:3d} subsets): EER mean "
                f"{point['eer_mean']:.2%} ± {point['eer_std']:.2%}, worst {point['eer_max']:.2%}, "
                f"at or below {args.target:.0%}: {point['share_at_or_below_target']:.0%}"
            )
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    report = {"run": str(args.run), "members": [d.name for d in dirs], "target": args.target, "curves": curves}
    (out / RESULT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    plot_curves(curves, args.target, out / PLOT_FILE)
    print(f"wrote {out / RESULT_FILE} and {out / PLOT_FILE}")


if __name__ == "__main__":
    main()

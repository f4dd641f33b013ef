"""Shortcut audit of a manifest: can one label-irrelevant property of a clip tell real from fake?

For every split (train, dev, test and all clips together) each feature below is used on its own
as a score, and its ROC AUC against the label is reported as max(AUC, 1 - AUC): a cue works in
either direction. A cell above AUC_LIMIT is flagged; a dataset that is free of trivial cues has
none. A detector trained on a flagged set may be learning that cue instead of synthesis.

Per-clip features, from the audio decoded by model.audio.decode_audio (16 kHz mono), on the 20 ms
frame grid of training.embedded.channel.frame_db; a frame is *active* when it is within
channel.TRIM_TOP_DB of the clip's loudest frame (the rule channel.trim_silence cuts by):

- duration: seconds of decoded audio.
- leading_silence / trailing_silence: seconds before the first / after the last active frame.
- level: RMS of the active frames in dBFS.
- bandwidth: the frequency (Hz) below which BANDWIDTH_ENERGY (99 %) of the spectral energy of the
  active frames lies (Hann-windowed 20 ms frames, 50 Hz bins, mean removed).
- sample_rate: the file's native rate (soundfile.info), before decoding.
- pitch: median f0 (Hz) of the voiced frames, by YIN (cumulative mean normalised difference) on
  PITCH_WINDOW_SECONDS windows every 20 ms, f0 in PITCH_MIN_HZ..PITCH_MAX_HZ; a frame is voiced when
  it is active and its difference dips below YIN_THRESHOLD. No pitch (NaN) with < MIN_VOICED_FRAMES.
- voiced_fraction: voiced frames / active frames.
- speaking_rate: syllable-like peaks per second of the speech span that channel.trim_silence keeps;
  a peak is a local maximum of the frame levels (smoothed over 3 frames) that is active and stands
  PEAK_PROMINENCE_DB above the deeper of the two dips that separate it from higher neighbours.

Categorical manifest columns (CATEGORICAL_COLUMNS, where present) score each clip by its category's
real fraction estimated without that clip (leave-one-out), shrunk toward 0.5 by CATEGORY_PRIOR
pseudo-clips. Leaving the clip out is what keeps small categories from predicting their own labels
by construction (a singleton would otherwise score 1 for real, 0 for fake). The score is a P(real)
estimate, so only AUC > 0.5 means the column predicts the label; leave-one-out pushes the AUC
*below* 0.5 when categories are balanced by design (each real clip sees one real fewer than its
category's fakes do), so a categorical cell reports max(AUC, 0.5), the raw value kept as `raw_auc`.

Cells with fewer than MIN_PER_CLASS clips of either class are shown but never flagged: their AUC
is mostly noise. Clips whose features NaN (e.g. no pitch) are left out of that feature's cell.
Features are cached per clip (keyed by path, size and mtime) so re-running on a large set is quick.

    python -m training.audit --manifest data/embedded/manifest.csv [--out artifacts/audit] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from model.audio import SAMPLE_RATE, AudioDecodeError, decode_audio
from training.embedded.channel import FRAME_SECONDS, SILENCE_FLOOR_DB, TRIM_TOP_DB, frame_db, trim_silence
from training.manifest import SPLITS, ManifestRow, read_manifest
from training.metrics import roc_auc

AUC_LIMIT = 0.65
MIN_PER_CLASS = 10
ALL = "all"

BANDWIDTH_ENERGY = 0.99
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 400.0
PITCH_WINDOW_SECONDS = 0.04
YIN_THRESHOLD = 0.2
MIN_VOICED_FRAMES = 3
PEAK_PROMINENCE_DB = 4.0

NUMERIC_FEATURES = (
    "duration", "leading_silence", "trailing_silence", "level", "bandwidth",
    "sample_rate", "pitch", "voiced_fraction", "speaking_rate",
)  # fmt: skip
CATEGORICAL_COLUMNS = ("channel", "language")
CATEGORY_PRIOR = 2.0

FEATURE_VERSION = 1  # bump when a definition changes: cached values of other versions are ignored
CACHE_NAME = "clip-features.json"
CACHE_SAVE_EVERY = 500
DEFAULT_OUT = Path("artifacts/audit")
START_METHOD = "spawn"
TORCH_THREADS_PER_WORKER = 1
TASKS_PER_CHUNK = 8


# --- per-clip features -------------------------------------------------------------------------


def clip_features(path: str | os.PathLike) -> dict[str, float]:
    """All NUMERIC_FEATURES of one audio file (NaN where undefined, e.g. pitch of noise)."""
    native_rate = float(sf.info(str(path)).samplerate)
    return {**signal_features(decode_audio(path)), "sample_rate": native_rate}


def signal_features(samples: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
    """The features computed from decoded samples (every NUMERIC_FEATURES entry except sample_rate)."""
    samples = np.asarray(samples, dtype=np.float64)
    duration = samples.size / rate
    levels = frame_db(samples, rate)
    active = _active(levels)
    nan = float("nan")
    if not active.any():
        return {"duration": duration, "leading_silence": duration, "trailing_silence": duration, "level": nan,
                "bandwidth": nan, "pitch": nan, "voiced_fraction": nan, "speaking_rate": nan}  # fmt: skip
    indices = np.flatnonzero(active)
    frame = FRAME_SECONDS
    pitches = frame_pitches(samples, rate, active)
    voiced = np.isfinite(pitches)
    return {
        "duration": duration,
        "leading_silence": float(indices[0] * frame),
        "trailing_silence": float(max(0.0, duration - (indices[-1] + 1) * frame)),
        "level": float(10 * np.log10(np.mean(10 ** (levels[active] / 10)))),
        "bandwidth": bandwidth(samples, rate, active),
        "pitch": float(np.median(pitches[voiced])) if voiced.sum() >= MIN_VOICED_FRAMES else nan,
        "voiced_fraction": float(voiced.sum() / active.sum()),
        "speaking_rate": speaking_rate(samples, rate),
    }


def _active(levels: np.ndarray) -> np.ndarray:
    """Frames within TRIM_TOP_DB of the loudest (the trim_silence rule); none if all is digital silence."""
    if levels.max() <= SILENCE_FLOOR_DB:
        return np.zeros(levels.shape, dtype=bool)
    return levels >= levels.max() - TRIM_TOP_DB


def _frames(samples: np.ndarray, rate: int, length: int) -> np.ndarray:
    """(frames, length): a window of `length` samples starting at each frame_db frame (zero-padded)."""
    size = max(1, round(FRAME_SECONDS * rate))
    count = max(1, -(-samples.size // size))
    padded = np.zeros((count - 1) * size + length, dtype=np.float64)
    padded[: samples.size] = samples[: padded.size]
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::size][:count]


def bandwidth(samples: np.ndarray, rate: int = SAMPLE_RATE, active: np.ndarray | None = None) -> float:
    """Hz below which BANDWIDTH_ENERGY of the active frames' spectral energy lies."""
    if active is None:
        active = _active(frame_db(samples, rate))
    size = max(1, round(FRAME_SECONDS * rate))
    frames = _frames(samples, rate, size)[active]
    if frames.size == 0:
        return float("nan")
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2).sum(axis=0)
    total = power.sum()
    if total <= 0:
        return float("nan")
    cumulative = np.cumsum(power) / total
    index = int(np.searchsorted(cumulative, BANDWIDTH_ENERGY))
    return float(np.fft.rfftfreq(size, 1 / rate)[min(index, power.size - 1)])


def frame_pitches(samples: np.ndarray, rate: int = SAMPLE_RATE, active: np.ndarray | None = None) -> np.ndarray:
    """f0 (Hz) of every frame_db frame by YIN; NaN where unvoiced or inactive."""
    samples = np.asarray(samples, dtype=np.float64)
    if active is None:
        active = _active(frame_db(samples, rate))
    min_lag = max(2, math.floor(rate / PITCH_MAX_HZ))
    max_lag = math.ceil(rate / PITCH_MIN_HZ)
    window = round(PITCH_WINDOW_SECONDS * rate)
    result = np.full(active.shape, np.nan)
    if not active.any():
        return result
    frames = _frames(samples, rate, window + max_lag + 1)[active]
    frames = frames - frames[:, :window].mean(axis=1, keepdims=True)
    # d(tau) = sum_j (x_j - x_{j+tau})^2 over j < window = E(0) + E(tau) - 2 r(tau)
    n_fft = 1 << (frames.shape[1] - 1).bit_length()
    spectrum = np.fft.rfft(frames, n_fft, axis=1)
    head = np.fft.rfft(frames[:, :window], n_fft, axis=1)
    correlation = np.fft.irfft(spectrum * np.conj(head), n_fft, axis=1)[:, : max_lag + 1]
    squares = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    energy = squares[:, lags + window] - squares[:, lags]  # E(tau): sum of x_j^2 for tau <= j < tau + window
    difference = np.maximum(energy[:, :1] + energy - 2 * correlation, 0.0)
    # cumulative mean normalised difference: d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k), d'(0) = 1
    running = np.cumsum(difference[:, 1:], axis=1)
    normalised = np.ones_like(difference)
    normalised[:, 1:] = difference[:, 1:] * lags[1:] / np.maximum(running, 1e-12)
    # the first lag in range below the threshold that is a local minimum (the bottom of the first dip)
    inner = normalised[:, min_lag:max_lag]
    rising = normalised[:, min_lag + 1 : max_lag + 1] >= inner
    candidates = (inner < YIN_THRESHOLD) & rising
    voiced = candidates.any(axis=1)
    lag = np.argmax(candidates, axis=1) + min_lag
    rows = np.arange(len(frames))
    left, centre, right = (normalised[rows, lag + k] for k in (-1, 0, 1))
    curvature = left - 2 * centre + right
    shift = np.where(curvature > 0, 0.5 * (left - right) / np.where(curvature > 0, curvature, 1.0), 0.0)
    f0 = rate / (lag + np.clip(shift, -0.5, 0.5))
    result[np.flatnonzero(active)] = np.where(voiced, f0, np.nan)
    return result


def median_pitch(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median f0 of the voiced frames, NaN when fewer than MIN_VOICED_FRAMES are voiced."""
    pitches = frame_pitches(samples, rate)
    voiced = pitches[np.isfinite(pitches)]
    return float(np.median(voiced)) if voiced.size >= MIN_VOICED_FRAMES else float("nan")


def speaking_rate(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Syllable-like energy peaks per second of the speech span channel.trim_silence keeps."""
    samples = np.asarray(samples, dtype=np.float64)
    span = trim_silence(samples, rate).size / rate
    levels = frame_db(samples, rate)
    active = _active(levels)
    if span <= 0 or not active.any():
        return float("nan")
    power = 10 ** (levels / 10)
    padded = np.concatenate([power[:1], power, power[-1:]])
    envelope = 10 * np.log10(np.maximum((padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4, 1e-30))
    return float(count_peaks(envelope, active, PEAK_PROMINENCE_DB) / span)


def count_peaks(envelope: np.ndarray, allowed: np.ndarray, prominence: float) -> int:
    """Local maxima in `allowed` whose prominence (height above the higher of the two bases) is enough.

    A peak's base on each side is the lowest point between it and the nearest higher sample on that
    side (or the end), as in the usual topographic definition.
    """
    if envelope.size < 3:
        return 0
    middle = envelope[1:-1]
    maxima = np.flatnonzero((middle > envelope[:-2]) & (middle >= envelope[2:]) & allowed[1:-1]) + 1
    count = 0
    for peak in maxima:
        height = envelope[peak]
        higher_left = np.flatnonzero(envelope[:peak] > height)
        higher_right = np.flatnonzero(envelope[peak + 1 :] > height)
        start = higher_left[-1] + 1 if higher_left.size else 0
        stop = peak + 1 + higher_right[0] if higher_right.size else envelope.size
        base = max(envelope[start : peak + 1].min(), envelope[peak:stop].min())
        count += height - base >= prominence
    return count


# --- cache and parallel extraction -------------------------------------------------------------


def _cache_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _load_cache(cache_file: Path | None) -> dict[str, dict[str, float | None]]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        stored = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("version") != FEATURE_VERSION:
        return {}
    return dict(stored.get("clips", {}))


def _save_cache(cache_file: Path | None, clips: dict[str, dict[str, float | None]]) -> None:
    if cache_file is None:
        return
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.part")
    partial.write_text(json.dumps({"version": FEATURE_VERSION, "clips": clips}))
    partial.replace(cache_file)


def _to_json(features: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in features.items()}


def _from_json(features: dict[str, float | None]) -> dict[str, float]:
    return {k: (float("nan") if v is None else float(v)) for k, v in features.items()}


def _init_worker() -> None:
    torch.set_num_threads(TORCH_THREADS_PER_WORKER)


def _features_task(path: str) -> tuple[str, dict[str, float] | None, str]:
    try:
        return path, clip_features(path), ""
    except (AudioDecodeError, sf.LibsndfileError, RuntimeError, OSError) as error:
        return path, None, f"{type(error).__name__}: {error}"


def collect_features(
    paths: Sequence[Path], cache_dir: Path | None = None, workers: int = 1, quiet: bool = False
) -> tuple[dict[Path, dict[str, float]], dict[str, str]]:
    """Features of every distinct path (from the cache where it is current) and the unreadable ones."""
    cache_file = Path(cache_dir) / CACHE_NAME if cache_dir is not None else None
    cache = _load_cache(cache_file)
    unique = list(dict.fromkeys(Path(p) for p in paths))
    keys = {path: _cache_key(path) for path in unique if path.is_file()}
    unreadable = {str(path): "no such file" for path in unique if path not in keys}
    features = {path: _from_json(cache[key]) for path, key in keys.items() if key in cache}
    pending = [str(path) for path in keys if path not in features]
    bar = tqdm(total=len(pending), desc="clip features", unit="clip", disable=quiet or len(pending) < 2)
    parallel = workers > 1 and len(pending) > 1
    if parallel:
        pool = multiprocessing.get_context(START_METHOD).Pool(workers, initializer=_init_worker)
        results: Iterable[tuple[str, dict[str, float] | None, str]] = pool.imap_unordered(
            _features_task, pending, chunksize=TASKS_PER_CHUNK
        )
    else:
        results = map(_features_task, pending)
    added = 0
    try:
        for name, values, error in results:
            bar.update()
            path = Path(name)
            if values is None:
                unreadable[name] = error
                continue
            features[path] = values
            cache[keys[path]] = _to_json(values)
            added += 1
            if added % CACHE_SAVE_EVERY == 0:
                _save_cache(cache_file, cache)
    finally:
        bar.close()
        if parallel:
            pool.close()
            pool.join()
    if added:
        _save_cache(cache_file, cache)
    return features, unreadable


# --- scoring -----------------------------------------------------------------------------------


def leave_one_out_scores(
    categories: Sequence[str], is_real: Sequence[bool], prior: float = CATEGORY_PRIOR
) -> np.ndarray:
    """Each clip's category real fraction without the clip itself, shrunk toward 0.5 by `prior` clips."""
    is_real = np.asarray(is_real, dtype=bool)
    totals, reals = Counter(categories), Counter(c for c, r in zip(categories, is_real, strict=True) if r)
    n = np.array([totals[c] for c in categories], dtype=np.float64) - 1
    r = np.array([reals[c] for c in categories], dtype=np.float64) - is_real
    return (r + 0.5 * prior) / (n + prior)


def _cell(scores: np.ndarray, is_real: np.ndarray, categorical: bool) -> dict[str, float | int | bool | None]:
    keep = np.isfinite(scores)
    scores, is_real = scores[keep], is_real[keep]
    n_real, n_fake = int(is_real.sum()), int((~is_real).sum())
    cell: dict[str, float | int | bool | None] = {"auc": None, "raw_auc": None, "n_real": n_real, "n_fake": n_fake}
    if n_real and n_fake:
        raw = roc_auc(scores, is_real)
        cell["raw_auc"] = raw
        cell["auc"] = max(raw, 0.5) if categorical else max(raw, 1.0 - raw)
    cell["flagged"] = bool(cell["auc"] is not None and cell["auc"] > AUC_LIMIT and min(n_real, n_fake) >= MIN_PER_CLASS)
    return cell


def score_features(
    features: Sequence[dict[str, float]], rows: Sequence[ManifestRow], categorical: Sequence[str]
) -> dict[str, dict]:
    """One split's cells: every numeric feature, then every categorical column (leave-one-out)."""
    is_real = np.array([row.is_real for row in rows], dtype=bool)
    cells = {}
    for name in NUMERIC_FEATURES:
        scores = np.array([f.get(name, np.nan) for f in features], dtype=np.float64)
        cells[name] = _cell(scores, is_real, categorical=False)
    for column in categorical:
        scores = leave_one_out_scores([row.column(column) for row in rows], is_real)
        cells[column] = _cell(scores, is_real, categorical=True)
    return cells


def audit(rows: Sequence[ManifestRow], cache_dir: Path | None = None, workers: int = 1, quiet: bool = False) -> dict:
    """Per split (and `all`), per feature: auc = max(AUC, 1 - AUC), n_real, n_fake; plus `flagged`."""
    rows = list(rows)
    features, unreadable = collect_features([row.path for row in rows], cache_dir, workers, quiet)
    usable = [row for row in rows if row.path in features]
    categorical = [c for c in CATEGORICAL_COLUMNS if any(row.column(c) for row in usable)]
    groups = {split: [row for row in usable if row.split == split] for split in SPLITS}
    groups = {split: members for split, members in groups.items() if members}
    groups[ALL] = usable
    splits = {
        split: score_features([features[row.path] for row in members], members, categorical)
        for split, members in groups.items()
    }
    flagged = [
        {"split": split, "feature": name, "auc": cell["auc"]}
        for split, cells in splits.items()
        for name, cell in cells.items()
        if cell["flagged"]
    ]
    return {
        "auc_limit": AUC_LIMIT,
        "min_per_class": MIN_PER_CLASS,
        "features": [*NUMERIC_FEATURES, *categorical],
        "categorical": categorical,
        "clips": len(usable),
        "unreadable": unreadable,
        "splits": splits,
        "flagged": flagged,
    }


def audit_table(result: dict) -> str:
    """Markdown: features as rows, splits as columns; flagged cells bold with a ⚠."""
    splits = list(result["splits"])
    lines = [
        "| feature | " + " | ".join(splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name in result["features"]:
        cells = []
        for split in splits:
            cell = result["splits"][split].get(name)
            if cell is None or cell["auc"] is None:
                cells.append("–")
            elif cell["flagged"]:
                cells.append(f"**{cell['auc']:.3f}** ⚠")
            elif min(cell["n_real"], cell["n_fake"]) < result["min_per_class"]:
                cells.append(f"{cell['auc']:.3f} (few)")
            else:
                cells.append(f"{cell['auc']:.3f}")
        kind = " (categorical)" if name in result["categorical"] else ""
        lines.append(f"| {name}{kind} | " + " | ".join(cells) + " |")
    counts = []
    for split in splits:
        first = next(iter(result["splits"][split].values()))
        counts.append(f"{first['n_real']} / {first['n_fake']}")
    lines.append("| clips (real / fake) | " + " | ".join(counts) + " |")
    lines.append("")
    lines.append(
        f"AUC = max(AUC, 1 − AUC) of the feature alone against the label (categorical: leave-one-out real "
        f"fraction, max(AUC, 0.5)); ⚠ = above {result['auc_limit']:.2f} with at least "
        f"{result['min_per_class']} clips per class."
    )
    if result["flagged"]:
        names = ", ".join(f"{f['feature']} ({f['split']}, {f['auc']:.3f})" for f in result["flagged"])
        lines.append(f"Flagged: {names}.")
    else:
        lines.append("Nothing flagged.")
    if result["unreadable"]:
        lines.append(f"{len(result['unreadable'])} clip(s) could not be read and were left out.")
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.audit",
        description=f"Shortcut audit: ROC AUC of single label-irrelevant clip features against the label, "
        f"per split; flags any above {AUC_LIMIT}.",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="manifest CSV (path,label[,split,...])")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for audit.json and audit.md "
                        f"(default {DEFAULT_OUT})")  # fmt: skip
    parser.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder (default: --out)")
    parser.add_argument("--no-cache", action="store_true", help="compute every clip's features afresh")
    parser.add_argument("--workers", type=int, default=1, help="processes computing features (default 1)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is flagged")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def write_audit(result: dict, manifest: Path, out: Path) -> str:
    """Write audit.json and audit.md under `out`; return the Markdown table."""
    result["manifest"] = str(manifest)
    table = audit_table(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "audit.md").write_text(f"# Shortcut audit of {manifest}\n\n{table}\n")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = read_manifest(args.manifest)
    cache_dir = None if args.no_cache else (args.cache_dir or args.out)
    result = audit(rows, cache_dir=cache_dir, workers=args.workers, quiet=args.quiet)
    print(write_audit(result, args.manifest, args.out))
    for path, error in sorted(result["unreadable"].items()):
        print(f"unreadable: {path}: {error}", file=sys.stderr)
    return 1 if args.strict and result["flagged"] else 0


if __name__ == "__main__":
    sys.exit(main())

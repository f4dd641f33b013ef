"""Turn a public anti-spoofing corpus on disk into the project's manifest CSV.

    python -m training.prepare --format asvspoof2019 --root /data/LA --out data/asvspoof2019/manifest.csv

The manifest then feeds `training.train` and `training.evaluate` like the embedded dataset does.
Splits are decided on the whole corpus before `--limit` samples from it, so a quick run's clips
keep the split they have in the full manifest.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from training.adapters.base import CorpusError, Scan, SplitOptions
from training.adapters.registry import ADAPTERS
from training.manifest import LABELS, SPLITS, ManifestError, ManifestRow, write_manifest
from training.splits import DEFAULT_FRACTIONS, DEFAULT_SEED, split_by_speaker

MISSING_SHOWN = 3
ERROR_EXIT_CODE = 2


def prepare(format_name: str, root: Path, options: SplitOptions, speaker_split: bool = False) -> Scan:
    """Run one adapter on `root`; with `speaker_split`, replace its official split by a speaker-disjoint one."""
    adapter = ADAPTERS[format_name]
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"{format_name}: --root {root} is not a folder")
    scan = adapter.build(root, options)
    if speaker_split:
        for row in scan.rows:
            row.split = ""
        split_by_speaker(scan.rows, options.fractions, options.seed)
    return scan


def sample_balanced(rows: Sequence[ManifestRow], limit: int, seed: int) -> list[ManifestRow]:
    """Pick `limit` rows, half real and half fake where the corpus allows, in proportion across splits.

    Sampling is seeded and depends only on the rows' order, which adapters keep deterministic;
    the kept rows stay in their original order.
    """
    if limit >= len(rows):
        return list(rows)
    rng = random.Random(seed)
    by_label = {label: [i for i, row in enumerate(rows) if row.label == label] for label in LABELS}
    quotas = _label_quotas({label: len(indices) for label, indices in by_label.items()}, limit)
    chosen: set[int] = set()
    for label in LABELS:
        by_split: dict[str, list[int]] = {}
        for i in by_label[label]:
            by_split.setdefault(rows[i].split, []).append(i)
        for split, count in _proportional({s: len(v) for s, v in by_split.items()}, quotas[label]).items():
            chosen.update(rng.sample(by_split[split], count))
    return [row for i, row in enumerate(rows) if i in chosen]


def _label_quotas(available: dict[str, int], limit: int) -> dict[str, int]:
    """Half the limit per label; a label short of its half leaves the rest to the other."""
    real, fake = LABELS
    fake_quota = min(available[fake], limit // 2)
    real_quota = min(available[real], limit - fake_quota)
    return {real: real_quota, fake: min(available[fake], limit - real_quota)}


def _proportional(sizes: dict[str, int], quota: int) -> dict[str, int]:
    """Share `quota` across groups in proportion to their sizes (largest remainder), never above a size."""
    total = sum(sizes.values())
    if not total:
        return {}
    exact = {key: quota * size / total for key, size in sizes.items()}
    counts = {key: int(value) for key, value in exact.items()}
    for key in sorted(exact, key=lambda k: counts[k] - exact[k])[: quota - sum(counts.values())]:
        counts[key] += 1
    return counts


def summarize(rows: Sequence[ManifestRow]) -> str:
    """Counts per split and label, then per attack: enough to spot a wrong root or a one-class split."""
    counts = Counter((row.split, row.label) for row in rows)
    splits = [s for s in (*SPLITS, "") if any(counts[s, label] for label in LABELS)]
    lines = [f"{'split':<8}" + "".join(f"{label:>9}" for label in LABELS)]
    lines += [f"{split or '-':<8}" + "".join(f"{counts[split, label]:>9}" for label in LABELS) for split in splits]
    attacks = Counter(row.attack or "-" for row in rows)
    lines.append("attacks: " + ", ".join(f"{attack} {n}" for attack, n in sorted(attacks.items())))
    return "\n".join(lines)


def parse_fractions(text: str) -> tuple[float, ...]:
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from error
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise argparse.ArgumentTypeError(f"need {len(SPLITS)} non-negative fractions summing to 1, got {text!r}")
    return fractions


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    formats = "\n".join(f"  {name:<13} {adapter.summary}" for name, adapter in ADAPTERS.items())
    resplit = ", ".join(name for name, adapter in ADAPTERS.items() if adapter.speaker_resplit)
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare",
        description="Write the manifest CSV (path,label,split,attack,speaker,source,extras) of a corpus on disk.",
        epilog=f"formats:\n{formats}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--format", required=True, choices=list(ADAPTERS), help="corpus layout (see below)")
    parser.add_argument("--root", required=True, type=Path, help="the corpus folder as extracted")
    parser.add_argument("--out", required=True, type=Path, help="manifest CSV to write")
    parser.add_argument("--limit", type=_positive_int, help="keep N clips, balanced across labels, for quick runs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for splits and --limit sampling")
    parser.add_argument(
        "--split-fractions",
        type=parse_fractions,
        default=DEFAULT_FRACTIONS,
        help="train,dev,test fractions where the corpus has no official split (default 0.7,0.15,0.15)",
    )
    parser.add_argument(
        "--speaker-split",
        action="store_true",
        help=f"{resplit} only: replace the official split by a speaker-disjoint one with --split-fractions",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.speaker_split and not ADAPTERS[args.format].speaker_resplit:
        parser.error(f"--speaker-split does not apply to --format {args.format}")
    options = SplitOptions(fractions=args.split_fractions, seed=args.seed)
    try:
        scan = prepare(args.format, args.root, options, speaker_split=args.speaker_split)
    except ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR_EXIT_CODE
    if scan.missing:
        shown = ", ".join(str(p) for p in scan.missing[:MISSING_SHOWN])
        print(f"warning: {len(scan.missing)} listed clips are not on disk and were left out: {shown}", file=sys.stderr)
    rows = sample_balanced(scan.rows, args.limit, args.seed) if args.limit else scan.rows
    write_manifest(rows, args.out)
    print(f"{args.format}: wrote {len(rows)} clips to {args.out}")
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The table printed after a build: clips and hours per label, split and attack."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import soundfile as sf

from training.manifest import SPLITS, ManifestRow

SECONDS_PER_MINUTE = 60.0


def summary_table(rows: Sequence[ManifestRow]) -> str:
    """Clip counts per (label, attack) and split, with total minutes of audio per row and overall."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        key = (row.label, row.attack)
        counts[key][row.split] += 1
        seconds[key] += sf.info(str(row.path)).duration
    header = f"{'label':<6} {'attack':<14}" + "".join(f"{s:>7}" for s in SPLITS) + f"{'total':>7}{'minutes':>9}"
    lines = [header, "-" * len(header)]
    for key in sorted(counts, key=lambda k: (k[0] != "real", k[1])):
        per_split = counts[key]
        cells = "".join(f"{per_split[s]:>7}" for s in SPLITS)
        minutes = seconds[key] / SECONDS_PER_MINUTE
        lines.append(f"{key[0]:<6} {key[1]:<14}{cells}{sum(per_split.values()):>7}{minutes:>9.1f}")
    for label in ("real", "fake"):
        keys = [k for k in counts if k[0] == label]
        cells = "".join(f"{sum(counts[k][s] for k in keys):>7}" for s in SPLITS)
        total = sum(sum(counts[k].values()) for k in keys)
        minutes = sum(seconds[k] for k in keys) / SECONDS_PER_MINUTE
        lines.append(f"{label:<6} {'(all)':<14}{cells}{total:>7}{minutes:>9.1f}")
    total_minutes = sum(seconds.values()) / SECONDS_PER_MINUTE
    lines.append(f"{len(rows)} clips, {total_minutes:.1f} minutes of audio")
    return "\n".join(lines)

"""Group-disjoint train/dev/test splits: no speaker (or other group) appears in two splits."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from training.manifest import SPLITS, ManifestRow

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
DEFAULT_SEED = 0


def assign_group_splits(
    groups: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = DEFAULT_SEED,
) -> dict[str, str]:
    """Map each distinct group to a split so that clip counts come close to `fractions`.

    Groups are shuffled with a fixed seed, then filled into train, dev and test by cumulative
    clip count, so the result depends only on the groups and the seed, never on input order.
    """
    if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be {len(SPLITS)} numbers summing to 1, got {tuple(fractions)}")
    sizes = Counter(groups)
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total = sum(sizes.values())
    bounds = [total * sum(fractions[: i + 1]) for i in range(len(SPLITS))]
    assignment, seen = {}, 0
    for group in order:
        middle = seen + sizes[group] / 2
        index = next(i for i, bound in enumerate(bounds) if middle <= bound + 1e-9)
        assignment[group] = SPLITS[index]
        seen += sizes[group]
    return assignment


def split_by_speaker(
    rows: Sequence[ManifestRow],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = DEFAULT_SEED,
) -> list[ManifestRow]:
    """Fill in `split` for rows that lack one, keeping each speaker in one split.

    Rows without a speaker are grouped by their own path (each is its own group).
    """
    keys = [row.speaker or f"path:{row.path}" for row in rows]
    pending = [key for key, row in zip(keys, rows, strict=True) if not row.split]
    assignment = assign_group_splits(pending, fractions, seed) if pending else {}
    for key, row in zip(keys, rows, strict=True):
        if not row.split:
            row.split = assignment[key]
    return list(rows)

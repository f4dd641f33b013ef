"""Group-disjoint splits: close to the asked fractions, deterministic, no group in two splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from training.manifest import ManifestRow
from training.splits import assign_group_splits, split_by_speaker


def test_every_group_lands_in_exactly_one_split_near_the_fractions() -> None:
    groups = [f"spk{i % 40}" for i in range(2000)]
    assignment = assign_group_splits(groups)
    counts = Counter(assignment[g] for g in groups)
    assert abs(counts["train"] / 2000 - 0.7) < 0.05
    assert abs(counts["dev"] / 2000 - 0.15) < 0.05
    assert abs(counts["test"] / 2000 - 0.15) < 0.05


def test_assignment_ignores_input_order_and_follows_the_seed() -> None:
    groups = [f"g{i}" for i in range(30)]
    assert assign_group_splits(groups) == assign_group_splits(list(reversed(groups)))
    assert assign_group_splits(groups, seed=1) != assign_group_splits(groups, seed=2)


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        assign_group_splits(["a"], (0.5, 0.5, 0.5))


def test_split_by_speaker_keeps_given_splits_and_speakers_together() -> None:
    rows = [ManifestRow(Path(f"{i}.wav"), "real", speaker=f"s{i % 10}") for i in range(100)]
    rows[0].split = "test"
    split_by_speaker(rows)
    assert rows[0].split == "test"
    by_speaker: dict[str, set[str]] = {}
    for row in rows[1:]:
        by_speaker.setdefault(row.speaker, set()).add(row.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())

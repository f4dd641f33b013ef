"""Held-out folds on hand-made rows: which folds exist, and that nothing held out leaks into training."""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path

import pytest

from training.folds import (
    FoldLeakError,
    FoldPlan,
    check_fold,
    dev_halves,
    family_of,
    plan_folds,
    speaker_key,
)
from training.manifest import ManifestRow
from training.vocoded import VOCODED_FAMILY

REAL_FAMILIES = {"kde": "k", "tel": "t"}
SPLIT_OF_INDEX = ("train", "train", "train", "dev", "dev", "dev", "dev", "test")
CLIPS_PER_SPEAKER = 5


def make_row(path: str, label: str, split: str, attack: str, speaker: str, source: str, **extras: str) -> ManifestRow:
    return ManifestRow(Path(f"/data/{path}.flac"), label, split, attack, speaker, source, dict(extras))


def dataset(family_column: bool = True, group_column: bool = True) -> list[ManifestRow]:
    """Two real families of 8 speakers; per real clip a neural TTS fake (voices of its own) and a
    Griffin-Lim resynthesis (the real speaker's own voice); a formant engine with one voice everywhere."""
    rows = []
    for family, prefix in REAL_FAMILIES.items():
        for index, split in enumerate(SPLIT_OF_INDEX):
            speaker = f"{prefix}{index}"
            group = {"group": f"g{index}"} if group_column else {}
            for clip in range(CLIPS_PER_SPEAKER):
                clips = [
                    ("real", family, "bonafide", speaker, family),
                    ("gl", "gl", "griffin-lim", speaker, "griffin-lim"),
                    ("nn", "tts", "kokoro", f"kokoro:v{clip}", "neural"),
                ]
                if clip < 2:
                    clips.append(("fm", "tts", "espeak", "espeak", "formant"))
                for folder, source, attack, voice, name in clips:
                    label = "real" if folder == "real" else "fake"
                    extras = {**group, **({"family": name} if family_column else {})}
                    rows.append(make_row(f"{folder}/{speaker}-{clip}", label, split, attack, voice, source, **extras))
    return rows


def plan_by_name(rows: list[ManifestRow], **options: int) -> dict[str, FoldPlan]:
    return {plan.name: plan for plan in plan_folds(rows, **options).folds}


def speakers(rows: tuple[ManifestRow, ...] | list[ManifestRow], real: bool | None = None) -> set[str]:
    return {speaker_key(r) for r in rows if real is None or r.is_real == real}


def test_one_fold_per_label_and_family_of_the_train_and_dev_splits() -> None:
    folds = plan_folds(dataset(), min_eval_clips=5)
    assert [f.name for f in folds.folds] == [
        "fake-formant", "fake-griffin-lim", "fake-neural", "real-kde", "real-tel",
    ]  # fmt: skip
    assert [(f.kind, f.held_out) for f in folds.folds][:2] == [("fake", "formant"), ("fake", "griffin-lim")]
    assert folds.family_column and not folds.skipped


def test_small_folds_are_skipped_with_a_reason() -> None:
    rows = dataset()
    rows += [make_row(f"lpc/{i}", "fake", "train", "lpc", f"lpc:{i}", "tts", family="lpc") for i in range(6)]
    folds = plan_folds(rows, min_eval_clips=8)
    skipped = {s.name: s for s in folds.skipped}
    assert set(skipped) == {"fake-lpc"}
    assert "6 fake clips of lpc" in skipped["fake-lpc"].reason and "fewer than 8" in skipped["fake-lpc"].reason
    assert skipped["fake-lpc"].eval_counts["fake"] == 6
    assert "fake-lpc" not in {f.name for f in folds.folds}
    # With a lower bar the same family is a fold.
    assert "fake-lpc" in plan_by_name(rows, min_eval_clips=6)


def test_complement_below_the_minimum_skips_the_fold() -> None:
    rows = [r for r in dataset() if not (r.split == "dev" and r.is_real and r.speaker not in ("k3", "t3"))]
    folds = plan_folds(rows, min_eval_clips=12)
    reasons = {s.name: s.reason for s in folds.skipped}
    assert "real clips in the contrast half of dev, fewer than 12" in reasons["fake-neural"]


@pytest.mark.parametrize("family_column", [True, False])
def test_no_held_out_family_or_eval_speaker_in_training_and_no_test_rows(family_column: bool) -> None:
    folds = plan_folds(dataset(family_column=family_column), min_eval_clips=5)
    assert len(folds.folds) == 5
    for plan in folds.folds:
        held_real = plan.kind == "real"

        def held(row: ManifestRow, plan: FoldPlan = plan, held_real: bool = held_real) -> bool:
            return row.is_real == held_real and family_of(row, family_column) == plan.held_out

        assert not any(held(r) for r in (*plan.train, *plan.dev)), plan.name
        assert all(r.split == "train" for r in plan.train)
        assert all(r.split in ("train", "dev") for r in (*plan.dev, *plan.eval))
        held_eval = [r for r in plan.eval if r.is_real == held_real]
        assert held_eval and all(held(r) for r in held_eval)
        assert not speakers(held_eval) & speakers(plan.train), plan.name
        assert not speakers(plan.eval) & speakers(plan.train, real=True), plan.name
        if plan.kind == "fake":
            assert not speakers(plan.eval) & speakers(plan.train), plan.name
        assert not {r.path for r in plan.eval} & {r.path for r in (*plan.train, *plan.dev)}
        counts = plan.counts()
        assert all(counts[part]["real"] and counts[part]["fake"] for part in ("train", "dev", "eval"))
        check_fold(plan, family_column)


def test_griffin_lim_fold_evaluates_only_fakes_of_unseen_speakers() -> None:
    plan = plan_by_name(dataset(), min_eval_clips=5)["fake-griffin-lim"]
    held = [r for r in plan.eval if not r.is_real]
    # Griffin-Lim fakes carry the real speaker: those of training speakers stay out of eval.
    assert {r.speaker for r in held} == {f"{p}{i}" for p in "kt" for i in (3, 4, 5, 6)}
    assert len(held) == 8 * CLIPS_PER_SPEAKER
    assert {r.split for r in held} == {"dev"}


def test_fake_family_eval_uses_train_and_dev_clips_of_the_family() -> None:
    plan = plan_by_name(dataset(), min_eval_clips=5)["fake-neural"]
    held = [r for r in plan.eval if not r.is_real]
    assert {r.split for r in held} == {"train", "dev"}
    assert len(held) == 2 * 7 * CLIPS_PER_SPEAKER  # every speaker but the test one, in both real families
    reals = [r for r in plan.eval if r.is_real]
    assert reals and {r.split for r in reals} == {"dev"}


def test_real_source_fold_drops_every_clip_of_its_speakers() -> None:
    rows = dataset()
    rows.append(make_row("tts-of-k1", "fake", "train", "kokoro", "k1", "tts", family="neural"))  # a TTS voice of k1
    plan = plan_by_name(rows, min_eval_clips=5)["real-kde"]
    assert plan.held_out_speakers == {f"k{i}" for i in range(7)}  # the test speaker k7 is never read
    kept = [r for r in (*plan.train, *plan.dev) if r.speaker in {f"k{i}" for i in range(8)}]
    assert not kept  # neither its reals nor the Griffin-Lim copies of them nor the cloned voice
    assert any(r.attack == "griffin-lim" for r in plan.train)  # the other source's copies still train
    assert {r.source for r in plan.train if r.is_real} == {"tel"}
    reals = [r for r in plan.eval if r.is_real]
    assert {r.source for r in reals} == {"kde"} and len(reals) == 7 * CLIPS_PER_SPEAKER
    fakes = [r for r in plan.eval if not r.is_real]
    assert fakes and {r.split for r in fakes} == {"dev"}
    check_fold(plan, True)


def test_the_test_split_is_never_read() -> None:
    rows = dataset()
    before = copy.deepcopy(rows)
    folds = plan_folds(rows, min_eval_clips=5)
    assert rows == before  # nothing is changed in the caller's rows
    for plan in folds.folds:
        assert not [r for r in (*plan.train, *plan.dev, *plan.eval) if r.split == "test"]
    # Changing or dropping the test split changes nothing.
    altered = [dataclasses.replace(r, attack="other", extras={"family": "x"}) if r.split == "test" else r for r in rows]
    without = [r for r in rows if r.split != "test"]
    for other in (altered, without):
        again = plan_folds(other, min_eval_clips=5)
        assert [(f.name, f.train, f.dev, f.eval) for f in again.folds] == [
            (f.name, f.train, f.dev, f.eval) for f in folds.folds
        ]
    # A family found only in the test split gets no fold.
    only_test = [*rows, *(make_row(f"x{i}", "fake", "test", "x", f"x{i}", "tts", family="unit-selection")
                          for i in range(50))]  # fmt: skip
    assert "fake-unit-selection" not in plan_by_name(only_test, min_eval_clips=5)


def test_dev_halves_are_deterministic_disjoint_and_balanced() -> None:
    rows = dataset()
    dev = [r for r in rows if r.split == "dev"]
    halves = dev_halves(dev)
    assert halves.column == "group"
    assert halves.select.isdisjoint(halves.contrast)
    assert halves.select | halves.contrast == {"g3", "g4", "g5", "g6"}
    assert len(halves.select) == len(halves.contrast) == 2
    shuffled = dev[:]
    random.Random(3).shuffle(shuffled)
    assert dev_halves(shuffled) == halves
    by_speaker = dev_halves([dataclasses.replace(r, extras={}) for r in dev])
    assert by_speaker.column == "speaker"
    assert by_speaker.select.isdisjoint(by_speaker.contrast)
    real_speakers = {r.speaker for r in dev if r.is_real}
    assert len(real_speakers & by_speaker.select) == len(real_speakers & by_speaker.contrast) == 4
    # Every fold selects on the same half and takes its complementary class from the other.
    folds = plan_folds(rows, min_eval_clips=5)
    for plan in folds.folds:
        assert {r.extras["group"] for r in plan.dev} <= halves.select
        complement = [r for r in plan.eval if r.is_real != (plan.kind == "real")]
        assert {r.extras["group"] for r in complement} <= halves.contrast


def test_vocoded_copies_are_off_only_for_their_own_family() -> None:
    plans = plan_by_name(dataset(), min_eval_clips=5)
    assert VOCODED_FAMILY == "griffin-lim"
    assert {name for name, plan in plans.items() if not plan.vocoded_copies} == {"fake-griffin-lim"}
    # Without a family column the Griffin-Lim attack is the family, and the copies stay off too.
    plans = plan_by_name(dataset(family_column=False), min_eval_clips=5)
    assert {name for name, plan in plans.items() if not plan.vocoded_copies} == {"fake-griffin-lim"}


def test_without_family_column_fakes_group_by_attack_and_reals_by_source() -> None:
    folds = plan_folds(dataset(family_column=False), min_eval_clips=5)
    assert not folds.family_column
    assert [f.name for f in folds.folds] == ["fake-espeak", "fake-griffin-lim", "fake-kokoro", "real-kde", "real-tel"]


def test_rows_without_split_get_speaker_disjoint_splits() -> None:
    rows = [dataclasses.replace(r, split="") for r in dataset(group_column=False)]
    folds = plan_folds(rows, min_eval_clips=5)
    assert all(r.split == "" for r in rows)
    assert folds.folds
    for plan in folds.folds:
        assert not speakers([r for r in plan.train if r.is_real]) & speakers([r for r in plan.eval if r.is_real])
        check_fold(plan, True)


def test_eval_classes_can_be_capped_deterministically() -> None:
    rows = dataset()
    full = plan_by_name(rows, min_eval_clips=5)["fake-neural"]
    capped = plan_by_name(rows, min_eval_clips=5, max_eval_clips=10)["fake-neural"]
    assert capped.counts()["eval"] == {"real": 10, "fake": 10}
    assert {r.path for r in capped.eval} <= {r.path for r in full.eval}
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = plan_by_name(shuffled, min_eval_clips=5, max_eval_clips=10)["fake-neural"]
    assert {r.path for r in again.eval} == {r.path for r in capped.eval}
    with pytest.raises(ValueError):
        plan_folds(rows, min_eval_clips=20, max_eval_clips=10)


def test_check_fold_names_each_kind_of_leak() -> None:
    plans = plan_by_name(dataset(), min_eval_clips=5)
    neural, kde = plans["fake-neural"], plans["real-kde"]
    held_fake = next(r for r in neural.eval if not r.is_real)
    test_row = make_row("t", "real", "test", "bonafide", "z9", "tel", family="tel")
    cases = [
        (dataclasses.replace(neural, train=(*neural.train, dataclasses.replace(held_fake, path=Path("/x.flac")))),
         "held-out family neural in train"),
        (dataclasses.replace(neural, dev=(*neural.dev, test_row)), "test-split rows in dev"),
        (dataclasses.replace(neural, eval=(*neural.eval, neural.train[0])), "speaker"),
        (dataclasses.replace(kde, train=(*kde.train, make_row("c", "fake", "train", "gl", "k2", "gl", family="gl"))),
         "held-out speakers in train"),
        (dataclasses.replace(neural, eval=tuple(r for r in neural.eval if not r.is_real)), "eval lacks a class"),
    ]  # fmt: skip
    for plan, message in cases:
        with pytest.raises(FoldLeakError, match=message):
            check_fold(plan, True)


def test_grouped_families_are_held_out_together_without_leaks() -> None:
    groups = {"formant": "synth", "griffin-lim": "synth", "kde": "all-real", "tel": "all-real"}
    rows = dataset()
    folds = plan_by_name(rows, min_eval_clips=5, groups=groups)
    assert sorted(folds) == ["fake-neural", "fake-synth"]  # both real families in one group: nothing left to train on
    synth = folds["fake-synth"]
    assert synth.families == {"formant", "griffin-lim"} and synth.held_out == "synth"
    assert not any(family_of(r, True) in synth.families for r in (*synth.train, *synth.dev) if not r.is_real)
    assert {family_of(r, True) for r in synth.eval if not r.is_real} == {"formant", "griffin-lim"}
    assert not synth.vocoded_copies  # a group holding the copies' family turns them off
    check_fold(synth, True)

    partial = plan_by_name(rows, min_eval_clips=5, groups={"kde": "studio"})
    assert "real-studio" in partial and "real-tel" in partial  # unmapped families stay folds of their own
    assert partial["real-studio"].families == {"kde"}
    leaky = dataclasses.replace(synth, train=(*synth.train, next(r for r in synth.eval if not r.is_real)))
    with pytest.raises(FoldLeakError, match="held-out family synth in train"):
        check_fold(leaky, True)

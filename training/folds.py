"""Held-out folds: the rows that train, select and evaluate a detector that never saw one family.

Pure functions over manifest rows; nothing here reads audio. `plan_folds` makes one fold per
(label, family) of the train and dev splits, or per (label, group of families) when given
`groups` (EMBEDDED_FOLD_GROUPS for the embedded dataset: seven folds instead of thirteen, which
is what keeps `make heldout` within about 90 minutes on 2 CPU cores):

- A row's family is its `family` column when the manifest has one (the synthesis family of a
  fake, the recording family of a real), else its attack (fakes) or source (reals).
- Rows without a split get speaker-disjoint ones (training.splits.split_by_speaker). Rows of
  the TEST split are then dropped before anything else: the protocol never reads them.
- The dev split's groups (the `group` column where present, else speakers) are divided into two
  fixed halves (`dev_halves`): SELECT is every fold's early-stopping dev set, CONTRAST supplies
  the complementary evaluation class. Neither half is ever trained on.

Fake-family fold F:
  train = train-split rows, minus every fake of family F
  dev   = SELECT rows, minus every fake of family F
  eval  = fakes of F (train and dev splits) whose speaker is in no training row
        + reals of CONTRAST whose speaker is in no training row
  vocoded copies (Griffin-Lim fakes made of the training reals) are off when F is their family.
Real-family fold S (speakers of S = the speakers of S's reals):
  train = train-split rows, minus every real of S and every clip, either class, of a speaker of S
  dev   = SELECT rows, minus the same
  eval  = reals of S (train and dev splits) whose speaker is in no training row
        + fakes of CONTRAST whose speaker is no training real's speaker (a TTS voice seen in
          training is fine here: the fold holds out a recording family, not a synthesis one)

A fold is skipped, with its reason, when either evaluation class has fewer than `min_eval_clips`
clips, or training or dev lacks a class. `check_fold` states the guarantees as code; every
planned fold passes it. A row without a speaker counts as a speaker of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from training.manifest import TRAIN, ManifestRow
from training.splits import split_by_speaker
from training.vocoded import VOCODED_ATTACK, VOCODED_FAMILY

FAMILY_COLUMN = "family"
GROUP_COLUMN = "group"
DEV, TEST = "dev", "test"
FAKE, REAL = "fake", "real"
KINDS = (FAKE, REAL)
DEFAULT_MIN_EVAL_CLIPS = 40
NO_VOCODED_COPIES = frozenset({VOCODED_FAMILY, VOCODED_ATTACK})  # held-out fake families the copies would leak
# Families of the embedded dataset (training/embedded) held out together. Related systems share a
# fold, so a fold tests a kind of synthesis (or of recording) the model never met, not a sibling
# of one it did. Families missing here (other corpora's attacks and sources) are folds of their own.
EMBEDDED_FOLD_GROUPS = {
    "formant": "classic-tts",
    "diphone": "classic-tts",
    "unit-selection": "classic-tts",
    "parametric": "classic-tts",
    "lpc": "dsp-vocoders",
    "phase-vocoder": "dsp-vocoders",
    "kde-edu": "words-and-syllables",
    "gcin": "words-and-syllables",
    "fillets": "game-voices",
    "tuxpaint": "game-voices",
    "telephone-prompts": "prompts-and-read-speech",
    "festvox-ru": "prompts-and-read-speech",
    "pocketsphinx": "prompts-and-read-speech",
}


class FoldLeakError(AssertionError):
    """A fold breaks one of the protocol's guarantees; the message lists every breach."""


@dataclass(frozen=True)
class FoldPlan:
    name: str
    kind: str  # FAKE: a synthesis family is held out; REAL: a recording family
    held_out: str  # the family, or the group of families, held out
    train: tuple[ManifestRow, ...]
    dev: tuple[ManifestRow, ...]
    eval: tuple[ManifestRow, ...]
    held_out_speakers: frozenset[str] = frozenset()  # real folds: speakers none of whose clips are trained on
    vocoded_copies: bool = True  # whether training may add vocoded copies of its reals
    families: frozenset[str] = frozenset()  # the held-out families (empty: just `held_out`)

    def holds_out(self, row: ManifestRow, family_column: bool) -> bool:
        """Whether the row is of the held-out class and one of the held-out families."""
        families = self.families or {self.held_out}
        return row.is_real == (self.kind == REAL) and family_of(row, family_column) in families

    def counts(self) -> dict[str, dict[str, int]]:
        return {part: class_counts(getattr(self, part)) for part in ("train", "dev", "eval")}


@dataclass(frozen=True)
class SkippedFold:
    name: str
    kind: str
    held_out: str
    reason: str
    eval_counts: dict[str, int]


@dataclass(frozen=True)
class DevHalves:
    column: str  # what the dev split was divided by: GROUP_COLUMN or "speaker"
    select: frozenset[str]
    contrast: frozenset[str]


@dataclass(frozen=True)
class FoldSet:
    folds: list[FoldPlan]
    skipped: list[SkippedFold]
    halves: DevHalves
    family_column: bool  # families came from the `family` column (else from attack / source)


def class_counts(rows: Iterable[ManifestRow]) -> dict[str, int]:
    counts = Counter(REAL if r.is_real else FAKE for r in rows)
    return {REAL: counts[REAL], FAKE: counts[FAKE]}


def fold_name(kind: str, family: str) -> str:
    return f"{kind}-{family}"


def speaker_key(row: ManifestRow) -> str:
    return row.speaker or f"path:{row.path}"


def has_family_column(rows: Sequence[ManifestRow]) -> bool:
    return any(FAMILY_COLUMN in r.extras for r in rows)


def family_of(row: ManifestRow, family_column: bool) -> str:
    """The row's family column, else (or where empty) its attack for fakes and source for reals."""
    family = row.extras.get(FAMILY_COLUMN, "").strip() if family_column else ""
    return family or (row.source if row.is_real else row.attack) or "unlabelled"


def with_splits(rows: Sequence[ManifestRow]) -> list[ManifestRow]:
    """Copies of the rows, those without a split given speaker-disjoint ones; the input is untouched."""
    copies = [dataclasses.replace(r, extras=dict(r.extras)) for r in rows]
    return split_by_speaker(copies) if any(not r.split for r in copies) else copies


def dev_halves(dev_rows: Sequence[ManifestRow]) -> DevHalves:
    """Divide the dev split's groups into SELECT and CONTRAST halves, the same way every time.

    Groups are the `group` column where any row has one, else speakers. Largest groups go
    first (ties by a hash of the name, never by row order), each to the half that has fewer
    clips of the group's majority class, then fewer clips, then to SELECT.
    """
    column = GROUP_COLUMN if any(r.extras.get(GROUP_COLUMN) for r in dev_rows) else "speaker"
    key = group_function(column)
    sizes: dict[str, Counter] = {}
    for row in dev_rows:
        sizes.setdefault(key(row), Counter())[row.is_real] += 1
    order = sorted(sizes, key=lambda g: (-sum(sizes[g].values()), hashlib.sha256(g.encode()).hexdigest()))
    halves: tuple[list[str], list[str]] = ([], [])
    totals = [Counter(), Counter()]
    for group in order:
        majority = sizes[group][True] >= sizes[group][False]
        half = min((0, 1), key=lambda h: (totals[h][majority], sum(totals[h].values()), h))
        halves[half].append(group)
        totals[half].update(sizes[group])
    return DevHalves(column, frozenset(halves[0]), frozenset(halves[1]))


def group_function(column: str) -> Callable[[ManifestRow], str]:
    if column == GROUP_COLUMN:
        return lambda row: row.extras.get(GROUP_COLUMN) or speaker_key(row)
    return speaker_key


def cap_rows(rows: Sequence[ManifestRow], limit: int) -> list[ManifestRow]:
    """At most `limit` rows (0 = all), chosen by a hash of each file's folder and name, kept in order."""
    if not limit or len(rows) <= limit:
        return list(rows)
    ranked = sorted(range(len(rows)), key=lambda i: hashlib.sha256("/".join(rows[i].path.parts[-2:]).encode()).digest())
    keep = set(ranked[:limit])
    return [row for i, row in enumerate(rows) if i in keep]


def plan_folds(
    rows: Sequence[ManifestRow],
    min_eval_clips: int = DEFAULT_MIN_EVAL_CLIPS,
    max_eval_clips: int = 0,
    groups: Mapping[str, str] | None = None,
) -> FoldSet:
    """Every fake-family and real-family fold of the manifest's rows (see the module docstring).

    `max_eval_clips` caps each evaluation class of a fold (0 = no cap); it must not be below
    `min_eval_clips`. `groups` maps a family to the group it is held out with.
    """
    if max_eval_clips and max_eval_clips < min_eval_clips:
        raise ValueError(f"max_eval_clips {max_eval_clips} is below min_eval_clips {min_eval_clips}")
    family_column = has_family_column(rows)
    pool = [r for r in with_splits(rows) if r.split != TEST]
    training_pool = [r for r in pool if r.split == TRAIN]
    halves = dev_halves([r for r in pool if r.split == DEV])
    group = group_function(halves.column)
    select = [r for r in pool if r.split == DEV and group(r) in halves.select]
    contrast = [r for r in pool if r.split == DEV and group(r) in halves.contrast]

    groups = groups or {}

    def unit(row: ManifestRow) -> str:
        family = family_of(row, family_column)
        return groups.get(family, family)

    folds, skipped = [], []
    for kind in KINDS:
        families = sorted({unit(r) for r in pool if r.is_real == (kind == REAL)})
        for family in families:
            held_class = [r for r in pool if r.is_real == (kind == REAL) and unit(r) == family]
            members = frozenset(family_of(r, family_column) for r in held_class)
            if kind == FAKE:
                speakers: frozenset[str] = frozenset()

                def dropped(row: ManifestRow, members: frozenset[str] = members) -> bool:
                    return not row.is_real and family_of(row, family_column) in members
            else:
                speakers = frozenset(r.speaker for r in held_class if r.speaker)

                def dropped(row: ManifestRow, members: frozenset = members, speakers: frozenset = speakers) -> bool:
                    held = row.is_real and family_of(row, family_column) in members
                    return held or row.speaker in speakers

            train = [r for r in training_pool if not dropped(r)]
            dev = [r for r in select if not dropped(r)]
            trained_speakers = {speaker_key(r) for r in train}
            trained_real_speakers = {speaker_key(r) for r in train if r.is_real}
            held = [r for r in held_class if speaker_key(r) not in trained_speakers]
            if kind == FAKE:
                complement = [r for r in contrast if r.is_real and speaker_key(r) not in trained_speakers]
            else:
                complement = [r for r in contrast if not r.is_real and speaker_key(r) not in trained_real_speakers]
            name = fold_name(kind, family)
            reason = skip_reason(kind, family, held, complement, train, dev, min_eval_clips)
            if reason:
                skipped.append(SkippedFold(name, kind, family, reason, class_counts(held + complement)))
                continue
            plan = FoldPlan(
                name=name,
                kind=kind,
                held_out=family,
                train=tuple(train),
                dev=tuple(dev),
                eval=tuple(cap_rows(held, max_eval_clips) + cap_rows(complement, max_eval_clips)),
                held_out_speakers=speakers,
                vocoded_copies=not (kind == FAKE and members & NO_VOCODED_COPIES),
                families=members,
            )
            check_fold(plan, family_column)
            folds.append(plan)
    return FoldSet(folds, skipped, halves, family_column)


def skip_reason(
    kind: str,
    family: str,
    held: Sequence[ManifestRow],
    complement: Sequence[ManifestRow],
    train: Sequence[ManifestRow],
    dev: Sequence[ManifestRow],
    min_eval_clips: int,
) -> str:
    other = FAKE if kind == REAL else REAL
    if len(held) < min_eval_clips:
        return (
            f"{len(held)} {kind} clips of {family} with speakers unseen in training "
            f"(train and dev splits), fewer than {min_eval_clips}"
        )
    if len(complement) < min_eval_clips:
        return f"{len(complement)} {other} clips in the contrast half of dev, fewer than {min_eval_clips}"
    for part, part_rows in (("training", train), ("the early-stopping dev half", dev)):
        counts = class_counts(part_rows)
        missing = [label for label in (REAL, FAKE) if not counts[label]]
        if missing:
            return f"{part} would have no {' or '.join(missing)} clips"
    return ""


def check_fold(plan: FoldPlan, family_column: bool) -> None:
    """Raise FoldLeakError unless the fold keeps every guarantee of the protocol:

    no test-split row anywhere; training rows from the train split only; no row of the held-out
    family (of the held-out class) in training or dev; for real folds no training or dev row of
    a held-out speaker; no held-out-class eval clip whose speaker is in training; for fake folds
    no eval clip at all whose speaker is in training, for real folds no eval clip whose speaker
    is a training real's; no eval clip in training or dev; both classes in eval.
    """
    problems = []
    held_real = plan.kind == REAL

    def held(row: ManifestRow) -> bool:
        return plan.holds_out(row, family_column)

    parts = {"train": plan.train, "dev": plan.dev, "eval": plan.eval}
    for part, rows in parts.items():
        if any(r.split == TEST for r in rows):
            problems.append(f"test-split rows in {part}")
    if any(r.split != TRAIN for r in plan.train):
        problems.append("training rows from outside the train split")
    for part in ("train", "dev"):
        if any(held(r) for r in parts[part]):
            problems.append(f"held-out family {plan.held_out} in {part}")
        if any(r.speaker in plan.held_out_speakers for r in parts[part] if r.speaker):
            problems.append(f"held-out speakers in {part}")
    trained = {speaker_key(r) for r in plan.train}
    trained_real = {speaker_key(r) for r in plan.train if r.is_real}
    for row in plan.eval:
        strict = held(row) or plan.kind == FAKE
        if row.is_real == held_real and not held(row):
            problems.append(f"eval clip {row.path} is of the held-out class but not of {plan.held_out}")
        if speaker_key(row) in (trained if strict else trained_real):
            problems.append(f"eval clip {row.path}: speaker {row.speaker!r} is in training")
    seen = {r.path for r in (*plan.train, *plan.dev)}
    if any(r.path in seen for r in plan.eval):
        problems.append("eval clips also in train or dev")
    if not all(class_counts(plan.eval).values()):
        problems.append("eval lacks a class")
    if problems:
        raise FoldLeakError(f"fold {plan.name}: " + "; ".join(problems))

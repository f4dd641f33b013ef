"""Decide, before any audio is touched, every clip of the dataset and every random draw behind it.

The plan pairs each chosen real clip with exactly one fake clip that mimics it: the same words
in the same language spoken by a TTS engine, or (when the words are unknown) a Griffin-Lim
resynthesis of the clip itself. Pairing keeps the classes balanced and gives both the same mix
of languages and content; each pair sits in the split of the real clip's group, so no words or
speaker cross from train to test. Voices that only feed training (sources.find_train_only_clips)
are planned apart, after the main plan, so adding them leaves dev and test clip for clip as they
were. All randomness comes from generators seeded by (seed, clip id), so the plan, and the
manifest, depend only on the installed packages and the seed.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.embedded.channel import Treatment, draw_treatment
from training.embedded.sources import ENGLISH, FILLETS_PACKAGE, KLETTRES_PACKAGE, KTUBERLING_PACKAGE, RealClip
from training.embedded.tts import (
    ENGLISH_ENGINES,
    ESPEAK,
    FESTIVAL,
    FLITE_ATTACKS,
    GRIFFIN_LIM,
    Voice,
    draw_voice,
    espeak_voice,
)
from training.manifest import TRAIN
from training.splits import assign_group_splits

DEFAULT_TOTAL_CLIPS = 4000
DEFAULT_SEED = 0
BONAFIDE = "bonafide"
REAL, FAKE = "real", "fake"

# Share of pairs taken from each package (the rest of a short package goes to the others).
SOURCE_SHARES = {FILLETS_PACKAGE: 0.40, KLETTRES_PACKAGE: 0.38, KTUBERLING_PACKAGE: 0.22}
# No split group (a language, a game level) may fill more than this share of a package's pairs.
GROUP_CAP_FRACTION = 0.05
MIN_GROUP_CAP = 2
# English speech is scarce in the packages; sampling weight for it so English voices get material.
ENGLISH_SAMPLING_WEIGHT = 4.0
# Clips from train-only voices, as a share of the main plan's clips. Off by default: 0.2 (800 clips)
# tied the default on dev EER (1.59 %) at a quarter more training time; see the README.
DEFAULT_TRAIN_ONLY_SHARE = 0.0
# Extra pairs planned so that clips rejected while building (too little speech) leave the total intact.
SURPLUS_FRACTION = 0.03
MIN_SURPLUS = 2

# Which fake engine mimics a real clip, by what is known about the clip. English engines may read
# the English line of a Dutch dialogue: the packages hold too little English speech (~165 clips)
# to give the four English voices enough material otherwise. The cost is a language imbalance:
# about 17% of fakes are English against 6% of reals (and fewer Dutch fakes than Dutch reals);
# lower DIALOGUE_ENGLISH_SHARE to trade English-voice coverage for language balance.
ENGLISH_TEXT_ENGINE_SHARE = 0.80
DIALOGUE_ENGLISH_SHARE = 0.28
ATTACK_WEIGHTS = {
    "english": {
        ESPEAK: 0.15,
        GRIFFIN_LIM: 0.05,
        **{a: ENGLISH_TEXT_ENGINE_SHARE / len(ENGLISH_ENGINES) for a in ENGLISH_ENGINES},
    },
    "dialogue": {
        ESPEAK: 0.50,
        GRIFFIN_LIM: 0.22,
        **{a: DIALOGUE_ENGLISH_SHARE / len(ENGLISH_ENGINES) for a in ENGLISH_ENGINES},
    },
    "native": {ESPEAK: 0.85, GRIFFIN_LIM: 0.15},
    "untranscribed": {GRIFFIN_LIM: 1.0},
}


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to build one clip and write its manifest row."""

    clip_id: str
    label: str
    attack: str
    speaker: str
    source: str
    language: str
    group: str
    split: str
    relative_path: str
    source_path: Path
    text: str | None
    voice: Voice | None
    treatment: Treatment
    seed: int


@dataclass(frozen=True)
class Pair:
    """A real clip and the fake that mimics it; they are kept or dropped together."""

    real: ClipJob
    fake: ClipJob


def clip_seed(seed: int, clip_id: str, purpose: str = "build") -> int:
    """A 63-bit seed from the global seed, the clip id and what it is for (never order or process).

    Separate purposes keep draws independent: a clip's place in the sampling order must not
    predict its channel or level.
    """
    digest = hashlib.sha256(f"{seed}:{purpose}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def plan_pairs(reals: Sequence[RealClip], total_clips: int, seed: int = DEFAULT_SEED) -> tuple[list[Pair], int]:
    """The planned pairs in priority order, and how many of them the dataset should keep."""
    wanted = max(1, total_clips // 2)
    planned = wanted + max(MIN_SURPLUS, math.ceil(wanted * SURPLUS_FRACTION))
    chosen = _choose_reals(reals, planned, seed)
    attacks = _assign_attacks(chosen)
    splits = assign_group_splits([clip.group for clip in chosen], seed=seed)
    pairs = [_pair(clip, attack, splits[clip.group], seed) for clip, attack in zip(chosen, attacks, strict=True)]
    return pairs, wanted


def plan_train_only_pairs(
    reals: Sequence[RealClip], total_clips: int, seed: int = DEFAULT_SEED
) -> tuple[list[Pair], int]:
    """Pairs from voices that never appear in dev or test, all in the training split.

    Voices take turns so each gets an equal share; within a voice, clips with known words (digits,
    letters: short clips like klettres') come first, so their fakes can say the same words; the
    rest, Griffin-Lim copies, fill the quota.
    """
    wanted = total_clips // 2
    if wanted == 0 or not reals:
        return [], 0
    planned = wanted + max(MIN_SURPLUS, math.ceil(wanted * SURPLUS_FRACTION))
    by_group: dict[str, list[RealClip]] = defaultdict(list)
    shuffled = _weighted_order(reals, seed, "train-only", weight=lambda clip: 1.0)
    for clip in sorted(shuffled, key=lambda clip: clip.text is None):
        by_group[clip.group].append(clip)
    chosen = _take_turns([by_group[group] for group in sorted(by_group)], planned)
    attacks = _assign_attacks(chosen)
    return [_pair(clip, attack, TRAIN, seed) for clip, attack in zip(chosen, attacks, strict=True)], wanted


def _take_turns(queues: Sequence[Sequence[RealClip]], count: int) -> list[RealClip]:
    """Round-robin over the queues until `count` clips are taken or all are empty."""
    taken: list[RealClip] = []
    for position in range(max((len(q) for q in queues), default=0)):
        taken.extend(q[position] for q in queues if position < len(q))
    return taken[:count]


def _english_weight(clip: RealClip) -> float:
    return ENGLISH_SAMPLING_WEIGHT if clip.language == ENGLISH else 1.0


def _choose_reals(reals: Sequence[RealClip], count: int, seed: int) -> list[RealClip]:
    """Take `count` real clips: per-package quotas, per-group caps, English favoured, seeded order."""
    by_source: dict[str, list[RealClip]] = defaultdict(list)
    for clip in sorted(reals, key=lambda c: c.clip_id):
        by_source[clip.source].append(clip)
    ordered = {source: _weighted_order(clips, seed, "sample") for source, clips in sorted(by_source.items())}
    quotas = {source: round(count * SOURCE_SHARES.get(source, 0.0)) for source in ordered}
    taken = {source: _take_capped(clips, quotas[source]) for source, clips in ordered.items()}
    shortfall = count - sum(len(clips) for clips in taken.values())
    for source, clips in ordered.items():
        if shortfall <= 0:
            break
        spare = min(shortfall, len(clips) - len(taken[source]))
        quotas[source] = len(taken[source]) + spare
        taken[source] = _take_capped(clips, quotas[source])
        shortfall -= spare
    chosen = [clip for clips in taken.values() for clip in clips]
    return _weighted_order(chosen, seed, "priority")[:count]


def _weighted_order(
    clips: Sequence[RealClip],
    seed: int,
    purpose: str,
    weight: Callable[[RealClip], float] = _english_weight,
) -> list[RealClip]:
    """Weighted random order without replacement (key u^(1/w)); by default English clips weighted up."""

    def key(clip: RealClip) -> float:
        uniform = np.random.default_rng(clip_seed(seed, clip.clip_id, purpose)).random()
        return -(uniform ** (1.0 / weight(clip)))

    return sorted(clips, key=lambda c: (key(c), c.clip_id))


def _take_capped(clips: Sequence[RealClip], quota: int) -> list[RealClip]:
    """The first `quota` clips, no group above the cap; the cap doubles while the quota is not met."""
    cap = max(MIN_GROUP_CAP, math.ceil(quota * GROUP_CAP_FRACTION))
    while True:
        taken, per_group = [], Counter()
        for clip in clips:
            if len(taken) >= quota:
                break
            if per_group[clip.group] < cap:
                taken.append(clip)
                per_group[clip.group] += 1
        if len(taken) >= quota or cap >= len(clips):
            return taken
        cap *= 2


def clip_kind(clip: RealClip) -> str:
    """What a fake can be made from: English words, a Dutch dialogue with its English line, native words, nothing."""
    if clip.language == ENGLISH and clip.text:
        return "english"
    if clip.text and clip.text_en and espeak_voice(clip.language):
        return "dialogue"
    if clip.text and espeak_voice(clip.language):
        return "native"
    return "untranscribed"


def _assign_attacks(chosen: Sequence[RealClip]) -> list[str]:
    """Give each clip the attack furthest below its target share within the clip's kind (low variance)."""
    assigned: dict[str, Counter] = defaultdict(Counter)
    seen: Counter = Counter()
    attacks = []
    for clip in chosen:
        kind = clip_kind(clip)
        seen[kind] += 1
        weights = ATTACK_WEIGHTS[kind]
        attack = max(weights, key=lambda a: (weights[a] * seen[kind] - assigned[kind][a], weights[a]))
        assigned[kind][attack] += 1
        attacks.append(attack)
    return attacks


def _pair(clip: RealClip, attack: str, split: str, seed: int) -> Pair:
    real_seed = clip_seed(seed, clip.clip_id)
    real = ClipJob(
        clip_id=clip.clip_id,
        label=REAL,
        attack=BONAFIDE,
        speaker=clip.speaker,
        source=clip.source,
        language=clip.language,
        group=clip.group,
        split=split,
        relative_path=f"clips/{REAL}/{clip.source}/{clip.clip_id}.flac",
        source_path=clip.path,
        text=clip.text,
        voice=None,
        treatment=draw_treatment(np.random.default_rng(real_seed)),
        seed=real_seed,
    )
    return Pair(real, _fake_job(clip, attack, split, seed))


def _fake_job(clip: RealClip, attack: str, split: str, seed: int) -> ClipJob:
    fake_id = f"{attack}--{clip.clip_id}"
    fake_seed = clip_seed(seed, fake_id)
    rng = np.random.default_rng(fake_seed)
    english_engine = attack in ENGLISH_ENGINES
    voice = draw_voice(attack, ENGLISH if english_engine else clip.language, rng)
    if attack == GRIFFIN_LIM:
        speaker, text, language = clip.speaker, None, clip.language
    elif english_engine:
        speaker, text, language = attack, clip.text_en, ENGLISH
    else:
        speaker, text, language = f"{attack}:{voice.name}", clip.text, clip.language
    return ClipJob(
        clip_id=fake_id,
        label=FAKE,
        attack=attack,
        speaker=speaker,
        source=_fake_source(attack),
        language=language,
        group=clip.group,
        split=split,
        relative_path=f"clips/{FAKE}/{attack}/{fake_id}.flac",
        source_path=clip.path,
        text=text,
        voice=voice,
        treatment=draw_treatment(rng),
        seed=fake_seed,
    )


def _fake_source(attack: str) -> str:
    """The Debian package (or library) that produced a fake clip."""
    if attack == GRIFFIN_LIM:
        return "torchaudio"
    if attack == FESTIVAL:
        return "festvox-kallpc16k"
    if attack in FLITE_ATTACKS:
        return "flite"
    return attack

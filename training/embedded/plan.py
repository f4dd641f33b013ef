"""Decide, before any audio is touched, every clip of the dataset and every random draw behind it.

The plan pairs each chosen real clip with exactly one fake clip that mimics it: the same words
in the same language spoken by a TTS engine, or a copy-synthesis vocoder's resynthesis of the
clip itself (the only choice when the words are unknown). Engines are spread over the clips by
target weights among the engines each clip allows. Pairing keeps the classes balanced and gives
both the same mix of languages and content; each pair sits in the split of the real clip's group,
so no words or speaker cross from train to test, and a fake of a telephone recording goes through
that recording's channel. All randomness comes from generators seeded by (seed, clip id), so the plan, and the
manifest, depend only on the installed packages and the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.embedded.channel import Treatment, draw_treatment
from training.embedded.sources import (
    ARMELLE_PACKAGE,
    ASTERISK_PACKAGE,
    ENGLISH,
    ES_CO_PACKAGE,
    FESTVOX_RU_PACKAGE,
    FESTVOX_RU_SPEAKER,
    FILLETS_PACKAGE,
    GCIN_PACKAGE,
    KLETTRES_PACKAGE,
    KTUBERLING_PACKAGE,
    MENARDI_PACKAGE,
    NARROWBAND,
    POCKETSPHINX_PACKAGE,
    TUXPAINT_PACKAGE,
    RealClip,
)
from training.embedded.tts import (
    COPY_SYNTHESIS,
    ENGINES,
    ESPEAK,
    GRIFFIN_LIM,
    HIBARI,
    KOKORO,
    Voice,
    draw_voice,
    engines_for,
)
from training.manifest import TRAIN
from training.splits import assign_group_splits

# Engines that speak one language other than English: they can only mimic clips of that language.
NATIVE_ONLY_ENGINES = tuple(
    sorted(a for a, e in ENGINES.items() if e.languages and len(e.languages) == 1 and ENGLISH not in e.languages)
)
DEFAULT_TOTAL_CLIPS = 8000
DEFAULT_SEED = 0
BONAFIDE = "bonafide"
REAL, FAKE = "real", "fake"

# Share of pairs taken from each package (the rest of a short package goes to the others). No
# source above 30 % of the real clips, so no one microphone or voice cast stands for "human".
SOURCE_SHARES = {
    TUXPAINT_PACKAGE: 0.24,
    FILLETS_PACKAGE: 0.15,
    KLETTRES_PACKAGE: 0.13,
    KTUBERLING_PACKAGE: 0.10,
    ASTERISK_PACKAGE: 0.08,
    FESTVOX_RU_PACKAGE: 0.08,
    GCIN_PACKAGE: 0.06,
    MENARDI_PACKAGE: 0.05,
    ARMELLE_PACKAGE: 0.05,
    ES_CO_PACKAGE: 0.05,
    POCKETSPHINX_PACKAGE: 0.01,
}
# No split group (a language, a game level) may fill more than this share of a package's pairs.
GROUP_CAP_FRACTION = 0.05
MIN_GROUP_CAP = 2
# English reals are favoured so that the English-only voices mostly mimic English speech.
ENGLISH_SAMPLING_WEIGHT = 2.0
# Extra pairs planned so that clips rejected while building (too little speech) leave the total intact.
SURPLUS_FRACTION = 0.03
MIN_SURPLUS = 2
# Groups pinned to a split: the Russian voice actor is also the festival Russian voice, so his real and
# synthetic speech must both be in training for the model to learn the synthesis rather than the voice.
PINNED_SPLITS = {FESTVOX_RU_SPEAKER: TRAIN}

# Target weight of each engine among the engines that could mimic a clip (any engine that speaks
# its language, when its words are known; every copy-synthesis vocoder). Engines with few languages
# weigh more, so the voices that only speak Russian, Catalan, Italian or Finnish get enough clips.
DEFAULT_ENGINE_WEIGHT = 1.0
ENGINE_WEIGHTS = {
    ESPEAK: 1.0,
    KOKORO: 1.5,
    HIBARI: 1.5,
    GRIFFIN_LIM: 0.5,
    **{attack: 0.5 for attack in COPY_SYNTHESIS if attack != GRIFFIN_LIM},
    **{attack: 0.6 for attack in engines_for(ENGLISH) if attack not in (ESPEAK, KOKORO, HIBARI)},
    **{attack: 3.0 for attack in NATIVE_ONLY_ENGINES},
}
# An English voice reading the English line of a non-English clip (a Dutch dialogue, a Tux Paint
# stamp) weighs this much of its weight: English voices need material, but each such fake is an
# English clip paired with a non-English one, a language imbalance the audit watches.
FOREIGN_TEXT_WEIGHT = 0.25

NATIVE, ENGLISH_LINE, COPY = "native", "english-line", "copy"


@dataclass(frozen=True)
class ClipJob:
    """Everything needed to build one clip and write its manifest row."""

    clip_id: str
    label: str
    attack: str
    family: str
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
    choices = _assign_attacks(chosen)
    splits = {**assign_group_splits([clip.group for clip in chosen], seed=seed), **PINNED_SPLITS}
    pairs = [_pair(clip, choice, splits[clip.group], seed) for clip, choice in zip(chosen, choices, strict=True)]
    return pairs, wanted


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


def _weighted_order(clips: Sequence[RealClip], seed: int, purpose: str) -> list[RealClip]:
    """Weighted random order without replacement (key u^(1/w)), English clips weighted up."""

    def key(clip: RealClip) -> float:
        uniform = np.random.default_rng(clip_seed(seed, clip.clip_id, purpose)).random()
        return -(uniform ** (1.0 / _english_weight(clip)))

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


def candidate_engines(clip: RealClip) -> dict[tuple[str, str], float]:
    """(engine, what it reads) → target weight, for every engine that can mimic the clip.

    An engine that speaks the clip's language reads its words; an English voice may read the
    clip's English line; a copy-synthesis vocoder resynthesises the recording itself.
    """
    candidates: dict[tuple[str, str], float] = {}
    if clip.text:
        for attack in engines_for(clip.language):
            candidates[(attack, NATIVE)] = ENGINE_WEIGHTS.get(attack, DEFAULT_ENGINE_WEIGHT)
    if clip.text_en and clip.language != ENGLISH:
        for attack in engines_for(ENGLISH):
            if (attack, NATIVE) not in candidates:
                weight = ENGINE_WEIGHTS.get(attack, DEFAULT_ENGINE_WEIGHT) * FOREIGN_TEXT_WEIGHT
                candidates[(attack, ENGLISH_LINE)] = weight
    for attack in COPY_SYNTHESIS:
        candidates[(attack, COPY)] = ENGINE_WEIGHTS.get(attack, DEFAULT_ENGINE_WEIGHT)
    return candidates


def _assign_attacks(chosen: Sequence[RealClip]) -> list[tuple[str, str]]:
    """Give each clip the candidate engine furthest below its expected count (low variance).

    Each clip adds its candidates' normalised weights to their expected counts; the engine with
    the largest deficit takes the clip. Engines end up close to their weights among the clips they
    could have mimicked, however unevenly languages and transcripts are spread.
    """
    expected: Counter = Counter()
    assigned: Counter = Counter()
    choices = []
    for clip in chosen:
        candidates = candidate_engines(clip)
        total = sum(candidates.values())
        for key, weight in candidates.items():
            expected[key[0]] += weight / total
        attack, mode = max(candidates, key=lambda k: (expected[k[0]] - assigned[k[0]], candidates[k], k))
        assigned[attack] += 1
        choices.append((attack, mode))
    return choices


def _pair(clip: RealClip, choice: tuple[str, str], split: str, seed: int) -> Pair:
    real_seed = clip_seed(seed, clip.clip_id)
    real = ClipJob(
        clip_id=clip.clip_id,
        label=REAL,
        attack=BONAFIDE,
        family=clip.family,
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
    return Pair(real, _fake_job(clip, choice, split, seed))


def source_channel(clip: RealClip) -> str:
    """The telephone channel a narrowband recording came through, for its fake to go through too."""
    if clip.band != NARROWBAND:
        return "none"
    return "gsm" if clip.path.suffix.lower() == ".gsm" else "band8k"


def _fake_job(clip: RealClip, choice: tuple[str, str], split: str, seed: int) -> ClipJob:
    attack, mode = choice
    engine = ENGINES[attack]
    fake_id = f"{attack}--{clip.clip_id}"
    fake_seed = clip_seed(seed, fake_id)
    rng = np.random.default_rng(fake_seed)
    language = ENGLISH if mode == ENGLISH_LINE else clip.language
    voice = draw_voice(attack, language, rng)
    if mode == COPY:
        speaker, text = clip.speaker, None
    else:
        speaker = engine.speaker or f"{attack}:{voice.name}"
        text = clip.text_en if mode == ENGLISH_LINE else clip.text
    treatment = dataclasses.replace(draw_treatment(rng), source_channel=source_channel(clip))
    return ClipJob(
        clip_id=fake_id,
        label=FAKE,
        attack=attack,
        family=engine.family,
        speaker=speaker,
        source=engine.source,
        language=language,
        group=clip.group,
        split=split,
        relative_path=f"clips/{FAKE}/{attack}/{fake_id}.flac",
        source_path=clip.path,
        text=text,
        voice=voice,
        treatment=treatment,
        seed=fake_seed,
    )

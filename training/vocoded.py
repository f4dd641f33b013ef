"""Vocoded copies of the real training clips: extra fakes that differ from a real clip only by a vocoder.

A detector that sees a voice only as real learns the voice; one that also sees the same clip
vocoded has to learn the vocoder's trace instead, which is what carries over to new speakers
(Wang and Yamagishi, "Spoofed training data for speech spoofing countermeasure can be
efficiently created using neural vocoders", ICASSP 2023). Two vocoders: Griffin-Lim through an
80-band mel bottleneck (the embedded dataset's own), or a neural vocoder trained first on the
same real clips (training.neural_vocoder; no package ships one). Each copy then passes through
a channel drawn from the dataset's mix, so codecs stay no shortcut. Copies are written once as
FLAC, named by the clip's content, copy number and seed, and reused by later runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.audio import decode_audio
from training import neural_vocoder
from training.embedded.build import write_flac
from training.embedded.channel import PEAK_CEILING, draw_treatment, pass_channel
from training.embedded.plan import FAKE
from training.embedded.tts import GRIFFIN_LIM, NEURAL_VOCODED_COPY, VOCODED_COPY, draw_voice, family_of, griffin_lim
from training.manifest import ManifestRow

GRIFFIN_LIM_VOCODER = "griffin-lim"
NEURAL_VOCODER = "neural"
VOCODER_ATTACKS = {GRIFFIN_LIM_VOCODER: VOCODED_COPY, NEURAL_VOCODER: NEURAL_VOCODED_COPY}
VOCODERS = tuple(VOCODER_ATTACKS)
VOCODED_ATTACK = VOCODED_COPY
VOCODED_FAMILY = family_of(VOCODED_ATTACK)  # held-out evaluation turns Griffin-Lim copies off for this family
NEURAL_DIRECTORY = "neural-vocoder"  # the neural copies and the vocoders' weights, under the copies' folder
CHANNEL_COLUMN = "channel"
KEY_CHARS = 16  # hex digits of the key in a copy's file name
SEED_CHARS = 16  # hex digits of the key that seed the copy's random draws (64 bits, halved to 63)
Resynthesis = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]  # (samples, rng, seed) → samples


def vocoded_copies(
    rows: Sequence[ManifestRow], copies: int, directory: Path, seed: int = 0, vocoder: str = GRIFFIN_LIM_VOCODER
) -> list[ManifestRow]:
    """`copies` vocoded fakes of every real row, made where missing, as manifest rows of the same split.

    The neural vocoder is trained on exactly these real rows (once; its weights are cached), so a
    held-out fold's vocoder never heard the real speech that fold holds out.
    """
    if vocoder not in VOCODERS:
        raise ValueError(f"unknown vocoder {vocoder!r}: choose {' or '.join(VOCODERS)}")
    reals = [row for row in rows if row.is_real]
    jobs = [(row, index) for row in reals for index in range(copies)]
    directory = Path(directory)
    if vocoder == NEURAL_VOCODER:
        paths = [row.path for row in reals]
        directory = neural_vocoder.vocoder_folder(paths, directory / NEURAL_DIRECTORY)  # copies beside their vocoder
        trained = neural_vocoder.load_or_train(paths, directory)
        resynthesise = partial(neural_copy, trained)
    else:
        resynthesise = griffin_lim_copy
    made = []
    for row, index in tqdm(jobs, desc=f"{vocoder} vocoded copies", unit="clip", leave=False):
        key = copy_key(row.path, index, seed)
        target = directory / f"{Path(row.path).stem}-{key[:KEY_CHARS]}.flac"
        if not target.is_file():
            make_copy(row.path, target, int(key[:SEED_CHARS], 16) >> 1, resynthesise)
        extras = {k: v for k, v in row.extras.items() if k != CHANNEL_COLUMN}  # the copy has a channel of its own
        attack = VOCODER_ATTACKS[vocoder]
        made.append(dataclasses.replace(row, path=target, label=FAKE, attack=attack, extras=extras))
    return made


def copy_key(source: Path, index: int, seed: int) -> str:
    """Hex digest of the clip's bytes, the copy number and the seed: a moved or re-cloned dataset
    gets the same copies, and a changed clip gets new ones."""
    content = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return hashlib.sha256(f"{seed}:{index}:{content}".encode()).hexdigest()


def griffin_lim_copy(samples: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
    """Griffin-Lim with a drawn FFT size and iteration count."""
    return griffin_lim(samples, draw_voice(GRIFFIN_LIM, "", rng), seed)


def neural_copy(
    trained: neural_vocoder.Vocoder, samples: np.ndarray, _rng: np.random.Generator, _seed: int
) -> np.ndarray:
    """The trained vocoder's resynthesis (deterministic: it draws nothing)."""
    return neural_vocoder.vocode(trained, samples)


def make_copy(source: Path, target: Path, seed: int, resynthesise: Resynthesis = griffin_lim_copy) -> None:
    """Decode → the vocoder → a drawn channel → FLAC."""
    rng = np.random.default_rng(seed)
    vocoded = resynthesise(decode_audio(source), rng, seed)
    treatment = draw_treatment(rng)
    peak = float(np.max(np.abs(vocoded), initial=0.0))
    if peak > PEAK_CEILING:
        vocoded = vocoded * (PEAK_CEILING / peak)
    write_flac(pass_channel(vocoded, treatment), target)

"""Vocoded copies of the real training clips: extra fakes that differ from a real clip only by a vocoder.

A detector that sees a voice only as real learns the voice; one that also sees the same clip
vocoded has to learn the vocoder's trace instead, which is what carries over to new speakers
(Wang and Yamagishi, "Spoofed training data for speech spoofing countermeasure can be
efficiently created using neural vocoders", ICASSP 2023). The only vocoder available offline is
Griffin-Lim through an 80-band mel bottleneck, the embedded dataset's own; each copy then passes
through a channel drawn from the dataset's mix, so codecs stay no shortcut. Copies are written
once as FLAC, named by the clip's content, copy number and seed, and reused by later runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.audio import decode_audio
from training.embedded.build import write_flac
from training.embedded.channel import PEAK_CEILING, draw_treatment, pass_channel
from training.embedded.plan import FAKE
from training.embedded.tts import GRIFFIN_LIM, draw_voice, griffin_lim
from training.manifest import ManifestRow

VOCODED_ATTACK = "vocoded-copy"
VOCODED_FAMILY = "griffin-lim"  # the synthesis family of the copies (held-out evaluation turns them off for it)
CHANNEL_COLUMN = "channel"
KEY_CHARS = 16  # hex digits of the key in a copy's file name
SEED_CHARS = 16  # hex digits of the key that seed the copy's random draws (64 bits, halved to 63)


def vocoded_copies(rows: Sequence[ManifestRow], copies: int, directory: Path, seed: int = 0) -> list[ManifestRow]:
    """`copies` vocoded fakes of every real row, made where missing, as manifest rows of the same split."""
    jobs = [(row, index) for row in rows if row.is_real for index in range(copies)]
    made = []
    for row, index in tqdm(jobs, desc="vocoded copies", unit="clip", leave=False):
        key = copy_key(row.path, index, seed)
        target = Path(directory) / f"{Path(row.path).stem}-{key[:KEY_CHARS]}.flac"
        if not target.is_file():
            make_copy(row.path, target, int(key[:SEED_CHARS], 16) >> 1)
        extras = without_channel(row)  # the copy has a channel of its own
        made.append(dataclasses.replace(row, path=target, label=FAKE, attack=VOCODED_ATTACK, extras=extras))
    return made


def without_channel(row: ManifestRow) -> dict[str, str]:
    """The row's extra columns less its channel: a derived copy went through a channel of its own."""
    return {k: v for k, v in row.extras.items() if k != CHANNEL_COLUMN}


def copy_key(source: Path, index: int, seed: int) -> str:
    """Hex digest of the clip's bytes, the copy number and the seed: a moved or re-cloned dataset
    gets the same copies, and a changed clip gets new ones."""
    content = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return hashlib.sha256(f"{seed}:{index}:{content}".encode()).hexdigest()


def make_copy(source: Path, target: Path, seed: int) -> None:
    """Decode → Griffin-Lim with a drawn FFT size and iteration count → a drawn channel → FLAC."""
    rng = np.random.default_rng(seed)
    voice = draw_voice(GRIFFIN_LIM, "", rng)
    treatment = draw_treatment(rng)
    vocoded = griffin_lim(decode_audio(source), voice, seed)
    peak = float(np.max(np.abs(vocoded), initial=0.0))
    if peak > PEAK_CEILING:
        vocoded = vocoded * (PEAK_CEILING / peak)
    write_flac(pass_channel(vocoded, treatment), target)

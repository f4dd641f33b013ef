"""WaveFake (Frank & Schönherr, 2021): LJSpeech and JSUT utterances re-synthesised by neural vocoders.

Layout (WaveFake's `generated_audio` next to the two real corpora it was made from):

    generated_audio/<corpus>_<vocoder>/<utterance>[_gen].wav    e.g. ljspeech_melgan, jsut_parallel_wavegan
    generated_audio/common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech/gen_<n>.wav
    LJSpeech-1.1/wavs/<utterance>.wav
    jsut_ver1.1/basic5000/wav/<utterance>.wav

Attack is the folder name after the corpus prefix (`melgan`, `multi_band_melgan`, ...). Each
corpus is one speaker, so a speaker split is impossible; instead a real utterance and all its
vocoded copies share one split (grouped by utterance id), so no sentence is seen in training
and again in testing. The full-TTS folder (Common Voice prompts in the LJSpeech voice) has no
real counterpart; each of its clips is its own group.
"""

from __future__ import annotations

from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    CorpusError,
    Scan,
    SplitOptions,
    audio_files,
    ensure_rows,
    require_dir,
)
from training.manifest import ManifestRow
from training.splits import assign_group_splits

NAME = "wavefake"
SOURCE = "wavefake"
GENERATED_FOLDER = "generated_audio"
REAL_FOLDERS = {"ljspeech": Path("LJSpeech-1.1/wavs"), "jsut": Path("jsut_ver1.1/basic5000/wav")}
TTS_FOLDER = "common_voices_prompts_from_conformer_fastspeech2_pwg_ljspeech"
TTS_CORPUS, TTS_ATTACK = "ljspeech", "conformer_fastspeech2_pwg"
GENERATED_SUFFIX = "_gen"


def build(root: Path, options: SplitOptions) -> Scan:
    generated = require_dir(root / GENERATED_FOLDER, NAME)
    fakes: list[tuple[ManifestRow, str]] = []
    for folder in sorted(p for p in generated.iterdir() if p.is_dir()):
        fakes += _fakes(folder)
    corpora = sorted({row.speaker for row, _ in fakes})
    reals = [pair for corpus in corpora for pair in _reals(root, corpus)]
    pairs = reals + fakes
    assignment = assign_group_splits([group for _, group in pairs], options.fractions, options.seed)
    for row, group in pairs:
        row.split = assignment[group]
    return ensure_rows(Scan([row for row, _ in pairs]), NAME, root)


def _fakes(folder: Path) -> list[tuple[ManifestRow, str]]:
    """Rows for one generator folder, each with the group (utterance) that decides its split."""
    paired = folder.name != TTS_FOLDER
    if not paired:
        corpus, attack = TTS_CORPUS, TTS_ATTACK
    else:
        corpus, _, attack = folder.name.partition("_")
        if corpus not in REAL_FOLDERS or not attack:
            expected = ", ".join(f"{c}_<vocoder>" for c in REAL_FOLDERS)
            raise CorpusError(f"{NAME}: folder {folder} is not named {expected} or {TTS_FOLDER}")
    pairs = []
    for path in audio_files(folder):
        group = f"{corpus}:{path.stem.removesuffix(GENERATED_SUFFIX)}" if paired else f"{TTS_FOLDER}:{path.stem}"
        row = ManifestRow(path=path, label="fake", attack=attack, speaker=corpus, source=SOURCE)
        pairs.append((row, group))
    return pairs


def _reals(root: Path, corpus: str) -> list[tuple[ManifestRow, str]]:
    """Real clips of a corpus whose vocoded copies are present; missing reals would leave one class only."""
    folder = require_dir(root / REAL_FOLDERS[corpus], NAME)
    return [
        (ManifestRow(path=p, label="real", attack=BONAFIDE_ATTACK, speaker=corpus, source=SOURCE), f"{corpus}:{p.stem}")
        for p in audio_files(folder)
    ]

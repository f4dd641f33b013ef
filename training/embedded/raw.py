"""The raw held-out set: test-split material without the shared processing chain.

The embedded dataset puts both classes through one chain (trim, level, padding, noise floor,
codec), which removes shortcuts in training but also hides them from its own test split. This
set keeps what a user would upload: the human recording exactly as the package ships it (OGG
Vorbis, its own silence and level) and the engine's output as the engine writes it (PCM WAV).
A detector that leaned on format, silence or level fails here.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from model.audio import SAMPLE_RATE, AudioDecodeError
from training.embedded.build import source_audio
from training.embedded.plan import ClipJob, Pair
from training.embedded.tts import SynthesisError
from training.manifest import ManifestRow, write_manifest

RAW_SPLIT = "test"
MANIFEST_NAME = "manifest.csv"


def build_raw_test(pairs: Sequence[Pair], out_dir: Path) -> Path:
    """Write the test split's pairs untouched under out_dir and return the manifest path."""
    rows: list[ManifestRow] = []
    for pair in pairs:
        if pair.real.split != RAW_SPLIT:
            continue
        try:
            built = [_write(job, out_dir) for job in (pair.real, pair.fake)]
        except (SynthesisError, AudioDecodeError):
            continue  # an engine that fails on this text: drop the pair, as the main build does
        rows += [_row(job, path) for job, path in zip((pair.real, pair.fake), built, strict=True)]
    return _write_manifest(rows, out_dir)


def _write(job: ClipJob, out_dir: Path) -> Path:
    """The real recording copied byte for byte; a fake as the engine's raw 16-bit WAV."""
    if job.label == "real":
        target = out_dir / "real" / f"{job.clip_id}{job.source_path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            shutil.copyfile(job.source_path, target)
        return target
    target = out_dir / "fake" / f"{job.clip_id}.wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        sf.write(target, source_audio(job), SAMPLE_RATE, subtype="PCM_16")
    return target


def _row(job: ClipJob, path: Path) -> ManifestRow:
    extras = {"language": job.language, "channel": "raw", "family": job.family, "group": job.group}
    return ManifestRow(path, job.label, RAW_SPLIT, job.attack, job.speaker, job.source, extras)


def _write_manifest(rows: list[ManifestRow], out_dir: Path) -> Path:
    path = out_dir / MANIFEST_NAME
    write_manifest(sorted(rows, key=lambda r: str(r.path)), path)
    return path

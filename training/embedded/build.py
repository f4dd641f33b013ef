"""Build planned clips into FLAC files in parallel, skip the finished ones, write the manifest.

A clip is finished when its FLAC exists (written to a temporary name and renamed, so a killed
run leaves no half file) or when a `.rejected` marker says it held too little audio; either way a
re-run does not touch it again. The manifest keeps the first `wanted` pairs of the plan whose two
clips both exist, so it is balanced, and the same plan gives the same manifest byte for byte.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from model.audio import SAMPLE_RATE, AudioDecodeError, decode_audio
from training.embedded.channel import ClipRejected, process
from training.embedded.plan import BONAFIDE, ClipJob, Pair
from training.embedded.tts import COPY_SYNTHESIS, SynthesisError, synthesize, vocode
from training.manifest import ManifestRow, write_manifest

MANIFEST_NAME = "manifest.csv"
REJECTED_SUFFIX = ".rejected"
FLAC_SUBTYPE = "PCM_16"
DEFAULT_WORKERS = 2
JOBS_PER_TASK = 4
# Workers are spawned fresh (no forked torch state) and each uses one thread, so N workers use N cores.
START_METHOD = "spawn"
TORCH_THREADS_PER_WORKER = 1


@dataclass(frozen=True)
class Outcome:
    """What happened to one clip: built now, already there, or rejected (now or before)."""

    clip_id: str
    status: str
    message: str = ""


def build_all(
    jobs: Sequence[ClipJob], out_dir: Path, workers: int = DEFAULT_WORKERS, quiet: bool = False
) -> list[Outcome]:
    """Build every job not finished yet, `workers` processes in parallel, with a progress bar."""
    pending = [job for job in jobs if _finished(job, out_dir) is None]
    outcomes = [Outcome(job.clip_id, status) for job in jobs if (status := _finished(job, out_dir)) is not None]
    tasks = [(job, out_dir) for job in pending]
    bar = tqdm(total=len(tasks), desc="building clips", unit="clip", disable=quiet or not tasks)
    if workers <= 1 or len(tasks) <= 1:
        _init_worker()
        results: Iterable[Outcome] = map(_build_task, tasks)
    else:
        pool = multiprocessing.get_context(START_METHOD).Pool(workers, initializer=_init_worker)
        results = pool.imap_unordered(_build_task, tasks, chunksize=JOBS_PER_TASK)
    try:
        for outcome in results:
            outcomes.append(outcome)
            bar.update()
    finally:
        bar.close()
        if workers > 1 and len(tasks) > 1:
            pool.close()
            pool.join()
    return outcomes


def _finished(job: ClipJob, out_dir: Path) -> str | None:
    target = out_dir / job.relative_path
    if target.is_file():
        return "existing"
    if _rejected_marker(target).is_file():
        return "rejected-before"
    return None


def _rejected_marker(target: Path) -> Path:
    return target.with_name(target.name + REJECTED_SUFFIX)


def _init_worker() -> None:
    torch.set_num_threads(TORCH_THREADS_PER_WORKER)


def _build_task(task: tuple[ClipJob, Path]) -> Outcome:
    job, out_dir = task
    return build_clip(job, out_dir)


def build_clip(job: ClipJob, out_dir: Path) -> Outcome:
    """Make one clip: source audio (recording, TTS or Griffin-Lim) → shared chain → 16-bit FLAC."""
    target = out_dir / job.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        samples = process(source_audio(job), job.treatment, np.random.default_rng(job.seed))
    except (ClipRejected, SynthesisError, AudioDecodeError) as error:
        _rejected_marker(target).write_text(f"{error}\n")
        return Outcome(job.clip_id, "rejected", str(error))
    write_flac(samples, target)
    return Outcome(job.clip_id, "built")


def write_flac(samples: np.ndarray, target: Path) -> None:
    """16-bit FLAC at 16 kHz, written under a temporary name and renamed: never a half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    sf.write(partial, samples, SAMPLE_RATE, format="FLAC", subtype=FLAC_SUBTYPE)
    partial.replace(target)


def source_audio(job: ClipJob) -> np.ndarray:
    """The raw 16 kHz audio a clip starts from, before the shared post-processing."""
    if job.attack == BONAFIDE:
        return decode_audio(job.source_path)
    if job.voice is None:
        raise ValueError(f"fake clip {job.clip_id} has no voice")
    if job.attack in COPY_SYNTHESIS:
        return vocode(decode_audio(job.source_path), job.voice, job.seed)
    if not job.text:
        raise SynthesisError(f"no text to speak for {job.clip_id}")
    return synthesize(job.voice, job.text)


def kept_pairs(pairs: Sequence[Pair], wanted: int, out_dir: Path) -> list[Pair]:
    """The first `wanted` planned pairs whose real and fake clips both exist on disk."""
    complete = [p for p in pairs if all((out_dir / j.relative_path).is_file() for j in (p.real, p.fake))]
    return complete[:wanted]


def manifest_rows(pairs: Sequence[Pair], out_dir: Path) -> list[ManifestRow]:
    """Manifest rows (sorted by path) with language, channel, family and split group as extra columns."""
    jobs = sorted((job for pair in pairs for job in (pair.real, pair.fake)), key=lambda j: j.relative_path)
    return [
        ManifestRow(
            path=out_dir / job.relative_path,
            label=job.label,
            split=job.split,
            attack=job.attack,
            speaker=job.speaker,
            source=job.source,
            extras={
                "language": job.language,
                "channel": job.treatment.channel_label,
                "family": job.family,
                "group": job.group,
            },
        )
        for job in jobs
    ]


def write_dataset_manifest(pairs: Sequence[Pair], out_dir: Path) -> Path:
    path = out_dir / MANIFEST_NAME
    write_manifest(manifest_rows(pairs, out_dir), path)
    return path

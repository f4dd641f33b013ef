"""What every corpus adapter shares: the error type, the split options, the result and layout checks.

An adapter reads a corpus exactly as its publisher ships it and returns manifest rows, so that a
researcher can point the project at their copy without writing glue code. Errors name the
missing folder or the offending protocol line, because a wrong `--root` is the common mistake.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training.manifest import ManifestError, ManifestRow
from training.splits import DEFAULT_FRACTIONS, DEFAULT_SEED

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
BONAFIDE_ATTACK = "bonafide"
UNKNOWN_ATTACK = "unknown"
NOT_APPLICABLE = "-"


class CorpusError(ManifestError):
    """The corpus on disk does not match the layout its adapter expects; the message says where."""


@dataclass(frozen=True)
class SplitOptions:
    """How to fill `split` where a corpus has no official partition."""

    fractions: Sequence[float] = DEFAULT_FRACTIONS
    seed: int = DEFAULT_SEED


@dataclass
class Scan:
    """An adapter's answer: the manifest rows, and the clips its protocol lists that are not on disk."""

    rows: list[ManifestRow]
    missing: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Adapter:
    """A registered corpus format.

    `speaker_resplit` marks formats with an official partition and real speaker labels, whose
    split `--speaker-split` may replace with a speaker-disjoint one.
    """

    name: str
    summary: str
    build: Callable[[Path, SplitOptions], Scan]
    speaker_resplit: bool = False


def require_dir(path: Path, corpus: str) -> Path:
    if not path.is_dir():
        raise CorpusError(f"{corpus}: expected folder {path} is missing; is --root the corpus folder?")
    return path


def require_file(path: Path, corpus: str) -> Path:
    if not path.is_file():
        raise CorpusError(f"{corpus}: expected file {path} is missing; is --root the corpus folder?")
    return path


def protocol_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, whitespace-split fields) for each non-blank line of a protocol file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                yield number, fields


def malformed(path: Path, line_number: int, problem: str, fields: Sequence[str]) -> CorpusError:
    return CorpusError(f"{path}:{line_number}: {problem}: {' '.join(fields)!r}")


def file_names(folder: Path) -> set[str]:
    """Names in one folder, listed once: a per-clip stat would be slow for the 600k-clip corpora."""
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries}


def keep_existing(rows: list[ManifestRow], names_on_disk: set[str]) -> Scan:
    """Separate listed rows (all in one folder) into those whose audio is on disk and the missing paths.

    A partly extracted corpus (ASVspoof 2021 DF ships in four archives) still yields a usable
    manifest; the caller reports what was left out instead of failing.
    """
    kept = [row for row in rows if row.path.name in names_on_disk]
    missing = [row.path for row in rows if row.path.name not in names_on_disk]
    return Scan(kept, missing)


def audio_files(folder: Path) -> list[Path]:
    """Audio files anywhere below `folder`, sorted so that every run sees the same order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def ensure_rows(scan: Scan, corpus: str, root: Path) -> Scan:
    if not scan.rows:
        detail = f"; none of the {len(scan.missing)} listed clips is on disk" if scan.missing else ""
        raise CorpusError(f"{corpus}: found no audio under {root}{detail}")
    return scan

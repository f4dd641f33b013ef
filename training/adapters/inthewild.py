"""In-the-Wild (Müller et al., 2022): celebrity and politician speech, real and deepfaked.

Layout (the extracted `release_in_the_wild` folder, or the folder that holds it):

    release_in_the_wild/meta.csv     columns file,speaker,label; label `bona-fide` or `spoof`
    release_in_the_wild/<n>.wav

The corpus has no official partition and no attack names: the split is speaker-disjoint
(via training.splits) and every fake gets attack `unknown`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    UNKNOWN_ATTACK,
    CorpusError,
    Scan,
    SplitOptions,
    ensure_rows,
    file_names,
    keep_existing,
    require_file,
)
from training.manifest import ManifestRow
from training.splits import split_by_speaker

NAME = "inthewild"
SOURCE = "in-the-wild"
NESTED_FOLDER = "release_in_the_wild"
META_FILE = "meta.csv"
META_COLUMNS = ("file", "speaker", "label")
LABELS = {"bona-fide": "real", "spoof": "fake"}


def build(root: Path, options: SplitOptions) -> Scan:
    root = _corpus_folder(root)
    meta = require_file(root / META_FILE, NAME)
    scan = keep_existing(_read_meta(meta, root), file_names(root))
    split_by_speaker(scan.rows, options.fractions, options.seed)
    return ensure_rows(scan, NAME, root)


def _corpus_folder(root: Path) -> Path:
    """Accept both `release_in_the_wild` and the folder that holds it."""
    nested = root / NESTED_FOLDER
    return nested if not (root / META_FILE).is_file() and (nested / META_FILE).is_file() else root


def _read_meta(meta: Path, folder: Path) -> list[ManifestRow]:
    with meta.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in META_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{meta}:1: header lacks column(s) {', '.join(missing)}")
        return [_row(meta, number, raw, folder) for number, raw in enumerate(reader, start=2)]


def _row(meta: Path, number: int, raw: dict[str, str], folder: Path) -> ManifestRow:
    label = LABELS.get((raw["label"] or "").strip().lower())
    if label is None:
        raise CorpusError(f"{meta}:{number}: label {raw['label']!r} is not one of {tuple(LABELS)}")
    name = (raw["file"] or "").strip()
    if not name:
        raise CorpusError(f"{meta}:{number}: empty file name")
    return ManifestRow(
        path=folder / name,
        label=label,
        attack=BONAFIDE_ATTACK if label == "real" else UNKNOWN_ATTACK,
        speaker=(raw["speaker"] or "").strip(),
        source=SOURCE,
    )

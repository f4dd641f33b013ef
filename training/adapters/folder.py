"""Any corpus sorted into `real/` and `fake/` folders: the adapter for data no other format covers.

Layout:

    real/[<speaker>/...]<clip>.{wav,flac,mp3,ogg,opus,m4a}
    fake/[<speaker>/...]<clip>.{wav,flac,mp3,ogg,opus,m4a}

Both trees are searched recursively. The first subfolder below `real/` or `fake/`, when there is
one, names the speaker, so that a speaker's real clips and the fakes of that speaker land in the
same split; the split is speaker-disjoint (via training.splits), and a clip with no speaker
folder is its own group. Fakes get attack `unknown`; `source` is the root folder's name.
"""

from __future__ import annotations

from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    UNKNOWN_ATTACK,
    Scan,
    SplitOptions,
    audio_files,
    ensure_rows,
    require_dir,
)
from training.manifest import LABELS, ManifestRow
from training.splits import split_by_speaker

NAME = "folder"


def build(root: Path, options: SplitOptions) -> Scan:
    folders = {label: require_dir(root / label, NAME) for label in LABELS}  # named after the labels
    rows = [_row(path, folder, label, root.name) for label, folder in folders.items() for path in audio_files(folder)]
    split_by_speaker(rows, options.fractions, options.seed)
    return ensure_rows(Scan(rows), NAME, root)


def _row(path: Path, class_folder: Path, label: str, source: str) -> ManifestRow:
    parts = path.relative_to(class_folder).parts
    return ManifestRow(
        path=path,
        label=label,
        attack=BONAFIDE_ATTACK if label == "real" else UNKNOWN_ATTACK,
        speaker=parts[0] if len(parts) > 1 else "",
        source=source,
    )

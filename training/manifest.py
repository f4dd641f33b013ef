"""The manifest CSV every dataset becomes: `path,label[,split,attack,speaker,source,...]`.

`label` is `real` or `fake`. Paths are stored relative to the manifest's folder when they lie
under it, so a dataset folder can be moved whole. Columns beyond the standard ones (an
ASVspoof codec, say) are kept as `extras` and reported on by evaluation.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

STANDARD_COLUMNS = ("path", "label", "split", "attack", "speaker", "source")
REQUIRED_COLUMNS = ("path", "label")
LABELS = ("real", "fake")
TRAIN = "train"  # the split models learn from; dev picks, test reports
SPLITS = (TRAIN, "dev", "test")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and line."""


@dataclass
class ManifestRow:
    path: Path
    label: str
    split: str = ""
    attack: str = ""
    speaker: str = ""
    source: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def is_real(self) -> bool:
        return self.label == "real"

    def column(self, name: str) -> str:
        return str(getattr(self, name)) if name in STANDARD_COLUMNS else self.extras.get(name, "")


def read_manifest(path: Path) -> list[ManifestRow]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: header lacks column(s) {', '.join(missing)}")
        rows = [_parse_row(path, line_number, raw) for line_number, raw in enumerate(reader, start=2)]
    if not rows:
        raise ManifestError(f"{path}: no rows")
    return rows


def _parse_row(manifest: Path, line_number: int, raw: dict[str, str]) -> ManifestRow:
    where = f"{manifest}:{line_number}"
    label = (raw.get("label") or "").strip().lower()
    if label not in LABELS:
        raise ManifestError(f"{where}: label {raw.get('label')!r} is not one of {LABELS}")
    split = (raw.get("split") or "").strip()
    if split and split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
    if not raw.get("path"):
        raise ManifestError(f"{where}: empty path")
    audio_path = Path(raw["path"])
    if not audio_path.is_absolute():
        audio_path = manifest.parent / audio_path
    extras = {k: v or "" for k, v in raw.items() if k not in STANDARD_COLUMNS and k is not None}
    standard = {c: (raw.get(c) or "").strip() for c in ("attack", "speaker", "source")}
    return ManifestRow(path=audio_path, label=label, split=split, extras=extras, **standard)


def write_manifest(rows: Iterable[ManifestRow], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    extra_columns = sorted({k for row in rows for k in row.extras})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*STANDARD_COLUMNS, *extra_columns])
        for row in rows:
            writer.writerow([relative_path(row.path, path.parent), *(row.column(c) for c in STANDARD_COLUMNS[1:]),
                             *(row.extras.get(c, "") for c in extra_columns)])  # fmt: skip


def relative_path(audio_path: Path, base: Path) -> str:
    """`audio_path` relative to `base` when it lies below it (so the CSV can move with its data)."""
    try:
        return Path(audio_path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(audio_path)

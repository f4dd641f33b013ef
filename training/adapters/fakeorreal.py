"""Fake-or-Real (FoR, Reimao & Tzerpos, 2019), any one of its versions: original, norm, 2sec, rerec.

Layout (a version folder such as `for-norm`, `for-2seconds`, `for-rerecorded`; a folder holding
exactly one such version folder, as the Kaggle archives nest them, is accepted too):

    {training,validation,testing}/{real,fake}/<clip>.wav

training/validation/testing become train/dev/test. FoR names neither speakers nor the TTS
system of a fake, so speaker stays empty and every fake gets attack `unknown`; `source` is the
version folder's name, so that manifests of several versions can be told apart.
"""

from __future__ import annotations

from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    UNKNOWN_ATTACK,
    CorpusError,
    Scan,
    SplitOptions,
    audio_files,
    ensure_rows,
    require_dir,
)
from training.manifest import LABELS, ManifestRow

NAME = "for"
PARTITIONS = {"training": "train", "validation": "dev", "testing": "test"}


def build(root: Path, _options: SplitOptions) -> Scan:
    """The official partitions are the split."""
    version = _version_folder(root)
    rows = []
    for partition, split in PARTITIONS.items():
        for label in LABELS:  # the class folders are named after the labels
            folder = require_dir(version / partition / label, NAME)
            attack = BONAFIDE_ATTACK if label == "real" else UNKNOWN_ATTACK
            rows += [
                ManifestRow(path=p, label=label, split=split, attack=attack, source=version.name)
                for p in audio_files(folder)
            ]
    return ensure_rows(Scan(rows), NAME, version)


def _version_folder(root: Path) -> Path:
    """The folder holding the partitions: the root itself, or its only child that holds them."""
    if any((root / partition).is_dir() for partition in PARTITIONS):
        return root
    candidates = sorted(p for p in root.iterdir() if (p / next(iter(PARTITIONS))).is_dir()) if root.is_dir() else []
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise CorpusError(f"{NAME}: {root} holds several versions ({names}); point --root at one of them")
    return candidates[0] if candidates else root

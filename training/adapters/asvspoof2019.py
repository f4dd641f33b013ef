"""ASVspoof 2019 logical access (LA): the official train/dev/eval partitions become train/dev/test.

Layout (the `LA` folder of LA.zip; a root holding `LA/` is accepted too):

    ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt
    ASVspoof2019_LA_{train,dev,eval}/flac/<utterance>.flac

Protocol lines are `SPEAKER UTTERANCE - ATTACK KEY`, e.g. `LA_0039 LA_E_2834763 - A11 spoof`;
the attack of a bona fide line is `-` and becomes `bonafide`. The partitions are already
speaker-disjoint; `--speaker-split` re-partitions by speaker with the requested fractions.
"""

from __future__ import annotations

from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    NOT_APPLICABLE,
    Scan,
    SplitOptions,
    ensure_rows,
    file_names,
    keep_existing,
    malformed,
    protocol_lines,
    require_dir,
    require_file,
)
from training.manifest import ManifestRow

NAME = "asvspoof2019"
SOURCE = "asvspoof2019-LA"
NESTED_FOLDER = "LA"
PROTOCOL_FOLDER = "ASVspoof2019_LA_cm_protocols"
PARTITIONS = {  # official partition -> (protocol file, manifest split)
    "train": ("ASVspoof2019.LA.cm.train.trn.txt", "train"),
    "dev": ("ASVspoof2019.LA.cm.dev.trl.txt", "dev"),
    "eval": ("ASVspoof2019.LA.cm.eval.trl.txt", "test"),
}
KEYS = {"bonafide": "real", "spoof": "fake"}
PROTOCOL_COLUMNS = 5


def build(root: Path, _options: SplitOptions) -> Scan:
    """The official partitions are the split; `--speaker-split` is applied by the caller."""
    root = _corpus_folder(root)
    require_dir(root / PROTOCOL_FOLDER, NAME)
    scan = Scan([])
    for partition, (protocol_name, split) in PARTITIONS.items():
        protocol = require_file(root / PROTOCOL_FOLDER / protocol_name, NAME)
        audio = require_dir(root / f"ASVspoof2019_LA_{partition}" / "flac", NAME)
        part = keep_existing(_read_protocol(protocol, audio, split), file_names(audio))
        scan.rows += part.rows
        scan.missing += part.missing
    return ensure_rows(scan, NAME, root)


def _corpus_folder(root: Path) -> Path:
    """Accept both the `LA` folder and the folder that holds it."""
    nested = root / NESTED_FOLDER
    return nested if not (root / PROTOCOL_FOLDER).is_dir() and (nested / PROTOCOL_FOLDER).is_dir() else root


def _read_protocol(protocol: Path, audio: Path, split: str) -> list[ManifestRow]:
    rows = []
    for number, fields in protocol_lines(protocol):
        if len(fields) != PROTOCOL_COLUMNS:
            raise malformed(protocol, number, f"expected {PROTOCOL_COLUMNS} columns, got {len(fields)}", fields)
        speaker, utterance, _, attack, key = fields
        if key not in KEYS:
            raise malformed(protocol, number, f"key {key!r} is not one of {tuple(KEYS)}", fields)
        if key == "spoof" and attack == NOT_APPLICABLE:
            raise malformed(protocol, number, "a spoof line names no attack", fields)
        rows.append(
            ManifestRow(
                path=audio / f"{utterance}.flac",
                label=KEYS[key],
                split=split,
                attack=BONAFIDE_ATTACK if key == "bonafide" else attack,
                speaker=speaker,
                source=SOURCE,
            )
        )
    return rows

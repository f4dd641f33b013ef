"""ASVspoof 2021 logical access (LA) and speech deepfake (DF) evaluation data, with the released keys.

Layout (each track is optional, at least one is needed; keys come from LA-/DF-keys-full.tar.gz):

    ASVspoof2021_{LA,DF}_eval/flac/<trial>.flac
    keys/{LA,DF}/CM/trial_metadata.txt

Key lines are read by position: speaker 0, trial 1, codec 2, transmission (LA) or source
corpus (DF) 3, attack 4, key 5, trim 6, subset 7; the full DF keys add vocoder type, VCC task,
VCC team, gender pair and language (13 columns), stage-1 and LA keys stop at 8. Everything but
the speaker, attack and key is kept as a manifest extra so evaluation can break results down
by codec, transmission, vocoder, trim or subset.

ASVspoof 2021 has evaluation data only (train on ASVspoof 2019), so every clip gets split `test`;
the progress/eval/hidden subset stays in the `subset` column (official results use `eval`).
`--speaker-split` re-partitions by speaker instead.
"""

from __future__ import annotations

from pathlib import Path

from training.adapters.base import (
    BONAFIDE_ATTACK,
    NOT_APPLICABLE,
    CorpusError,
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

NAME = "asvspoof2021"
TRACKS = ("LA", "DF")
SPLIT = "test"
KEYS = {"bonafide": "real", "spoof": "fake"}
COLUMN_3 = {"LA": "transmission", "DF": "corpus"}
STAGE1_COLUMNS = 8
FULL_EXTRAS = ("vocoder", "task", "team", "gender_pair", "language")
FULL_COLUMNS = STAGE1_COLUMNS + len(FULL_EXTRAS)


def key_file(root: Path, track: str) -> Path:
    return root / "keys" / track / "CM" / "trial_metadata.txt"


def audio_folder(root: Path, track: str) -> Path:
    return root / f"ASVspoof2021_{track}_eval" / "flac"


def build(root: Path, _options: SplitOptions) -> Scan:
    """Every clip is evaluation data (split `test`); `--speaker-split` is applied by the caller."""
    tracks = [t for t in TRACKS if key_file(root, t).exists() or audio_folder(root, t).parent.exists()]
    if not tracks:
        expected = ", ".join(str(key_file(root, t)) for t in TRACKS)
        raise CorpusError(f"{NAME}: found neither track under {root}; expected {expected}")
    scan = Scan([])
    for track in tracks:
        keys = require_file(key_file(root, track), NAME)
        audio = require_dir(audio_folder(root, track), NAME)
        part = keep_existing(_read_keys(keys, audio, track), file_names(audio))
        scan.rows += part.rows
        scan.missing += part.missing
    return ensure_rows(scan, NAME, root)


def _read_keys(keys: Path, audio: Path, track: str) -> list[ManifestRow]:
    names = ("codec", COLUMN_3[track], "trim", "subset")
    rows = []
    for number, fields in protocol_lines(keys):
        if len(fields) not in (STAGE1_COLUMNS, FULL_COLUMNS):
            problem = f"expected {STAGE1_COLUMNS} or {FULL_COLUMNS} columns, got {len(fields)}"
            raise malformed(keys, number, problem, fields)
        speaker, trial, codec, column_3, attack, key, trim, subset = fields[:STAGE1_COLUMNS]
        if key not in KEYS:
            raise malformed(keys, number, f"key {key!r} is not one of {tuple(KEYS)}", fields)
        if key == "spoof" and attack in (NOT_APPLICABLE, BONAFIDE_ATTACK):
            raise malformed(keys, number, "a spoof line names no attack", fields)
        extras = dict(zip(names, (codec, column_3, trim, subset), strict=True))
        extras |= dict(zip(FULL_EXTRAS, fields[STAGE1_COLUMNS:], strict=False))
        rows.append(
            ManifestRow(
                path=audio / f"{trial}.flac",
                label=KEYS[key],
                split=SPLIT,
                attack=BONAFIDE_ATTACK if key == "bonafide" else attack,
                speaker=speaker,
                source=f"{NAME}-{track}",
                extras={name: "" if value == NOT_APPLICABLE else value for name, value in extras.items()},
            )
        )
    return rows

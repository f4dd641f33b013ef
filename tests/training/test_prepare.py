"""Corpus adapters and the `training.prepare` CLI, on tiny replicas of each corpus's real layout."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.adapters import asvspoof2019, asvspoof2021, fakeorreal, folder, inthewild, wavefake
from training.adapters.base import CorpusError, SplitOptions
from training.adapters.registry import ADAPTERS
from training.manifest import ManifestRow, read_manifest
from training.prepare import main, prepare, sample_balanced

SAMPLE_RATE = 16_000
CLIP = np.random.default_rng(0).uniform(-0.1, 0.1, 800).astype(np.float32)
OPTIONS = SplitOptions()

LA2019_PROTOCOLS = {
    "train": [
        "LA_0079 LA_T_1138215 - - bonafide",
        "LA_0079 LA_T_1271820 - A01 spoof",
        "LA_0080 LA_T_1000003 - - bonafide",
        "LA_0080 LA_T_1000004 - A02 spoof",
    ],
    "dev": ["LA_0069 LA_D_1000001 - - bonafide", "LA_0069 LA_D_1000002 - A03 spoof"],
    "eval": ["LA_0039 LA_E_2834763 - A11 spoof", "LA_0040 LA_E_1000002 - - bonafide"],
}
LA2019_FILES = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
LA2021_KEYS = [
    "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval",
    "LA_0009 LA_E_1000001 none loc_tx bonafide bonafide notrim progress",
    "LA_0010 LA_E_1000002 gsm sin_tx - bonafide trim hidden",
    "LA_0011 LA_E_1000003 opus mad_tx A19 spoof notrim eval",
]
DF2021_KEYS = [
    "LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -",
    "TEF2 DF_E_2000012 low_mp3 vcc2020 Task1-team20 spoof notrim eval "
    "neural_vocoder_autoregressive Task1 team20 F-F en",
    "LA_0024 DF_E_2000013 high_m4a asvspoof - bonafide notrim eval bonafide - - - -",
    "TEF1 DF_E_2000014 oggm4a vcc2020 - bonafide notrim eval bonafide Task1 - F-F en",
]


def write_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, CLIP, SAMPLE_RATE)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def make_asvspoof2019(root: Path) -> Path:
    for partition, lines in LA2019_PROTOCOLS.items():
        name = f"ASVspoof2019.LA.cm.{LA2019_FILES[partition]}.txt"
        write_lines(root / "ASVspoof2019_LA_cm_protocols" / name, lines)
        for line in lines:
            write_clip(root / f"ASVspoof2019_LA_{partition}" / "flac" / f"{line.split()[1]}.flac")
    return root


def make_asvspoof2021(root: Path, tracks: dict[str, list[str]]) -> Path:
    for track, lines in tracks.items():
        write_lines(root / "keys" / track / "CM" / "trial_metadata.txt", lines)
        for line in lines:
            write_clip(root / f"ASVspoof2021_{track}_eval" / "flac" / f"{line.split()[1]}.flac")
    return root


def make_inthewild(root: Path, speakers: int = 8) -> Path:
    folder_path = root / "release_in_the_wild"
    rows = [("file", "speaker", "label")]
    for s in range(speakers):
        for label in ("bona-fide", "spoof"):
            name = f"{len(rows) - 1}.wav"
            write_clip(folder_path / name)
            rows.append((name, f"Speaker {s}", label))
    with (folder_path / "meta.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def make_wavefake(root: Path) -> Path:
    lj_ids = [f"LJ001-{i:04d}" for i in range(1, 9)]
    jsut_ids = [f"BASIC5000_{i:04d}" for i in range(1, 4)]
    for utt in lj_ids:
        write_clip(root / "LJSpeech-1.1" / "wavs" / f"{utt}.wav")
        write_clip(root / "generated_audio" / "ljspeech_melgan" / f"{utt}_gen.wav")
        write_clip(root / "generated_audio" / "ljspeech_waveglow" / f"{utt}.wav")
    for utt in jsut_ids:
        write_clip(root / "jsut_ver1.1" / "basic5000" / "wav" / f"{utt}.wav")
        write_clip(root / "generated_audio" / "jsut_multi_band_melgan" / f"{utt}_gen.wav")
    write_clip(root / "generated_audio" / wavefake.TTS_FOLDER / "gen_0.wav")
    return root


def make_for(version: Path) -> Path:
    for partition in ("training", "validation", "testing"):
        for label in ("real", "fake"):
            for i in range(2):
                write_clip(version / partition / label / f"file{i}.wav_16k.wav_norm.wav_mono.wav_silence.wav")
    return version


def make_folder(root: Path, speakers: int = 6) -> Path:
    for s in range(speakers):
        write_clip(root / "real" / f"spk{s}" / "a.wav")
        write_clip(root / "real" / f"spk{s}" / "session" / "b.flac")
        write_clip(root / "fake" / f"spk{s}" / "tts" / "c.ogg")
    write_clip(root / "fake" / "loose.WAV")
    (root / "fake" / "notes.txt").write_text("not audio")
    return root


def by_name(rows: list[ManifestRow]) -> dict[str, ManifestRow]:
    return {row.path.stem: row for row in rows}


def splits_per(rows: list[ManifestRow], key: str) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        groups[row.column(key)].add(row.split)
    return groups


# ---------------------------------------------------------------- asvspoof2019


def test_asvspoof2019_maps_partitions_keys_and_attacks(tmp_path):
    scan = asvspoof2019.build(make_asvspoof2019(tmp_path / "LA"), OPTIONS)
    rows = by_name(scan.rows)
    assert len(rows) == 8 and not scan.missing
    assert rows["LA_T_1138215"].label == "real" and rows["LA_T_1138215"].attack == "bonafide"
    assert rows["LA_T_1271820"].label == "fake" and rows["LA_T_1271820"].attack == "A01"
    assert rows["LA_E_2834763"].attack == "A11" and rows["LA_E_2834763"].speaker == "LA_0039"
    assert Counter(row.split for row in scan.rows) == {"train": 4, "dev": 2, "test": 2}
    assert rows["LA_D_1000001"].split == "dev" and rows["LA_E_1000002"].split == "test"
    assert all(row.path.is_file() and row.source == "asvspoof2019-LA" for row in scan.rows)


def test_asvspoof2019_accepts_the_folder_holding_la(tmp_path):
    make_asvspoof2019(tmp_path / "LA")
    assert len(asvspoof2019.build(tmp_path, OPTIONS).rows) == 8


def test_asvspoof2019_wrong_root_names_the_missing_folder(tmp_path):
    root = make_asvspoof2019(tmp_path / "LA")
    for clip in (root / "ASVspoof2019_LA_dev" / "flac").iterdir():
        clip.unlink()
    (root / "ASVspoof2019_LA_dev" / "flac").rmdir()
    with pytest.raises(CorpusError, match=r"ASVspoof2019_LA_dev/flac is missing"):
        asvspoof2019.build(root, OPTIONS)
    with pytest.raises(CorpusError, match=r"ASVspoof2019_LA_cm_protocols is missing"):
        asvspoof2019.build(tmp_path / "elsewhere", OPTIONS)


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("LA_0079 LA_T_9 - bonafide", "expected 5 columns, got 4"),
        ("LA_0079 LA_T_9 - A01 fake", "key 'fake' is not one of"),
        ("LA_0079 LA_T_9 - - spoof", "a spoof line names no attack"),
    ],
)
def test_asvspoof2019_malformed_line_names_file_and_line(tmp_path, bad_line, problem):
    root = make_asvspoof2019(tmp_path / "LA")
    protocol = root / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt"
    write_lines(protocol, [*LA2019_PROTOCOLS["train"][:2], "", bad_line])
    with pytest.raises(CorpusError) as error:
        asvspoof2019.build(root, OPTIONS)
    assert f"{protocol}:4:" in str(error.value) and problem in str(error.value)


# ---------------------------------------------------------------- asvspoof2021


def test_asvspoof2021_reads_la_and_df_keys_with_extras(tmp_path):
    scan = asvspoof2021.build(make_asvspoof2021(tmp_path, {"LA": LA2021_KEYS, "DF": DF2021_KEYS}), OPTIONS)
    rows = by_name(scan.rows)
    assert len(rows) == 8 and {row.split for row in scan.rows} == {"test"}
    la, bona, trimmed = rows["LA_E_9332881"], rows["LA_E_1000001"], rows["LA_E_1000002"]
    assert (la.label, la.attack, la.speaker, la.source) == ("fake", "A07", "LA_0009", "asvspoof2021-LA")
    assert la.extras == {"codec": "alaw", "transmission": "ita_tx", "trim": "notrim", "subset": "eval"}
    assert (bona.label, bona.attack, bona.extras["subset"]) == ("real", "bonafide", "progress")
    assert (trimmed.attack, trimmed.extras["trim"], trimmed.extras["subset"]) == ("bonafide", "trim", "hidden")
    vcc = rows["DF_E_2000012"]
    assert (vcc.attack, vcc.speaker, vcc.source) == ("Task1-team20", "TEF2", "asvspoof2021-DF")
    assert vcc.extras == {
        "codec": "low_mp3",
        "corpus": "vcc2020",
        "trim": "notrim",
        "subset": "eval",
        "vocoder": "neural_vocoder_autoregressive",
        "task": "Task1",
        "team": "team20",
        "gender_pair": "F-F",
        "language": "en",
    }
    assert rows["DF_E_2000011"].extras["team"] == "" and rows["DF_E_2000011"].extras["corpus"] == "asvspoof"
    assert rows["DF_E_2000013"].label == "real" and rows["DF_E_2000013"].attack == "bonafide"


def test_asvspoof2021_one_track_and_missing_clips(tmp_path):
    root = make_asvspoof2021(tmp_path, {"DF": DF2021_KEYS})
    (root / "ASVspoof2021_DF_eval" / "flac" / "DF_E_2000014.flac").unlink()
    scan = asvspoof2021.build(root, OPTIONS)
    assert {row.source for row in scan.rows} == {"asvspoof2021-DF"} and len(scan.rows) == 3
    assert [p.name for p in scan.missing] == ["DF_E_2000014.flac"]


def test_asvspoof2021_wrong_root_and_missing_audio(tmp_path):
    with pytest.raises(CorpusError, match=r"keys/LA/CM/trial_metadata\.txt, .*keys/DF/CM/trial_metadata\.txt"):
        asvspoof2021.build(tmp_path, OPTIONS)
    write_lines(tmp_path / "keys" / "DF" / "CM" / "trial_metadata.txt", DF2021_KEYS)
    with pytest.raises(CorpusError, match=r"ASVspoof2021_DF_eval/flac is missing"):
        asvspoof2021.build(tmp_path, OPTIONS)


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("LA_0009 LA_E_9 alaw ita_tx A07 spoof notrim eval extra column", "expected 8 or 13 columns, got 10"),
        ("LA_0009 LA_E_9 alaw ita_tx A07 maybe notrim eval", "key 'maybe' is not one of"),
        ("LA_0009 LA_E_9 alaw ita_tx - spoof notrim eval", "a spoof line names no attack"),
    ],
)
def test_asvspoof2021_malformed_line_names_file_and_line(tmp_path, bad_line, problem):
    root = make_asvspoof2021(tmp_path, {"LA": [*LA2021_KEYS[:2], bad_line]})
    with pytest.raises(CorpusError) as error:
        asvspoof2021.build(root, OPTIONS)
    assert f"{root / 'keys' / 'LA' / 'CM' / 'trial_metadata.txt'}:3:" in str(error.value)
    assert problem in str(error.value)


def test_speaker_split_replaces_the_official_test_split(tmp_path):
    lines = [f"LA_{s:04d} LA_E_{s}{k} none loc_tx A07 spoof notrim eval" for s in range(10) for k in range(2)]
    root = make_asvspoof2021(tmp_path, {"LA": lines})
    scan = prepare("asvspoof2021", root, SplitOptions(fractions=(0.6, 0.2, 0.2), seed=3), speaker_split=True)
    assert Counter(row.split for row in scan.rows) == {"train": 12, "dev": 4, "test": 4}
    assert all(len(splits) == 1 for splits in splits_per(scan.rows, "speaker").values())


# ---------------------------------------------------------------- inthewild


def test_inthewild_labels_and_speaker_disjoint_split(tmp_path):
    scan = inthewild.build(make_inthewild(tmp_path), OPTIONS)
    assert Counter(row.label for row in scan.rows) == {"real": 8, "fake": 8}
    assert {(row.label, row.attack) for row in scan.rows} == {("real", "bonafide"), ("fake", "unknown")}
    speaker_splits = splits_per(scan.rows, "speaker")
    assert len(speaker_splits) == 8 and all(len(splits) == 1 for splits in speaker_splits.values())
    assert Counter(row.split for row in scan.rows) == {"train": 12, "dev": 2, "test": 2}
    assert all(row.path.parent.name == "release_in_the_wild" and row.path.is_file() for row in scan.rows)


def test_inthewild_bad_label_and_missing_clip(tmp_path):
    meta = make_inthewild(tmp_path) / "release_in_the_wild" / "meta.csv"
    meta.write_text(meta.read_text() + "404.wav,Nobody,spoof\n")
    scan = inthewild.build(tmp_path / "release_in_the_wild", OPTIONS)
    assert len(scan.rows) == 16 and [p.name for p in scan.missing] == ["404.wav"]
    lines = meta.read_text().splitlines()
    lines[2] = "1.wav,Speaker 0,fake"
    write_lines(meta, lines)
    with pytest.raises(CorpusError, match=rf"{meta}:3: label 'fake' is not one of"):
        inthewild.build(tmp_path, OPTIONS)
    with pytest.raises(CorpusError, match=r"meta\.csv is missing"):
        inthewild.build(tmp_path / "nothing", OPTIONS)


# ---------------------------------------------------------------- wavefake


def test_wavefake_keeps_each_utterance_and_its_vocoded_copies_in_one_split(tmp_path):
    scan = wavefake.build(make_wavefake(tmp_path), OPTIONS)
    assert Counter(row.label for row in scan.rows) == {"real": 11, "fake": 20}
    assert Counter(row.attack for row in scan.rows if row.label == "fake") == {
        "melgan": 8,
        "waveglow": 8,
        "multi_band_melgan": 3,
        "conformer_fastspeech2_pwg": 1,
    }
    assert {row.speaker for row in scan.rows} == {"ljspeech", "jsut"}
    utterance_splits: dict[str, set[str]] = defaultdict(set)
    for row in scan.rows:
        utterance_splits[row.path.stem.removesuffix("_gen")].add(row.split)
    assert all(len(splits) == 1 for splits in utterance_splits.values())
    assert {row.split for row in scan.rows} == {"train", "dev", "test"}


def test_wavefake_layout_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"generated_audio is missing"):
        wavefake.build(tmp_path, OPTIONS)
    root = make_wavefake(tmp_path)
    write_clip(root / "generated_audio" / "mystery" / "x.wav")
    with pytest.raises(CorpusError, match=r"mystery is not named ljspeech_<vocoder>, jsut_<vocoder>"):
        wavefake.build(root, OPTIONS)
    (root / "generated_audio" / "mystery" / "x.wav").unlink()
    (root / "generated_audio" / "mystery").rmdir()
    for clip in (root / "jsut_ver1.1" / "basic5000" / "wav").iterdir():
        clip.unlink()
    (root / "jsut_ver1.1" / "basic5000" / "wav").rmdir()
    with pytest.raises(CorpusError, match=r"jsut_ver1\.1/basic5000/wav is missing"):
        wavefake.build(root, OPTIONS)


# ---------------------------------------------------------------- for


def test_for_maps_partitions_and_accepts_a_nested_version_folder(tmp_path):
    make_for(tmp_path / "for-2sec" / "for-2seconds")
    scan = fakeorreal.build(tmp_path / "for-2sec", OPTIONS)
    assert Counter((row.split, row.label) for row in scan.rows) == {
        (split, label): 2 for split in ("train", "dev", "test") for label in ("real", "fake")
    }
    assert {row.source for row in scan.rows} == {"for-2seconds"}
    assert {row.attack for row in scan.rows if row.label == "fake"} == {"unknown"}
    assert all(row.path.parts[-3:-1] == ("testing", "real") for row in scan.rows if row.split == "test" and row.is_real)


def test_for_layout_errors(tmp_path):
    version = make_for(tmp_path / "for-norm")
    for clip in (version / "testing" / "fake").iterdir():
        clip.unlink()
    (version / "testing" / "fake").rmdir()
    with pytest.raises(CorpusError, match=r"for-norm/testing/fake is missing"):
        fakeorreal.build(version, OPTIONS)
    make_for(tmp_path / "for-rerecorded")
    with pytest.raises(CorpusError, match=r"several versions \(for-norm, for-rerecorded\)"):
        fakeorreal.build(tmp_path, OPTIONS)


# ---------------------------------------------------------------- folder


def test_folder_is_recursive_with_speakers_from_the_first_subfolder(tmp_path):
    scan = folder.build(make_folder(tmp_path / "mydata"), OPTIONS)
    assert Counter(row.label for row in scan.rows) == {"real": 12, "fake": 7}
    assert {row.path.suffix for row in scan.rows} == {".wav", ".flac", ".ogg", ".WAV"}
    assert by_name(scan.rows)["loose"].speaker == "" and by_name(scan.rows)["c"].speaker.startswith("spk")
    speaker_splits = splits_per([row for row in scan.rows if row.speaker], "speaker")
    assert len(speaker_splits) == 6 and all(len(splits) == 1 for splits in speaker_splits.values())
    assert {row.source for row in scan.rows} == {"mydata"}
    with pytest.raises(CorpusError, match=r"nothing/real is missing"):
        folder.build(tmp_path / "nothing", OPTIONS)


# ---------------------------------------------------------------- --limit


def synthetic_rows(real: int, fake: int) -> list[ManifestRow]:
    """Rows in 60/20/20 train/dev/test proportion per label; sampling never opens the files."""
    splits = ["train"] * 3 + ["dev", "test"]
    return [
        ManifestRow(path=Path(f"/corpus/{label}{i}.wav"), label=label, split=splits[i % 5])
        for label, count in (("real", real), ("fake", fake))
        for i in range(count)
    ]


def test_limit_is_balanced_proportional_and_deterministic():
    rows = synthetic_rows(100, 100)
    picked = sample_balanced(rows, 20, seed=1)
    assert Counter((row.label, row.split) for row in picked) == {
        (label, split): n for label in ("real", "fake") for split, n in (("train", 6), ("dev", 2), ("test", 2))
    }
    assert [row.path for row in picked] == [row.path for row in sample_balanced(rows, 20, seed=1)]
    assert [row.path for row in picked] != [row.path for row in sample_balanced(rows, 20, seed=2)]
    assert [row.path for row in picked] == sorted((row.path for row in picked), key=rows_order(rows))


def rows_order(rows: list[ManifestRow]):
    position = {row.path: i for i, row in enumerate(rows)}
    return position.__getitem__


def test_limit_gives_a_short_label_all_it_has():
    picked = sample_balanced(synthetic_rows(100, 5), 30, seed=0)
    assert Counter(row.label for row in picked) == {"real": 25, "fake": 5}
    assert len(sample_balanced(synthetic_rows(3, 3), 30, seed=0)) == 6


# ---------------------------------------------------------------- CLI


def test_cli_writes_a_readable_manifest_with_extras_and_summary(tmp_path, capsys):
    corpus = make_asvspoof2021(tmp_path / "corpus", {"LA": LA2021_KEYS, "DF": DF2021_KEYS})
    out = tmp_path / "data" / "asvspoof2021" / "manifest.csv"
    assert main(["--format", "asvspoof2021", "--root", str(corpus), "--out", str(out)]) == 0
    with out.open(newline="") as handle:
        raw = list(csv.DictReader(handle))
    assert {"codec", "transmission", "corpus", "trim", "subset", "vocoder"} <= set(raw[0])
    assert all(Path(r["path"]).is_absolute() for r in raw)
    rows = read_manifest(out)
    assert sorted(row.extras["codec"] for row in rows) == sorted(line.split()[2] for line in LA2021_KEYS + DF2021_KEYS)
    assert all(row.path.is_file() for row in rows)
    printed = capsys.readouterr().out
    assert "wrote 8 clips" in printed and "test" in printed and "A07 1" in printed and "bonafide 4" in printed


def test_cli_limit_and_relative_paths_inside_the_corpus(tmp_path, capsys):
    root = make_inthewild(tmp_path)
    out = root / "manifest.csv"
    assert main(["--format", "inthewild", "--root", str(root), "--out", str(out), "--limit", "6", "--seed", "4"]) == 0
    rows = read_manifest(out)
    assert Counter(row.label for row in rows) == {"real": 3, "fake": 3}
    with out.open(newline="") as handle:
        assert all(r["path"].startswith("release_in_the_wild/") for r in csv.DictReader(handle))
    assert "wrote 6 clips" in capsys.readouterr().out


def test_cli_split_fractions_reach_the_adapter(tmp_path):
    root = make_inthewild(tmp_path, speakers=4)
    out = tmp_path / "m.csv"
    assert (
        main(["--format", "inthewild", "--root", str(root), "--out", str(out), "--split-fractions", "0.5,0.5,0"]) == 0
    )
    assert Counter(row.split for row in read_manifest(out)) == {"train": 4, "dev": 4}


def test_cli_reports_a_wrong_root_and_missing_clips(tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert main(["--format", "for", "--root", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["--format", "asvspoof2019", "--root", str(tmp_path), "--out", str(out)]) == 2
    assert "ASVspoof2019_LA_cm_protocols is missing" in capsys.readouterr().err and not out.exists()
    root = make_asvspoof2019(tmp_path / "LA")
    (root / "ASVspoof2019_LA_eval" / "flac" / "LA_E_2834763.flac").unlink()
    assert main(["--format", "asvspoof2019", "--root", str(root), "--out", str(out)]) == 0
    assert "1 listed clips are not on disk" in capsys.readouterr().err and len(read_manifest(out)) == 7


def test_cli_help_lists_every_format_and_rejects_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert all(f"{name:<13} {adapter.summary}" in printed for name, adapter in ADAPTERS.items())
    common = ["--root", str(tmp_path), "--out", str(tmp_path / "m.csv")]
    for bad in (
        ["--format", "inthewild", "--speaker-split"],
        ["--format", "folder", "--split-fractions", "0.5,0.5,0.5"],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*bad, *common])
        assert exited.value.code == 2
    assert "--speaker-split does not apply" in capsys.readouterr().err

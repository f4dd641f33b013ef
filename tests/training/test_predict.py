"""`python -m training.predict`: offline scoring of files and folders, its lines, its CSV and its exit status."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import SAMPLE_RATE
from model.inference import AudioDetector, ClipScore, SegmentScore
from model.signals import spoken
from model.vad import NO_SPEECH_MESSAGE, SPEECH_CHECK_ENV
from tests.audio_fixtures import corrupt_audio, write_wav
from tests.conftest import make_checkpoint
from training.predict import AUDIO_EXTENSIONS, CSV_COLUMNS, audio_files, main, segment_summary

TOLERANCE = 1e-6
LONG_SECONDS = 13.0  # longer than a 6 s window: seven segments of at most 2 s
SHORT_SECONDS = 1.5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("predict") / "checkpoint", version="7.1")


@pytest.fixture(scope="module")
def detector(checkpoint: Path) -> AudioDetector:
    return AudioDetector.from_checkpoint(checkpoint)


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """A folder of two WAVs (one long, one short, one nested) and a file that is not audio."""
    folder = tmp_path / "clips"
    (folder / "nested").mkdir(parents=True)
    write_wav(folder / "long.wav", LONG_SECONDS, seed=1)
    write_wav(folder / "nested" / "short.WAV", SHORT_SECONDS, seed=2)
    (folder / "notes.txt").write_text("not audio")
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return list(reader)


def expected_line(path: Path, score: ClipScore, threshold: float) -> str:
    line = f"{path}: {score.label}, P(real) {score.probability_real * 100:.1f}%, version 7.1"
    summary = segment_summary(score, threshold)
    return f"{line}; {summary}" if summary else line


def test_folder_lines_and_csv_equal_audio_detector(
    clips: Path, checkpoint: Path, detector: AudioDetector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "scores.csv"

    status = main([str(clips), "--checkpoint", str(checkpoint), "--csv", str(out)])

    assert status == 0
    paths = [clips / "long.wav", clips / "nested" / "short.WAV"]
    expected = [detector.score_audio(p) for p in paths]
    lines = capsys.readouterr().out.splitlines()
    assert lines == [expected_line(p, s, detector.threshold) for p, s in zip(paths, expected, strict=True)]
    assert "; 7 segments, " in lines[0]
    assert ";" not in lines[1]  # one window: no segment summary
    rows = read_rows(out)
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    for row, score in zip(rows, expected, strict=True):
        assert float(row["prediction"]) == pytest.approx(score.probability_real, abs=TOLERANCE)
        assert (row["label"], float(row["duration_seconds"]), row["error"]) == (score.label, score.duration_seconds, "")
        segments = json.loads(row["segments"])
        assert len(segments) == len(score.segments)
        for (start, end, probability), local in zip(segments, score.segments, strict=True):
            assert (start, end) == (local.start_seconds, local.end_seconds)
            assert probability == pytest.approx(local.probability_real, abs=TOLERANCE)


def test_undecodable_files_fail_alone(
    clips: Path, checkpoint: Path, detector: AudioDetector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt, empty, good = clips / "corrupt.wav", clips / "empty.flac", clips / "long.wav"
    corrupt.write_bytes(corrupt_audio())
    empty.write_bytes(b"")
    out = tmp_path / "scores.csv"

    status = main([str(corrupt), str(good), str(empty), "--checkpoint", str(checkpoint), "--csv", str(out)])

    assert status == 1
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == f"{corrupt}: failed: cannot decode the audio: the file is not a supported audio format or is corrupt"
    )
    assert lines[1] == expected_line(good, detector.score_audio(good), detector.threshold)
    assert lines[2] == f"{empty}: failed: cannot decode the audio: the file is empty"
    rows = read_rows(out)
    assert [bool(row["error"]) for row in rows] == [True, False, True]
    assert rows[0]["prediction"] == rows[0]["label"] == ""
    assert float(rows[1]["prediction"]) == pytest.approx(detector.score_audio(good).probability_real, abs=TOLERANCE)


def test_with_the_speech_check_on_silence_fails_as_the_service_refuses_it(
    checkpoint: Path,
    detector: AudioDetector,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SPEECH_CHECK_ENV, "1")  # the suite turns it off (tests/conftest.py)
    silence, speech = tmp_path / "silence.wav", tmp_path / "speech.wav"
    sf.write(silence, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    sf.write(speech, spoken(text="Please call me back."), SAMPLE_RATE)

    status = main([str(silence), str(speech), "--checkpoint", str(checkpoint)])

    assert status == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{silence}: failed: {NO_SPEECH_MESSAGE}"
    assert lines[1] == expected_line(speech, detector.score_audio(speech), detector.threshold)


def test_missing_input_and_empty_folder_are_reported_and_fail(
    clips: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()

    status = main([str(tmp_path / "absent.wav"), str(tmp_path / "empty"), str(clips), "--checkpoint", str(checkpoint)])

    assert status == 1
    captured = capsys.readouterr()
    assert f"predict: {tmp_path / 'absent.wav'}: no such file or directory" in captured.err
    assert f"predict: {tmp_path / 'empty'}: no audio files (" in captured.err
    assert len(captured.out.splitlines()) == 2  # the folder's clips are still scored


def test_unloadable_checkpoint_is_a_usage_error(
    clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([str(clips), "--checkpoint", str(tmp_path / "nothing")])

    assert status == 2
    assert "predict: cannot load the checkpoint" in capsys.readouterr().err


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["--help"])
    assert shown.value.code == 0
    help_text = capsys.readouterr().out
    assert all(option in help_text for option in ("FILE_OR_DIR", "--checkpoint", "--csv", "--device"))

    with pytest.raises(SystemExit) as refused:
        main([])
    assert refused.value.code == 2
    with pytest.raises(SystemExit) as bad_device:
        main(["a.wav", "--device", "not-a-device"])
    assert bad_device.value.code == 2


def test_folders_are_walked_for_audio_extensions_in_any_case(tmp_path: Path) -> None:
    names = ["b.OPUS", "a.wav", "c.m4a", "d.aac", "e.ogg", "f.mp3", "g.flac", "h.txt", "i.wav.bak"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.wav").mkdir()

    files, problems = audio_files([tmp_path, tmp_path / "h.txt"])

    assert [p.name for p in files] == ["a.wav", "b.OPUS", "c.m4a", "d.aac", "e.ogg", "f.mp3", "g.flac", "h.txt"]
    assert problems == []
    assert {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac"} == AUDIO_EXTENSIONS


def test_segment_summary_names_the_lowest_segment() -> None:
    segments = [SegmentScore(6.0 * i, 6.0 * (i + 1), p) for i, p in enumerate([0.9, 0.4, 0.02, 0.7])]
    score = ClipScore(0.505, "real", 24.0, segments)

    assert segment_summary(score, threshold=0.5) == "4 segments, 2 scored fake, lowest 0.02 at 12-18 s"
    assert segment_summary(ClipScore(0.9, "real", 2.0, segments[:1]), threshold=0.5) == ""

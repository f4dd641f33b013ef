"""Score audio files with a checkpoint, no server: `python -m training.predict FILE_OR_DIR...`.

    python -m training.predict clip.wav
    python -m training.predict recordings/ --csv runs/predict/scores.csv
    python -m training.predict a.flac b.mp3 --checkpoint artifacts/cnn-voc1 --device cuda

Files go through model.inference.AudioDetector, the code path TorchServe's handler serves, so the
scores are the ones the gateway would answer for the same checkpoint. Directories are walked for
audio files by extension (AUDIO_EXTENSIONS); files named on the command line are scored whatever
their extension. One line per file, like `python -m gateway.client` prints (`a.wav: fake, P(real)
3.2%, version 3.0; 12 segments, 3 scored fake, lowest 0.02 at 40-46 s`), with a progress bar on
stderr for more than one file. --csv also writes path,prediction,label,duration_seconds,segments,error
(segments as JSON [[start, end, P(real)], ...]). A file that cannot be read or decoded is reported
on its line and in the CSV, the others are still scored. Exit status: 0 if every file was scored,
1 if any failed, 2 for usage errors (including a checkpoint that cannot be loaded).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from model.audio import AudioDecodeError
from model.inference import AudioDetector, ClipScore
from model.vad import NoSpeechError, check_speech, speech_check_enabled

DEFAULT_CHECKPOINT = Path("artifacts/default")
DEFAULT_DEVICE = "cpu"
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac"})
CSV_COLUMNS = ("path", "prediction", "label", "duration_seconds", "segments", "error")
PROBABILITY_DECIMALS = 6
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class FileScore:
    """A file's score, or the message saying why it has none."""

    path: Path
    score: ClipScore | None = None
    error: str | None = None


def audio_files(inputs: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Files to score (named files as given, directories walked in sorted order) and problems with the inputs.

    A missing input or a directory with no audio in it is a problem: the user meant to score something there.
    """
    files: list[Path] = []
    problems: list[str] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not found:
                problems.append(f"{path}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this directory")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def score_file(detector: AudioDetector, path: Path, checked: bool) -> FileScore:
    """Score one file; unreadable, undecodable or (`checked`) speech-free audio becomes that file's error."""
    try:
        # decode_audio would call an unreadable or empty file "not a supported audio format or is corrupt"
        with path.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as error:
        return FileScore(path, error=f"cannot read the file: {error.strerror or error}")
    if empty:
        return FileScore(path, error="cannot decode the audio: the file is empty")
    try:
        score = detector.score_audio(path, checked)
        if checked:
            check_speech(score.speech_seconds)  # what the service answers 422
    except NoSpeechError as error:
        return FileScore(path, error=str(error))
    except AudioDecodeError as error:
        return FileScore(path, error=f"cannot decode the audio: {error}")
    return FileScore(path, score)


def segment_summary(score: ClipScore, threshold: float) -> str:
    """`12 segments, 3 scored fake, lowest 0.02 at 40-46 s`; empty for a clip of one window (nothing to add)."""
    segments = score.segments
    if len(segments) < 2:
        return ""
    fake = sum(s.probability_real < threshold for s in segments)
    lowest = min(segments, key=lambda s: s.probability_real)
    where = f"{round(lowest.start_seconds, 1):g}-{round(lowest.end_seconds, 1):g} s"
    return f"{len(segments)} segments, {fake} scored fake, lowest {lowest.probability_real:.2f} at {where}"


def format_line(result: FileScore, threshold: float, version: str) -> str:
    """The same line `python -m gateway.client` prints for a file (kept apart: training never imports gateway)."""
    if result.score is None:
        return f"{result.path}: failed: {result.error}"
    score = result.score
    line = f"{result.path}: {score.label}, P(real) {score.probability_real * 100:.1f}%, version {version}"
    summary = segment_summary(score, threshold)
    return f"{line}; {summary}" if summary else line


def csv_row(result: FileScore) -> list[str]:
    if result.score is None:
        return [str(result.path), "", "", "", "", result.error or ""]
    score = result.score
    segments = [
        [s.start_seconds, s.end_seconds, round(s.probability_real, PROBABILITY_DECIMALS)] for s in score.segments
    ]
    prediction = f"{score.probability_real:.{PROBABILITY_DECIMALS}f}"
    return [str(result.path), prediction, score.label, f"{score.duration_seconds:g}", json.dumps(segments), ""]


def write_csv(results: Sequence[FileScore], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(r) for r in results)


def torch_device(value: str) -> str:
    """A device torch knows and this machine has, checked before the checkpoint is loaded."""
    try:
        device = torch.device(value)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(f"not a torch device: {value!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: CUDA is not available on this machine")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.predict",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR", help="audio files or directories")
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"checkpoint folder (default: {DEFAULT_CHECKPOINT})"
    )
    parser.add_argument("--csv", type=Path, metavar="OUT", help="also write one CSV row per file here")
    parser.add_argument(
        "--device", type=torch_device, default=DEFAULT_DEVICE, help=f"torch device (default: {DEFAULT_DEVICE})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    files, problems = audio_files(args.inputs)
    for problem in problems:
        print(f"predict: {problem}", file=sys.stderr)
    try:
        detector = AudioDetector.from_checkpoint(args.checkpoint, args.device)
    except (OSError, ValueError, RuntimeError) as error:  # missing files, mismatched features, bad weights
        print(f"predict: cannot load the checkpoint {args.checkpoint}: {error}", file=sys.stderr)
        return EXIT_USAGE
    version = str(detector.metadata.get("version", "unversioned"))
    results, checked = [], speech_check_enabled()
    for path in tqdm(files, unit="file", file=sys.stderr, disable=len(files) < 2, leave=False):
        result = score_file(detector, path, checked)
        results.append(result)
        tqdm.write(format_line(result, detector.threshold, version), file=sys.stdout)
    if args.csv is not None:
        write_csv(results, args.csv)
    failed = problems or any(r.score is None for r in results)
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

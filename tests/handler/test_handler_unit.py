"""DetectorHandler without TorchServe: input parsing, per-request statuses, batch independence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ts.context import Context, RequestProcessor
from ts.utils.util import list_classes_from_module

import handler.detector_handler as handler_module
from handler.detector_handler import (
    NO_AUDIO_MESSAGE,
    NOT_BYTES_MESSAGE,
    DetectorHandler,
    audio_payload,
    torch_threads,
)
from model.calibration import Calibration
from model.checkpoint import METADATA_FILE
from model.inference import AudioDetector
from tests.audio_fixtures import corrupt_audio, encode, nan_wav, speech_wav
from tests.conftest import make_checkpoint

TOLERANCE = 1e-5
MAX_AUDIO_SECONDS = 20.0
VERSION = "3.1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("unit") / "checkpoint", VERSION, seed=5)


@pytest.fixture(scope="module")
def detector_handler(checkpoint: Path) -> DetectorHandler:
    context = make_context(checkpoint)
    instance = DetectorHandler()
    instance.initialize(context)
    return instance


@pytest.fixture(scope="module")
def offline(checkpoint: Path) -> AudioDetector:
    return AudioDetector.from_checkpoint(checkpoint)


def make_context(model_dir: Path) -> Context:
    """A TorchServe Context as the worker builds it from the archive's manifest and model-config.yaml."""
    manifest = {"model": {"modelName": "detector", "modelVersion": VERSION, "handler": "detector_handler.py"}}
    yaml_config = {"minWorkers": 1, "handler": {"max_audio_seconds": MAX_AUDIO_SECONDS, "decode_timeout_seconds": 30}}
    return Context("detector", str(model_dir), manifest, 8, None, "test", model_yaml_config=yaml_config)


def run_batch(instance: DetectorHandler, rows: list[dict]) -> list[tuple[int, dict, str | None]]:
    """(status, JSON body, content type) per request, as TorchServe would send them back."""
    context = make_context(Path("unused"))
    context.request_processor = [RequestProcessor({}) for _ in rows]
    answers = instance.handle(rows, context)
    assert len(answers) == len(rows)
    return [
        (context.get_response_status(i)[0], json.loads(answer), context.get_response_content_type(i))
        for i, answer in enumerate(answers)
    ]


def test_module_defines_exactly_one_class() -> None:
    """TorchServe's loader refuses a handler module with more than one class."""
    assert list_classes_from_module(handler_module) == [DetectorHandler]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"body": b"raw"}, b"raw"),
        ({"body": bytearray(b"raw")}, b"raw"),
        ({"data": b"form"}, b"form"),
        ({"file": b"upload"}, b"upload"),
        ({"data": b"first", "file": b"second", "body": b"third"}, b"first"),
        ({"file": b"upload", "filename": b"x.wav"}, b"upload"),
    ],
)
def test_audio_payload_takes_raw_body_or_multipart_field(row: dict, expected: bytes) -> None:
    assert audio_payload(row) == expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, (422, NO_AUDIO_MESSAGE)),
        ({"other": b"x"}, (422, NO_AUDIO_MESSAGE)),
        ({"body": "text, not bytes"}, (415, NOT_BYTES_MESSAGE)),
        ({"data": {"json": True}}, (415, NOT_BYTES_MESSAGE)),
    ],
)
def test_audio_payload_refuses_requests_without_audio_bytes(row: dict, expected: tuple[int, str]) -> None:
    assert audio_payload(row) == expected


def test_success_body_matches_offline_scoring(detector_handler: DetectorHandler, offline: AudioDetector) -> None:
    audio = speech_wav(8.0, seed=2)
    [(status, body, content_type)] = run_batch(detector_handler, [{"file": audio}])
    expected = offline.score_audio(audio)
    assert (status, content_type) == (200, "application/json")
    assert set(body) == {"prediction", "label", "threshold", "duration_seconds", "segments", "model", "version"}
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["label"] == expected.label
    assert body["duration_seconds"] == 8.0
    assert len(body["segments"]) == 4  # 8 s: segments of 2 s
    assert set(body["segments"][0]) == {"start_seconds", "end_seconds", "prediction"}
    assert (body["model"], body["version"], body["threshold"]) == ("detector", VERSION, 0.5)


def test_calibrated_checkpoint_is_served_calibrated_with_its_threshold(checkpoint: Path, tmp_path: Path) -> None:
    """A trained (calibrated) checkpoint: the answer's prediction, label and threshold are the calibrated ones."""
    calibrated = tmp_path / "calibrated"
    calibrated.mkdir()
    for file in checkpoint.iterdir():
        (calibrated / file.name).write_bytes(file.read_bytes())
    metadata = json.loads((checkpoint / METADATA_FILE).read_text())
    calibration = Calibration(scale=3.0, bias=1.5)
    stored = {**metadata, "threshold": 0.5, "calibration": calibration.to_dict(), "uncalibrated_threshold": 0.07}
    (calibrated / METADATA_FILE).write_text(json.dumps(stored))
    instance = DetectorHandler()
    instance.initialize(make_context(calibrated))
    audio = speech_wav(8.0, seed=2)
    [(status, body, _)] = run_batch(instance, [{"file": audio}])
    expected = AudioDetector.from_checkpoint(calibrated).score_audio(audio)
    uncalibrated = AudioDetector.from_checkpoint(checkpoint).score_audio(audio)
    assert status == 200 and body["threshold"] == 0.5
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["label"] == expected.label == ("real" if expected.probability_real >= 0.5 else "fake")
    assert abs(body["prediction"] - uncalibrated.probability_real) > 1e-3


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"", 422),  # empty
        (speech_wav(0.05), 422),  # too short
        (nan_wav(), 422),  # NaN samples
        (speech_wav(MAX_AUDIO_SECONDS + 2), 413),  # over max_audio_seconds
        (corrupt_audio(), 415),  # corrupt
        (b"plain text, not audio at all", 415),  # not audio
    ],
    ids=["empty", "too-short", "nan", "too-long", "corrupt", "not-audio"],
)
def test_bad_request_gets_its_own_status_and_batch_mates_succeed(
    detector_handler: DetectorHandler, payload: bytes, status: int
) -> None:
    good = speech_wav(1.0, seed=1)
    results = run_batch(detector_handler, [{"body": good}, {"body": payload}, {"data": good}])
    assert [r[0] for r in results] == [200, status, 200]
    assert set(results[1][1]) == {"error"}
    assert all(r[2] == "application/json" for r in results)
    assert results[0][1]["prediction"] == results[2][1]["prediction"]


@pytest.mark.parametrize("codec", ["mp3", "flac", "ogg", "m4a"])
def test_compressed_formats_are_scored(detector_handler: DetectorHandler, codec: str) -> None:
    [(status, body, _)] = run_batch(detector_handler, [{"file": encode(speech_wav(2.0), codec)}])
    assert status == 200, body
    assert body["duration_seconds"] == pytest.approx(2.0, abs=0.1)


def test_clip_score_does_not_depend_on_batch_mates(detector_handler: DetectorHandler) -> None:
    clip = speech_wav(2.5, seed=7)
    [(_, alone, _)] = run_batch(detector_handler, [{"body": clip}])
    mates = [speech_wav(0.4, seed=8), speech_wav(14.0, seed=9), corrupt_audio(), speech_wav(6.1, seed=10)]
    for position in range(len(mates) + 1):
        rows = [{"body": m} for m in mates]
        rows.insert(position, {"body": clip})
        batched = run_batch(detector_handler, rows)[position][1]
        assert batched["prediction"] == pytest.approx(alone["prediction"], abs=TOLERANCE)
        assert [s["prediction"] for s in batched["segments"]] == pytest.approx(
            [s["prediction"] for s in alone["segments"]], abs=TOLERANCE
        )


def test_internal_error_hides_details(detector_handler: DetectorHandler, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_decoder(*args: object, **kwargs: object) -> None:
        raise OSError("/secret/internal/path exploded")

    monkeypatch.setattr(handler_module, "decode_audio", broken_decoder)
    [(status, body, _)] = run_batch(detector_handler, [{"body": speech_wav(1.0)}])
    assert status == 500
    assert "secret" not in body["error"]
    assert "Traceback" not in body["error"]


@pytest.mark.parametrize(
    ("settings", "workers", "cpus", "expected"),
    [({"torch_threads": 3}, 1, 8, 3), ({}, 1, 8, 8), ({}, 2, 8, 4), ({}, 4, 2, 1), ({"torch_threads": 0}, 2, 2, 1)],
)
def test_torch_threads_share_the_cpus_among_workers(
    monkeypatch: pytest.MonkeyPatch, settings: dict, workers: int, cpus: int, expected: int
) -> None:
    monkeypatch.setattr(handler_module, "available_cpus", lambda: cpus)
    assert torch_threads(settings, {"minWorkers": workers}) == expected

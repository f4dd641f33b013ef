"""Predictions through a real TorchServe equal offline scoring with the same checkpoint."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from model.calibration import CALIBRATED_THRESHOLD, Calibration
from model.checkpoint import METADATA_FILE, save_checkpoint
from model.detectors import FROZEN_TRUNK_ARCHITECTURES, ModelConfig, build_detector
from model.inference import AudioDetector
from scripts import manage
from scripts.archive import ServingSettings
from tests.audio_fixtures import corrupt_audio, nan_wav, speech_like, speech_wav, wav_bytes
from tests.conftest import TorchServeFixture
from training.train import TrainConfig

pytestmark = pytest.mark.integration
TOLERANCE = 1e-5
# A raw body needs a non-form content type: TorchServe parses form-urlencoded bodies itself.
OCTET_STREAM = {"Content-Type": "application/octet-stream"}
BATCHING_VERSION = "1.0-batching"
CALIBRATED_VERSION = "1.0-calibrated"
PROBE_VERSION = "1.0"
CALIBRATION = Calibration(scale=3.0, bias=1.5)  # far enough from the identity that skipping it would show
BATCH_SIZE = 4
MAX_BATCH_DELAY_MS = 5000
LOG_WAIT_SECONDS = 5.0
LARGE_UPLOAD_SECONDS = 56.0  # 48 kHz stereo 16-bit: about 10.3 MiB


@pytest.fixture(scope="module")
def offline(torchserve: TorchServeFixture) -> AudioDetector:
    return AudioDetector.from_checkpoint(torchserve.checkpoint)


def serve_once(
    torchserve: TorchServeFixture, version: str, checkpoint: Path, audio: bytes
) -> tuple[httpx.Response, Path]:
    """Archive `checkpoint` as `version`, register it, score one upload with it, unregister it."""
    archive = torchserve.make_archive(version, checkpoint=checkpoint)
    manage.register(torchserve.management_url, archive.name)
    try:
        url = torchserve.predictions_url(version)
        return httpx.post(url, content=audio, headers=OCTET_STREAM, timeout=120), archive
    finally:
        manage.unregister(torchserve.management_url, version)


def test_served_prediction_equals_offline_scoring(torchserve: TorchServeFixture, offline: AudioDetector) -> None:
    audio = speech_wav(7.5, seed=3)  # two windows, so the segments are checked too
    reply = httpx.post(torchserve.predictions_url(), content=audio, headers=OCTET_STREAM, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    expected = offline.score_audio(audio)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert body["label"] == expected.label
    assert body["threshold"] == offline.threshold
    assert body["duration_seconds"] == expected.duration_seconds
    assert [(s["start_seconds"], s["end_seconds"]) for s in body["segments"]] == [
        (s.start_seconds, s.end_seconds) for s in expected.segments
    ]
    for served, local in zip(body["segments"], expected.segments, strict=True):
        assert served["prediction"] == pytest.approx(local.probability_real, abs=TOLERANCE)
    assert body["model"] == "detector"
    assert body["version"] == torchserve.version


def test_served_prediction_of_a_calibrated_model_equals_offline_calibrated_scoring(
    torchserve: TorchServeFixture, offline: AudioDetector, tmp_path: Path
) -> None:
    """The fixture's weights with a calibration, as training saves them, served as another version."""
    checkpoint = tmp_path / "calibrated"
    shutil.copytree(torchserve.checkpoint, checkpoint)
    metadata = json.loads((checkpoint / METADATA_FILE).read_text())
    calibrated = {**metadata, "threshold": CALIBRATED_THRESHOLD, "calibration": CALIBRATION.to_dict()}
    (checkpoint / METADATA_FILE).write_text(json.dumps(calibrated, indent=2))
    audio = speech_wav(7.5, seed=5)
    reply, _ = serve_once(torchserve, CALIBRATED_VERSION, checkpoint, audio)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = AudioDetector.from_checkpoint(checkpoint).score_audio(audio)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    for served, local in zip(body["segments"], expected.segments, strict=True):
        assert served["prediction"] == pytest.approx(local.probability_real, abs=TOLERANCE)
    assert body["threshold"] == CALIBRATED_THRESHOLD and body["label"] == expected.label
    assert body["version"] == CALIBRATED_VERSION
    assert abs(body["prediction"] - offline.score_audio(audio).probability_real) > 1e-3  # it was applied


@pytest.mark.parametrize("architecture", FROZEN_TRUNK_ARCHITECTURES)
def test_served_frozen_trunk_probe_equals_offline_scoring(
    torchserve: TorchServeFixture, tmp_path: Path, architecture: str
) -> None:
    """The pretrained-encoder detectors: the archive holds the head, the worker reads the encoders from their
    packages, and the pitch probe's samples front end goes through the same decode, windows and timeline."""
    torch.manual_seed(2)
    feature_config = TrainConfig(architecture=architecture).feature_config()
    config = ModelConfig(architecture=architecture, n_mels=feature_config.n_mels)
    detector = build_detector(config)
    with torch.no_grad():  # a standardisation far from the identity, so skipping it would show
        detector.pooled_mean.normal_()
        detector.pooled_scale.uniform_(0.5, 2.0)
    checkpoint = tmp_path / architecture
    version = f"{PROBE_VERSION}-{architecture.replace('_', '-')}"
    save_checkpoint(checkpoint, detector, config, feature_config, {"version": version})
    audio = speech_wav(13.0, seed=7)  # three windows: the encoder's 6 s blocks and the timeline
    reply, archive = serve_once(torchserve, version, checkpoint, audio)
    assert archive.stat().st_size < 5_000_000  # the encoder is not copied into the archive
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = AudioDetector.from_checkpoint(checkpoint).score_audio(audio)
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert len(body["segments"]) == len(expected.segments) == 7
    for served, local in zip(body["segments"], expected.segments, strict=True):
        assert served["prediction"] == pytest.approx(local.probability_real, abs=TOLERANCE)


@pytest.mark.parametrize("field", ["file", "data"])
def test_multipart_upload_equals_raw_body(torchserve: TorchServeFixture, field: str) -> None:
    audio = speech_wav(2.0, seed=4)
    raw = httpx.post(torchserve.predictions_url(), content=audio, headers=OCTET_STREAM, timeout=60)
    form = httpx.post(torchserve.predictions_url(), files={field: ("clip.wav", audio, "audio/wav")}, timeout=60)
    assert form.status_code == raw.status_code == 200, form.text
    assert form.json() == raw.json()


@pytest.mark.parametrize(
    ("payload", "status"),
    [(b"", 422), (corrupt_audio(), 415), (nan_wav(), 422), (speech_wav(0.05), 422)],
    ids=["empty", "corrupt", "nan", "too-short"],
)
def test_bad_audio_gets_a_json_4xx(torchserve: TorchServeFixture, payload: bytes, status: int) -> None:
    reply = httpx.post(torchserve.predictions_url(), content=payload, headers=OCTET_STREAM, timeout=60)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    assert set(reply.json()) == {"error"}
    assert "Traceback" not in reply.text and "/" not in reply.json()["error"]


@pytest.fixture(scope="module")
def batching_version(torchserve: TorchServeFixture) -> Iterator[str]:
    """The fixture's checkpoint registered again as a version that waits long enough to fill a batch.

    TorchServe dispatches a batch when BATCH_SIZE requests are queued or MAX_BATCH_DELAY_MS after
    the first one, so BATCH_SIZE concurrent requests land in exactly one handler call.
    """
    settings = ServingSettings(batch_size=BATCH_SIZE, max_batch_delay_ms=MAX_BATCH_DELAY_MS)
    archive = torchserve.make_archive(BATCHING_VERSION, settings=settings, checkpoint=torchserve.checkpoint)
    manage.register(torchserve.management_url, archive.name)
    try:
        yield BATCHING_VERSION
    finally:
        manage.unregister(torchserve.management_url, BATCHING_VERSION)


def post_concurrently(url: str, payloads: list[bytes]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        futures = [
            pool.submit(httpx.post, url, content=p, headers=OCTET_STREAM, timeout=MAX_BATCH_DELAY_MS / 1000 + 60)
            for p in payloads
        ]
        return [f.result() for f in futures]


def batch_log_lines(torchserve: TorchServeFixture) -> list[str]:
    """The handler's per-batch log lines ("batch of N requests: ...") from the worker log."""
    log = torchserve.run_dir / "logs" / "model_log.log"
    return [line for line in log.read_text(errors="replace").splitlines() if "requests:" in line]


def wait_for_batch_line(torchserve: TorchServeFixture, before: int, expected: str) -> list[str]:
    """Worker logs reach the file asynchronously: poll briefly for the new batch lines."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        new = batch_log_lines(torchserve)[before:]
        if any(expected in line for line in new) or time.monotonic() > deadline:
            return new
        time.sleep(0.2)


def test_prediction_does_not_depend_on_batch_mates(
    torchserve: TorchServeFixture, offline: AudioDetector, batching_version: str
) -> None:
    clips = [speech_wav(2.5, seed=11), speech_wav(0.6, seed=12), speech_wav(7.3, seed=13), speech_wav(13.0, seed=14)]
    alone = httpx.post(torchserve.predictions_url(), content=clips[0], headers=OCTET_STREAM, timeout=60).json()
    before = len(batch_log_lines(torchserve))
    replies = post_concurrently(torchserve.predictions_url(batching_version), clips)
    new_lines = wait_for_batch_line(torchserve, before, f"batch of {BATCH_SIZE} requests")
    assert any(f"batch of {BATCH_SIZE} requests: {BATCH_SIZE} scored" in line for line in new_lines), new_lines
    assert [r.status_code for r in replies] == [200] * len(clips)
    assert replies[0].json()["prediction"] == pytest.approx(alone["prediction"], abs=TOLERANCE)
    for clip, reply in zip(clips, replies, strict=True):
        assert reply.json()["version"] == batching_version
        assert reply.json()["prediction"] == pytest.approx(offline.score_audio(clip).probability_real, abs=TOLERANCE)


def test_corrupt_request_fails_alone_in_its_batch(torchserve: TorchServeFixture, batching_version: str) -> None:
    payloads = [speech_wav(1.0, seed=21), corrupt_audio(), speech_wav(3.0, seed=22), speech_wav(2.0, seed=23)]
    before = len(batch_log_lines(torchserve))
    replies = post_concurrently(torchserve.predictions_url(batching_version), payloads)
    new_lines = wait_for_batch_line(torchserve, before, "1 refused")
    assert any(f"batch of {BATCH_SIZE} requests: {BATCH_SIZE - 1} scored, 1 refused" in line for line in new_lines)
    assert [r.status_code for r in replies] == [200, 415, 200, 200]
    assert replies[1].json() == {"error": "the file is not a supported audio format or is corrupt"}
    assert all(r.headers["content-type"] == "application/json" for r in replies)


def test_upload_above_torchserve_default_size_limit_is_served(torchserve: TorchServeFixture) -> None:
    """config.properties raises max_request_size to 64 MiB (TorchServe's default is 6.5 MB)."""
    samples = speech_like(LARGE_UPLOAD_SECONDS, sample_rate=48_000)
    audio = wav_bytes(np.stack([samples, samples], axis=1), 48_000)
    assert len(audio) > 10 * 1024 * 1024
    reply = httpx.post(torchserve.predictions_url(), content=audio, headers=OCTET_STREAM, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["duration_seconds"] == pytest.approx(LARGE_UPLOAD_SECONDS, abs=0.01)

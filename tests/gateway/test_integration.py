"""The real gateway (a uvicorn subprocess) in front of a real TorchServe.

Most tests use the session's TorchServe (tests/conftest.py) and leave it as they found it:
`detector` 1.0 as the only, default version. The outage test starts a private TorchServe of its
own, so stopping it disturbs nobody.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.builtin_signal import builtin_signal_wav
from gateway.settings import ENV_PREFIX, MIB
from model.inference import AudioDetector, ClipScore
from scripts import torchserve as torchserve_control
from tests.audio_fixtures import corrupt_audio, speech_wav
from tests.conftest import TorchServeFixture, free_ports
from tests.prometheus_text import families, sample

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "integration-admin-token"
LIMIT_BYTES = 1 * MIB
TOLERANCE = 1e-5
GATEWAY_START_SECONDS = 60.0
GATEWAY_STOP_SECONDS = 10.0
POLL_SECONDS = 0.2
HTTP_TIMEOUT_SECONDS = 120.0
NEW_VERSION = "2.0"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextmanager
def running_gateway(inference_url: str, management_url: str, metrics_url: str, log: Path) -> Iterator[str]:
    """`uvicorn gateway.app:app` on a free port, configured through the environment as in production."""
    (port,) = free_ports(1)
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    env |= {
        f"{ENV_PREFIX}TORCHSERVE_INFERENCE_URL": inference_url,
        f"{ENV_PREFIX}TORCHSERVE_MANAGEMENT_URL": management_url,
        f"{ENV_PREFIX}TORCHSERVE_METRICS_URL": metrics_url,
        f"{ENV_PREFIX}ADMIN_TOKEN": ADMIN_TOKEN,
        f"{ENV_PREFIX}MAX_UPLOAD_BYTES": str(LIMIT_BYTES),
        f"{ENV_PREFIX}RETRY_AFTER_SECONDS": "2",
    }
    command = [sys.executable, "-m", "uvicorn", "gateway.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(GATEWAY_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + GATEWAY_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the gateway exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(f"{url}/openapi.json", timeout=POLL_SECONDS * 10)
            return
        except httpx.TransportError:
            time.sleep(POLL_SECONDS)
    pytest.fail(f"the gateway did not answer within {GATEWAY_START_SECONDS:g} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def gateway(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("gateway") / "uvicorn.log"
    with (
        running_gateway(torchserve.inference_url, torchserve.management_url, torchserve.metrics_url, log) as url,
        httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def offline(torchserve: TorchServeFixture) -> AudioDetector:
    return AudioDetector.from_checkpoint(torchserve.checkpoint)


def assert_same_scores(answer: dict, expected: ClipScore, detector: AudioDetector) -> None:
    assert answer["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert answer["label"] == expected.label
    assert answer["threshold"] == detector.threshold
    assert answer["duration_seconds"] == expected.duration_seconds
    assert len(answer["segments"]) == len(expected.segments)
    for served, local in zip(answer["segments"], expected.segments, strict=True):
        assert (served["start_seconds"], served["end_seconds"]) == (local.start_seconds, local.end_seconds)
        assert served["prediction"] == pytest.approx(local.probability_real, abs=TOLERANCE)


def default_version(gateway: httpx.Client) -> str:
    return gateway.post("/predict-file/", files={"file": ("probe.wav", speech_wav(1.0))}).json()["version"]


def test_health_reports_the_ready_model(gateway: httpx.Client) -> None:
    response = gateway.get("/")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["torchserve"], body["model_ready"]) == ("ok", "reachable", True)
    assert body["default_version"] == "1.0"
    assert body["ready_workers"] >= 1


def test_builtin_test_signal_is_scored_by_the_served_model(gateway: httpx.Client, offline: AudioDetector) -> None:
    response = gateway.get("/predict")

    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "test-signal.wav"
    assert response.json()["version"] == "1.0"
    assert_same_scores(response.json(), offline.score_audio(builtin_signal_wav()), offline)


def test_uploaded_file_prediction_equals_offline_scoring(gateway: httpx.Client, offline: AudioDetector) -> None:
    audio = speech_wav(7.5, seed=3)  # several windows, so the segments are compared too

    response = gateway.post("/predict-file/", files={"file": ("clips/sample one.wav", audio, "audio/wav")})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["filename"], body["model"], body["version"]) == ("sample one.wav", "detector", "1.0")
    assert_same_scores(body, offline.score_audio(audio), offline)


def test_undecodable_upload_is_415_with_the_handler_message(gateway: httpx.Client) -> None:
    response = gateway.post("/predict-file/", files={"file": ("fake.wav", corrupt_audio())})

    assert response.status_code == 415
    detail = response.json()["detail"]
    assert detail
    assert "Traceback" not in detail
    assert "127.0.0.1" not in detail


def test_unknown_version_is_404(gateway: httpx.Client) -> None:
    response = gateway.post("/predict-file/?version=9.9", files={"file": ("a.wav", speech_wav(1.0))})

    assert response.status_code == 404
    assert response.json() == {"detail": "Model 'detector' version '9.9' was not found."}


def test_upload_over_the_limit_is_413_with_or_without_content_length(gateway: httpx.Client) -> None:
    oversized = bytes(2 * LIMIT_BYTES)
    boundary = "integration-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunked() -> Iterator[bytes]:
        yield head
        yield from (oversized[start : start + 65536] for start in range(0, len(oversized), 65536))
        yield tail

    announced = gateway.post("/predict-file/", files={"file": ("big.wav", oversized)})
    streamed = gateway.post(
        "/predict-file/", content=chunked(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )

    for response in (announced, streamed):
        assert response.status_code == 413
        assert response.json() == {"detail": "The upload exceeds the limit of 1048576 bytes (1 MiB)."}
    assert "content-length" not in streamed.request.headers


def test_version_changes_need_the_admin_token(gateway: httpx.Client) -> None:
    missing = gateway.put("/models/1.0/default")
    wrong = gateway.delete("/models/1.0", headers={"Authorization": "Bearer not-the-token"})
    register = gateway.post("/models", json={"archive": "detector.mar"})

    assert [r.status_code for r in (missing, wrong, register)] == [401, 401, 401]
    assert gateway.get("/models").json()["default_version"] == "1.0"


def test_register_promote_roll_back_and_unregister_a_version(
    gateway: httpx.Client, torchserve: TorchServeFixture
) -> None:
    archive = torchserve.make_archive(NEW_VERSION, seed=7).name
    try:
        registered = gateway.post("/models", json={"archive": archive}, headers=AUTH)
        assert registered.status_code == 201, registered.text
        assert (registered.json()["version"], registered.json()["default"]) == (NEW_VERSION, False)
        assert registered.json()["ready_workers"] >= 1  # the archive's minWorkers (2 by default) start

        listed = gateway.get("/models").json()
        assert listed["default_version"] == "1.0"
        assert sorted(v["version"] for v in listed["versions"]) == ["1.0", NEW_VERSION]
        assert gateway.get(f"/models/{NEW_VERSION}").json()["archive"] == archive

        clip = {"file": ("clip.wav", speech_wav(2.0, seed=5))}
        assert gateway.post("/predict-file/?version=1.0", files=clip).json()["version"] == "1.0"
        assert gateway.post(f"/predict-file/?version={NEW_VERSION}", files=clip).json()["version"] == NEW_VERSION
        assert gateway.get(f"/predict?version={NEW_VERSION}").json()["version"] == NEW_VERSION
        assert default_version(gateway) == "1.0"

        scaled = gateway.put(f"/models/{NEW_VERSION}/workers", json={"min_workers": 1, "max_workers": 1}, headers=AUTH)
        assert scaled.status_code == 200, scaled.text
        assert scaled.json()["ready_workers"] == 1

        again = gateway.post("/models", json={"archive": archive}, headers=AUTH)
        assert again.status_code == 409, again.text
        keep_default = gateway.delete("/models/1.0", headers=AUTH)
        assert keep_default.status_code == 409, keep_default.text
        assert "default version" in keep_default.json()["detail"]

        promoted = gateway.put(f"/models/{NEW_VERSION}/default", headers=AUTH)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["default_version"] == NEW_VERSION
        assert default_version(gateway) == NEW_VERSION
        assert gateway.get("/").json()["default_version"] == NEW_VERSION

        rolled_back = gateway.put("/models/1.0/default", headers=AUTH)
        assert rolled_back.json()["default_version"] == "1.0"
        assert default_version(gateway) == "1.0"

        removed = gateway.delete(f"/models/{NEW_VERSION}", headers=AUTH)
        assert removed.status_code == 200, removed.text
        assert [v["version"] for v in removed.json()["versions"]] == ["1.0"]
        gone = gateway.post(f"/predict-file/?version={NEW_VERSION}", files=clip)
        assert gone.status_code == 404
    finally:
        restore_fixture_version(torchserve)


def restore_fixture_version(torchserve: TorchServeFixture) -> None:
    """Leave the session's TorchServe as the test found it, whatever step failed."""
    management = torchserve.management_url
    httpx.put(f"{management}/models/{torchserve.model_name}/{torchserve.version}/set-default", timeout=30)
    httpx.delete(f"{management}/models/{torchserve.model_name}/{NEW_VERSION}", timeout=30)


def gateway_series(gateway: httpx.Client) -> dict[str, float]:
    """The gateway's series this test reads, 0 where a series has no sample yet."""
    text = gateway.get("/metrics").text
    wanted = {
        "uploads": ("gateway_upload_bytes_count", {}),
        "upload_bytes": ("gateway_upload_bytes_sum", {}),
        "upload_seconds": ("gateway_audio_seconds_total", {"route": "/predict-file/"}),
        "signal_seconds": ("gateway_audio_seconds_total", {"route": "/predict"}),
        "timed_2xx": ("gateway_request_duration_seconds_count", {"route": "/predict-file/", "status_class": "2xx"}),
        "timed_4xx": ("gateway_request_duration_seconds_count", {"route": "/predict-file/", "status_class": "4xx"}),
        "rejected_by_torchserve": ("gateway_torchserve_errors_total", {"kind": "4xx"}),
        "torchserve_up": ("gateway_torchserve_up", {}),
    }
    return {key: sample(text, name, **labels) or 0.0 for key, (name, labels) in wanted.items()}


def test_metrics_combine_torchserve_and_gateway_series(gateway: httpx.Client) -> None:
    clip, other = speech_wav(2.5, seed=21), speech_wav(1.5, seed=22)
    before = gateway_series(gateway)

    scored = gateway.post("/predict-file/", files={"file": ("clip.wav", clip)})
    refused = gateway.post("/predict-file/?version=9.9", files={"file": ("other.wav", other)})
    signal = gateway.get("/predict")
    response = gateway.get("/metrics")
    after = gateway_series(gateway)

    assert (scored.status_code, refused.status_code, signal.status_code) == (200, 404, 200)
    assert response.status_code == 200
    assert "ts_inference_requests" in families(response.text)  # TorchServe's counter, parsed with ours
    delta = {key: after[key] - before[key] for key in after}
    assert delta["uploads"] == 2
    assert delta["upload_bytes"] == len(clip) + len(other)
    assert delta["upload_seconds"] == pytest.approx(scored.json()["duration_seconds"])
    assert delta["signal_seconds"] == pytest.approx(signal.json()["duration_seconds"])
    assert (delta["timed_2xx"], delta["timed_4xx"]) == (1, 1)
    assert delta["rejected_by_torchserve"] == 1  # TorchServe's 404 for the unregistered version
    assert after["torchserve_up"] == 1


def test_torchserve_outage_is_503_and_the_gateway_recovers(
    torchserve: TorchServeFixture, tmp_path: Path, offline: AudioDetector
) -> None:
    run_dir = tmp_path / "torchserve"
    ports = free_ports(3)
    server = torchserve_control.start(run_dir, torchserve.model_store, *ports)
    audio = speech_wav(2.0, seed=11)
    try:
        with (
            running_gateway(
                server.inference_url, server.management_url, server.metrics_url, tmp_path / "gw.log"
            ) as url,
            httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS) as gateway,
        ):
            assert gateway.post("/predict-file/", files={"file": ("a.wav", audio)}).status_code == 200
            assert gateway.get("/").status_code == 200

            torchserve_control.stop(run_dir)
            down = gateway.post("/predict-file/", files={"file": ("a.wav", audio)})
            health = gateway.get("/")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "2"
            assert down.json() == {"detail": "The model server is unreachable; retry later."}
            assert (health.status_code, health.json()["torchserve"]) == (503, "unreachable")

            torchserve_control.start(run_dir, torchserve.model_store, *ports)
            back = gateway.post("/predict-file/", files={"file": ("a.wav", audio)})
            assert back.status_code == 200, back.text
            assert back.json()["prediction"] == pytest.approx(
                offline.score_audio(audio).probability_real, abs=TOLERANCE
            )
            assert gateway.get("/").status_code == 200
    finally:
        torchserve_control.stop(run_dir)

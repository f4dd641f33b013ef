"""The KServe bundle served by a real TorchServe with its own config (service_envelope=kservev2).

The bundle is laid out by scripts/kserve_bundle.py from the shipped checkpoint; TorchServe starts
from the bundle's config.properties with only its addresses and store replaced by this test's
(scripts/torchserve.py: free loopback ports, own run directory and TMPDIR). Requests are the KServe
v2 (Open Inference) protocol, sent as raw JSON and through Triton's v2 client library.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ts.context import Context, RequestProcessor
from ts.torch_handler.request_envelope.kserve import KServeEnvelope
from ts.utils.util import PredictionException

from handler.detector_handler import DetectorHandler, torch_threads
from model.inference import AudioDetector
from scripts import kserve_bundle
from scripts import torchserve as torchserve_control
from scripts.archive import MANIFEST_PATH, ServingSettings
from tests.audio_fixtures import corrupt_audio, speech_wav
from tests.conftest import free_ports
from tests.scripts.test_torchserve import properties

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CHECKPOINT = REPO_ROOT / "artifacts" / "default"
TOLERANCE = 1e-5
START_TIMEOUT_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kserve") / "bundle"
    assert kserve_bundle.main(["--checkpoint", str(SHIPPED_CHECKPOINT), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def v2_url(bundle: Path) -> Iterator[str]:
    """A TorchServe started from the bundle's config (loopback free ports); its inference URL."""
    run_dir = bundle.parent / "run"
    config = bundle / kserve_bundle.CONFIG_FILE
    server = torchserve_control.start(
        run_dir, bundle / kserve_bundle.STORE_DIR, *free_ports(3), config_template=config, timeout=START_TIMEOUT_SECONDS
    )
    try:
        yield server.inference_url
    finally:
        torchserve_control.stop(run_dir)


@pytest.fixture(scope="module")
def offline() -> AudioDetector:
    return AudioDetector.from_checkpoint(SHIPPED_CHECKPOINT)


def b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode("ascii")


def v2_input(name: str, text: str, shape: list[int] | None = None) -> dict:
    """One v2 BYTES tensor holding one base64 text."""
    return {"name": name, "shape": shape or [1], "datatype": "BYTES", "data": [text]}


def infer(url: str, request: dict) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/detector/infer", json=request, timeout=REQUEST_TIMEOUT_SECONDS)


def test_bundle_holds_what_kserves_torchserve_runtime_reads(bundle: Path) -> None:
    config = properties((bundle / kserve_bundle.CONFIG_FILE).read_text())
    assert config["model_store"] == "/mnt/models/model-store"
    assert config["inference_address"] == config["management_address"] == "http://127.0.0.1:8085"
    assert config["metrics_address"] == "http://127.0.0.1:8082"
    assert (config["grpc_inference_port"], config["grpc_management_port"]) == ("7070", "7071")
    assert config["grpc_inference_address"] == config["grpc_management_address"] == "127.0.0.1"
    assert config["service_envelope"] == "kservev2"
    assert config["enable_envvars_config"] == "true"
    assert config["install_py_dep_per_model"] == "false"
    assert config["enable_model_api"] == "false"
    assert config["allowed_urls"] == "file://\\\\Q/mnt/models/model-store/\\\\E[^/]+\\\\.mar"
    repo_config = properties((REPO_ROOT / "config.properties").read_text())
    assert all(config[key] == repo_config[key] for key in kserve_bundle.SHARED_KEYS)
    with zipfile.ZipFile(bundle / "model-store" / "detector.mar") as archive:
        manifest = json.loads(archive.read(MANIFEST_PATH))["model"]
    shipped_version = json.loads((SHIPPED_CHECKPOINT / "metadata.json").read_text())["version"]
    assert manifest["modelVersion"] == shipped_version
    snapshot = json.loads(config["model_snapshot"])
    assert snapshot["modelCount"] == 1
    entry = snapshot["models"]["detector"][shipped_version]
    assert entry["marName"] == "detector.mar" and entry["defaultVersion"] is True
    assert entry["batchSize"] == 1  # the kservev2 envelope reads only the first request of a batch
    assert entry["minWorkers"] == entry["maxWorkers"] == ServingSettings().workers


def test_existing_archive_is_copied_with_its_version(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "copied"
    assert kserve_bundle.main(["--archive", str(bundle / "model-store" / "detector.mar"), "--out", str(out)]) == 0
    assert (out / "model-store" / "detector.mar").read_bytes() == (bundle / "model-store" / "detector.mar").read_bytes()
    assert (out / kserve_bundle.CONFIG_FILE).read_text() == (bundle / kserve_bundle.CONFIG_FILE).read_text()


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "detector.mar"
    fake.write_bytes(b"not a zip")
    assert kserve_bundle.main(["--archive", str(fake), "--out", str(tmp_path / "out")]) == 1
    assert "is not a TorchServe model archive" in capsys.readouterr().err
    assert not (tmp_path / "out" / kserve_bundle.CONFIG_FILE).exists()


def test_script_answers_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.kserve_bundle", "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "--checkpoint" in result.stdout


def test_v2_infer_equals_offline_scoring(v2_url: str, offline: AudioDetector, bundle: Path) -> None:
    audio = speech_wav(7.5, seed=11)
    reply = infer(v2_url, {"id": "clip-1", "inputs": [v2_input("audio", b64(audio))]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = offline.score_audio(audio)
    assert body["id"] == "clip-1"
    assert body["model_name"] == "detector"
    assert body["model_version"] == json.loads((SHIPPED_CHECKPOINT / "metadata.json").read_text())["version"]
    probability, label = body["outputs"]
    assert {key: probability[key] for key in ("name", "datatype", "shape")} == {
        "name": "probability_real", "datatype": "FP32", "shape": [1],
    }  # fmt: skip
    assert probability["data"][0] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert label == {"name": "label", "datatype": "BYTES", "shape": [1], "data": [expected.label]}


def test_v2_request_with_two_clips_answers_both_in_order(v2_url: str, offline: AudioDetector) -> None:
    clips = [speech_wav(2.0, seed=12), speech_wav(4.0, sample_rate=44_100, seed=13)]
    # The base64 text may be wrapped in lines, as the `base64` command writes it.
    wrapped = "\n".join(b64(clips[1])[i : i + 76] for i in range(0, len(b64(clips[1])), 76))
    reply = infer(v2_url, {"inputs": [v2_input("first", b64(clips[0])), v2_input("second", wrapped)]})
    assert reply.status_code == 200, reply.text
    probability, label = reply.json()["outputs"]
    expected = [offline.score_audio(clip) for clip in clips]
    assert probability["shape"] == label["shape"] == [2]
    assert probability["data"] == pytest.approx([e.probability_real for e in expected], abs=TOLERANCE)
    assert label["data"] == [e.label for e in expected]


def test_v2_client_library_gets_the_same_answer(v2_url: str, offline: AudioDetector) -> None:
    """Triton's KServe v2 HTTP client: the request and answer a third-party v2 client produces and parses."""
    audio = speech_wav(3.0, seed=14)
    client = triton.InferenceServerClient(url=v2_url.removeprefix("http://"))
    tensor = triton.InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b64(audio)], dtype=object), binary_data=False)
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probability_real", "label")]
    try:
        result = client.infer("detector", [tensor], outputs=outputs)
    finally:
        client.close()
    expected = offline.score_audio(audio)
    assert result.as_numpy("probability_real").tolist() == pytest.approx([expected.probability_real], abs=TOLERANCE)
    assert result.as_numpy("label").tolist() == [expected.label]


@pytest.mark.parametrize(
    ("tensor", "status", "message"),
    [
        (v2_input("audio", "not base64!"), 400, "input 'audio' is not valid base64"),
        (v2_input("audio", "QUJ"), 400, "input 'audio' is not valid base64"),
        ({"name": "audio", "shape": [1], "datatype": "FP32", "data": [1.0]}, 400, "BYTES input holding its base64"),
        (v2_input("audio", b64(speech_wav(1.0)), shape=[2]), 400, "send one clip per input"),
        (v2_input("audio", b64(corrupt_audio())), 415, "input 'audio': "),
        (v2_input("audio", ""), 422, "input 'audio': "),
    ],
    ids=["bad-characters", "bad-padding", "not-bytes", "two-clips-in-one-input", "not-audio", "empty"],
)
def test_unusable_v2_input_gets_a_clear_4xx(v2_url: str, tensor: dict, status: int, message: str) -> None:
    reply = infer(v2_url, {"inputs": [tensor]})
    assert reply.status_code == status
    assert message in reply.json()["message"]
    assert "Traceback" not in reply.text and "/tmp" not in reply.text


@pytest.fixture(scope="module")
def detector_handler() -> DetectorHandler:
    instance = DetectorHandler()
    instance.initialize(handler_context())
    return instance


def handler_context() -> Context:
    """A worker's Context for the shipped checkpoint, with one request in flight."""
    manifest = {"model": {"modelName": "detector", "modelVersion": "kserve-test", "handler": "detector_handler.py"}}
    context = Context("detector", str(SHIPPED_CHECKPOINT), manifest, 1, None, "test", model_yaml_config={})
    context.request_processor = [RequestProcessor({})]
    return context


def test_v1_instances_through_torchserves_kserve_envelope(
    detector_handler: DetectorHandler, offline: AudioDetector
) -> None:
    """service_envelope=kserve (v1): `instances` of `{"b64": ...}` or `{"<name>": {"b64": ...}}`, `predictions`."""
    clips = [speech_wav(2.0, seed=15), speech_wav(3.0, seed=16)]
    request = {"instances": [{"b64": b64(clips[0])}, {"audio": {"b64": b64(clips[1])}}]}
    envelope = KServeEnvelope(detector_handler.handle)
    [answer] = envelope.handle([{"body": json.dumps(request).encode()}], handler_context())
    predictions = answer["predictions"]
    assert [p["prediction"] for p in predictions] == pytest.approx(
        [offline.score_audio(clip).probability_real for clip in clips], abs=TOLERANCE
    )
    assert all(p["model"] == "detector" and p["version"] == "kserve-test" for p in predictions)
    with pytest.raises(PredictionException) as refused:
        envelope.handle([{"body": json.dumps({"instances": [{"b64": "%%%"}]}).encode()}], handler_context())
    assert (refused.value.error_code, refused.value.message.split(" (")[0]) == (400, "instance 0 is not valid base64")


def test_multipart_fields_named_like_kserve_keys_stay_uploads(
    detector_handler: DetectorHandler, offline: AudioDetector
) -> None:
    """Raw and multipart requests arrive as bytes, so form fields `datatype` or `b64` change nothing."""
    audio = speech_wav(2.0, seed=17)
    context = handler_context()
    [answer] = detector_handler.handle([{"file": audio, "datatype": b"BYTES", "b64": b"x"}], context)
    assert context.get_response_status(0)[0] == 200
    assert json.loads(answer)["prediction"] == pytest.approx(offline.score_audio(audio).probability_real, abs=TOLERANCE)


@pytest.mark.parametrize(("env", "expected"), [("3", 3), ("0", 2), (None, 2)])
def test_torch_threads_follow_the_environment(monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int) -> None:
    """deploy/ sets DETECTOR_TORCH_THREADS to the container's CPU limit; unset or 0 keeps the archive's rule."""
    if env is None:
        monkeypatch.delenv("DETECTOR_TORCH_THREADS", raising=False)
    else:
        monkeypatch.setenv("DETECTOR_TORCH_THREADS", env)
    monkeypatch.setattr("handler.detector_handler.available_cpus", lambda: 4)
    assert torch_threads({"torch_threads": 0}, {"minWorkers": 2}) == expected

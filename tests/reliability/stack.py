"""Real service processes for the reliability tests, and the checks every answer must pass.

The gateway runs as `uvicorn gateway.app:app` in its own process, configured only through
DETECTOR_* environment variables as in production, with its output in a log file the tests
can read. TorchServe processes are found through the process group that scripts/torchserve.py
records.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gateway.settings import ENV_PREFIX
from model.timeline import SEGMENT_SECONDS
from scripts import torchserve as torchserve_control
from tests.audio_fixtures import speech_wav
from tests.conftest import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
GATEWAY_START_SECONDS = 60.0
GATEWAY_STOP_SECONDS = 10.0
POLL_SECONDS = 0.2
HTTP_TIMEOUT_SECONDS = 120.0
WORKER_MARKER = "model_service_worker"
# What an answer must never contain: internal paths, source files, Python tracebacks.
LEAK_MARKERS = ("/work", "/tmp", ".py", "Traceback", 'File "')
PROBE_SECONDS = 1.0
SECONDS_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Gateway:
    """A running gateway process: where it listens and where it logs."""

    url: str
    process: subprocess.Popen
    log: Path
    port: int


def start_gateway(
    inference_url: str, management_url: str, metrics_url: str, log: Path, port: int | None = None, **settings: str
) -> Gateway:
    """Start the gateway on `port` (a free one if None); `settings` become DETECTOR_<NAME> variables."""
    port = port or free_ports(1)[0]
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    env |= {
        f"{ENV_PREFIX}TORCHSERVE_INFERENCE_URL": inference_url,
        f"{ENV_PREFIX}TORCHSERVE_MANAGEMENT_URL": management_url,
        f"{ENV_PREFIX}TORCHSERVE_METRICS_URL": metrics_url,
        **{f"{ENV_PREFIX}{name.upper()}": value for name, value in settings.items()},
    }
    command = [sys.executable, "-m", "uvicorn", "gateway.app:app", "--host", HOST, "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    gateway = Gateway(f"http://{HOST}:{port}", process, log, port)
    try:
        wait_answering(gateway)
    except BaseException:
        stop_gateway(gateway)
        raise
    return gateway


def wait_answering(gateway: Gateway) -> None:
    """Until the gateway answers HTTP at all (its health may still say TorchServe is down)."""
    deadline = time.monotonic() + GATEWAY_START_SECONDS
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {gateway.process.returncode}:\n{gateway.log.read_text()}")
        try:
            httpx.get(f"{gateway.url}/openapi.json", timeout=POLL_SECONDS * 10)
            return
        except httpx.TransportError:
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the gateway did not answer within {GATEWAY_START_SECONDS:g} s:\n{gateway.log.read_text()}")


def stop_gateway(gateway: Gateway) -> None:
    """SIGTERM the gateway process we started (SIGKILL if it lingers) and reap it."""
    gateway.process.terminate()
    try:
        gateway.process.wait(GATEWAY_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()


@contextmanager
def running_gateway(
    inference_url: str, management_url: str, metrics_url: str, log: Path, port: int | None = None, **settings: str
) -> Iterator[Gateway]:
    gateway = start_gateway(inference_url, management_url, metrics_url, log, port, **settings)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def group_commands(server_pid: int) -> dict[int, str]:
    """pid -> command line of each live process in a TorchServe's process group (the launcher's pid)."""
    commands = {}
    for pid in torchserve_control.group_members(server_pid):
        try:
            commands[pid] = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            continue
    return commands


def worker_pids(server_pid: int) -> list[int]:
    """The Python workers in a TorchServe's process group."""
    return [pid for pid, command in group_commands(server_pid).items() if WORKER_MARKER in command]


def assert_no_leak(response: httpx.Response) -> None:
    """No internal path, source file name or traceback in the body or the headers."""
    answer = response.text + "".join(f"{key}: {value}" for key, value in response.headers.items())
    leaked = [marker for marker in LEAK_MARKERS if marker in answer]
    assert not leaked, f"answer leaks {leaked}: {answer[:500]}"


def assert_json_error(response: httpx.Response, key: str = "detail") -> str:
    """A JSON object with one non-empty message under `key`; returns the message."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {key}, body
    assert isinstance(body[key], str) and body[key].strip(), body
    return body[key]


def assert_prediction(body: dict[str, Any], seconds: float | None = None) -> None:
    """A verdict whose segments cover the whole clip, back to back; a timeline's segments (clips longer
    than one window) are none longer than SEGMENT_SECONDS."""
    assert 0.0 <= body["prediction"] <= 1.0
    assert body["label"] in ("real", "fake")
    segments = body["segments"]
    assert segments[0]["start_seconds"] == 0.0
    assert segments[-1]["end_seconds"] == body["duration_seconds"]
    assert all(a["end_seconds"] == b["start_seconds"] for a, b in itertools.pairwise(segments))
    if len(segments) > 1:
        assert all(s["end_seconds"] - s["start_seconds"] <= SEGMENT_SECONDS + SECONDS_TOLERANCE for s in segments)
    if seconds is not None:
        assert body["duration_seconds"] == pytest.approx(seconds, abs=SECONDS_TOLERANCE)


def probe_clip() -> bytes:
    """The normal request sent after each bad one: a short speech-like WAV."""
    return speech_wav(PROBE_SECONDS, seed=99)

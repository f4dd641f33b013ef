"""Shared fixtures: a real TorchServe serving a tiny detector, started once per test session.

The `torchserve` fixture archives a small randomly initialised checkpoint (or the checkpoint in
$DETECTOR_TEST_CHECKPOINT) with scripts/archive.py, starts TorchServe with scripts/torchserve.py
on free loopback ports with its own run directory and TMPDIR, and stops it (by its process
group) when the session ends. Tests that change the server (register versions, scale) must put
it back as they found it: `detector` version 1.0 as the only, default version.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig
from model.vad import SPEECH_CHECK_ENV
from scripts import torchserve as torchserve_control
from scripts.archive import ServingSettings, build_archive

# The tests' audio is a synthetic voiced signal (model.signals), which Silero does not take for
# speech, so serving's speech check is off for every server and handler the tests start; the tests
# of the check (tests/reliability/test_speech_check.py, tests/handler/test_vad_refusal.py) turn it
# on with real espeak-ng speech.
os.environ[SPEECH_CHECK_ENV] = "0"

MODEL_NAME = "detector"
FIXTURE_VERSION = "1.0"
CHECKPOINT_ENV = "DETECTOR_TEST_CHECKPOINT"
START_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class TorchServeFixture:
    """A running TorchServe for tests: its URLs, files, and a way to archive further versions."""

    inference_url: str
    management_url: str
    metrics_url: str
    model_store: Path
    run_dir: Path
    checkpoint: Path
    pid: int
    model_name: str = MODEL_NAME
    version: str = FIXTURE_VERSION

    def predictions_url(self, version: str | None = None) -> str:
        suffix = f"/{version}" if version else ""
        return f"{self.inference_url}/predictions/{self.model_name}{suffix}"

    def make_archive(
        self,
        version: str,
        seed: int = 1,
        settings: ServingSettings | None = None,
        checkpoint: Path | None = None,
    ) -> Path:
        """Archive `detector-<version>.mar` into the store (not registered).

        From `checkpoint` if given (e.g. the fixture's own, to serve the same weights with other
        batching settings), else from a new random checkpoint seeded with `seed`.
        """
        if checkpoint is None:
            checkpoint = make_checkpoint(self.run_dir.parent / f"checkpoint-{version}", version, seed)
        return build_archive(checkpoint, self.model_store, version, self.model_name, True, settings)


def make_checkpoint(directory: Path, version: str = FIXTURE_VERSION, seed: int = 0) -> Path:
    """A tiny CNN detector with seeded random weights, saved the way training saves checkpoints."""
    torch.manual_seed(seed)
    config = ModelConfig()
    save_checkpoint(directory, build_detector(config), config, FeatureConfig(), {"version": version})
    return directory


def fixture_checkpoint(directory: Path) -> Path:
    """$DETECTOR_TEST_CHECKPOINT copied with version 1.0 if set, else a fresh tiny checkpoint."""
    source = os.environ.get(CHECKPOINT_ENV)
    if not source:
        return make_checkpoint(directory)
    shutil.copytree(source, directory)
    metadata_path = directory / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps({**metadata, "version": FIXTURE_VERSION}, indent=2) + "\n")
    return directory


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on loopback (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def torchserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServeFixture]:
    """One real TorchServe for the whole session, serving `detector` 1.0 from a fresh store."""
    base = tmp_path_factory.mktemp("torchserve")
    checkpoint = fixture_checkpoint(base / "checkpoint-1.0")
    store = base / "model-store"
    build_archive(checkpoint, store, FIXTURE_VERSION, MODEL_NAME)
    run_dir = base / "run"
    # inference, management, metrics (the gRPC APIs get OS-chosen ports)
    server = torchserve_control.start(run_dir, store, *free_ports(3), timeout=START_TIMEOUT_SECONDS)
    try:
        yield TorchServeFixture(
            server.inference_url, server.management_url, server.metrics_url, store, run_dir, checkpoint, server.pid
        )
    finally:
        torchserve_control.stop(run_dir)

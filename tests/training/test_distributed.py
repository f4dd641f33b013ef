"""Data-parallel training: torchrun with two CPU processes (Gloo) trains one model, writes one checkpoint.

The sampler tests check the sharding itself: every process gets its own batches of the same
epoch, as many as the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import WEIGHTS_FILE, load_checkpoint
from model.inference import AudioDetector
from tests.training.conftest import toy_clip
from training.dataset import LengthBucketSampler
from training.distributed import state_digest
from training.manifest import read_manifest

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 2
EPOCHS = 2


def epoch_batches(samplers: list[LengthBucketSampler]) -> list[list[list[int]]]:
    return [list(sampler) for sampler in samplers]


def shards(lengths: list[int], batch_size: int, shuffle: bool, seed: int = 3) -> list[LengthBucketSampler]:
    """One sampler per process, each with its own generator of the same seed (as in training)."""
    return [
        LengthBucketSampler(
            lengths, batch_size, shuffle, torch.Generator().manual_seed(seed), rank=rank, replicas=PROCESSES
        )
        for rank in range(PROCESSES)
    ]


def single(lengths: list[int], batch_size: int, shuffle: bool, seed: int = 3) -> LengthBucketSampler:
    return LengthBucketSampler(lengths, batch_size, shuffle, torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def lengths() -> list[int]:
    return np.random.default_rng(0).integers(50, 3000, size=157).tolist()


def test_shuffled_shards_split_the_single_process_epoch(lengths: list[int]) -> None:
    batch_size = 8  # 157 clips: 20 batches, even
    alone, together = single(lengths, batch_size, True), shards(lengths, batch_size, True)
    for _ in range(3):  # every epoch draws a new order, alike in every process
        whole, parts = list(alone), epoch_batches(together)
        assert len(whole) == 20 and [len(part) for part in parts] == [10, 10] == [len(s) for s in together]
        assert sorted(parts[0] + parts[1]) == sorted(whole)
        assert not {i for batch in parts[0] for i in batch} & {i for batch in parts[1] for i in batch}


def test_uneven_epochs_drop_the_batches_that_would_leave_one_process_waiting(lengths: list[int]) -> None:
    batch_size = 11  # 157 clips: 15 batches, odd
    whole, parts = list(single(lengths, batch_size, True)), epoch_batches(shards(lengths, batch_size, True))
    assert len(whole) == 15 and [len(part) for part in parts] == [7, 7]
    assert sorted(parts[0] + parts[1]) == sorted(whole[:14])
    assert not {i for batch in parts[0] for i in batch} & {i for batch in parts[1] for i in batch}


def test_evaluation_shards_cover_every_clip_once(lengths: list[int]) -> None:
    samplers = shards(lengths, 11, False)
    parts = epoch_batches(samplers)
    assert [len(part) for part in parts] == [8, 7] == [len(s) for s in samplers]
    assert sorted(i for part in parts for batch in part for i in batch) == list(range(len(lengths)))


@pytest.fixture(scope="module")
def torchrun_run(
    toy_manifest: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={PROCESSES}",
        "-m", "training.train", "--manifest", str(toy_manifest), "--out", str(work / "run"),
        "--epochs", str(EPOCHS), "--patience", str(EPOCHS), "--batch-size", "8", "--threads", "1",
        "--members", "1", "--device", "cpu", "--cache-dir", str(work / "cache"),
        "--vocoded-dir", str(work / "vocoded"), "--no-evaluate",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return work, result


def test_two_gloo_processes_train_one_model(torchrun_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    work, result = torchrun_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.relative_to(work) for p in work.rglob(WEIGHTS_FILE)] == [Path("run") / WEIGHTS_FILE]
    model, _, metadata = load_checkpoint(work / "run")
    record = metadata["distributed"]
    assert record["processes"] == PROCESSES and record["backend"] == "gloo"
    # Each process reported a digest of its own final weights and buffers: the same model, the one saved.
    assert record["state_digests"] == [state_digest(model)] * PROCESSES
    detector = AudioDetector.from_checkpoint(work / "run")
    assert 0.0 <= detector.score_waveforms([toy_clip(1, real=False)])[0].probability_real <= 1.0
    history = json.loads((work / "run" / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == list(range(1, EPOCHS + 1))


def test_only_process_zero_logs(torchrun_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    _, result = torchrun_run
    lines = result.stdout.splitlines()
    assert lines.count(f"distributed: {PROCESSES} processes, gloo") == 1
    assert sum(line.startswith("epoch ") for line in lines) == EPOCHS
    assert sum(line.startswith("kept weights after epoch") for line in lines) == 1


def test_processes_share_the_feature_cache(
    torchrun_run: tuple[Path, subprocess.CompletedProcess], toy_manifest: Path
) -> None:
    work, _ = torchrun_run
    entries = list((work / "cache").iterdir())
    # Train and dev clips and the vocoded copies of the real training clips; a copy both processes
    # made at once may have left a second entry, never a half-written one.
    rows = [row for row in read_manifest(toy_manifest) if row.split != "test"]
    assert len(entries) >= len(rows) + sum(row.is_real for row in rows if row.split == "train")
    assert all(entry.suffix == ".pt" and not entry.name.startswith(".") for entry in entries)
    assert all(torch.load(entry, weights_only=True).ndim == 2 for entry in entries)

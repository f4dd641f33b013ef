"""Data-parallel training under torchrun: `torchrun --nproc_per_node=N -m training.train ...`.

torchrun starts N copies of the script and tells each its place through the environment
(WORLD_SIZE, RANK, LOCAL_RANK). Every process holds the whole model, trains on its own share of
each epoch's batches and averages gradients with the others (DistributedDataParallel: NCCL
between GPUs, Gloo between CPU processes), so the replicas stay identical. Process 0 alone
prints, writes the checkpoint and evaluates. Without torchrun (or with one process) every
helper here is a no-op and training is exactly the single-process loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.detectors import Detector

T = TypeVar("T")
R = TypeVar("R")
Logits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAIN_RANK = 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else MAIN_RANK


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == MAIN_RANK


def local_device(device: torch.device) -> torch.device:
    """The GPU torchrun assigned this process (LOCAL_RANK), where the run uses CUDA."""
    if active() and device.type == "cuda":
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the block (when started with more than one process).

    Processes other than 0 print nothing: their stdout goes to /dev/null (stderr, with any
    traceback, stays).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        with contextlib.ExitStack() as quiet:
            if not is_main():
                quiet.enter_context(contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w"))))
            print(f"distributed: {world_size()} processes, {dist.get_backend()}")
            yield
    finally:
        dist.destroy_process_group()


class LogitsForward(nn.Module):
    """DistributedDataParallel syncs gradients through forward() only; a detector's forward is
    P(real) while training needs its logits."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.detector.logits(features, lengths)


def training_logits(model: Detector, device: torch.device) -> Logits:
    """What the training step calls for logits: the model itself, or its DDP wrapper."""
    if not active():
        return model.logits
    return DistributedDataParallel(LogitsForward(model), device_ids=[device.index] if device.type == "cuda" else None)


def share(items: Sequence[T]) -> list[T]:
    """This process's share of a list: every world_size-th item from its rank on."""
    return list(items[rank() :: world_size()])


def share_first(make: Callable[[Sequence[T]], R], items: Sequence[T]) -> R:
    """`make(items)`, each process having first made its own share of them.

    For idempotent makers that write atomically and skip what exists (feature cache, vocoded
    and augmented copies): the work is spread over the processes, a file another process is
    still writing is at worst made twice, and nobody waits at a barrier while it is made.
    """
    if active():
        make(share(items))
    return make(items)


def gathered(items: list[T]) -> list[T]:
    """Every process's items, in rank order (the list itself in one process)."""
    if not active():
        return items
    parts: list[list[T] | None] = [None] * world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part or []]


def sync_buffers(model: nn.Module) -> None:
    """Copy process 0's buffers to the others: each process updates its BatchNorm statistics on
    its own batches (the weights need no copy: DDP keeps them identical)."""
    if active():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=MAIN_RANK)


def state_digest(model: nn.Module) -> str:
    """SHA-1 of every weight and buffer: equal digests mean identical models."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def replica_record(model: nn.Module) -> dict:
    """The metadata entry of a distributed run; raises if the processes' models differ."""
    if not active():
        return {}
    digests = gathered([state_digest(model)])
    if len(set(digests)) > 1:
        raise RuntimeError(f"the {world_size()} processes ended with different models: {digests}")
    return {"distributed": {"processes": world_size(), "backend": dist.get_backend(), "state_digests": digests}}


def barrier() -> None:
    if active():
        dist.barrier()

"""Load test: thousands of mixed valid and invalid uploads at high concurrency against a fresh stack.

    python -m scripts.load_test [--requests 5000] [--concurrency 32] [--checkpoint artifacts/default]

Starts its own TorchServe + gateway (scripts.serve) on free loopback ports, with its own run
directory (<out>/stack), serving an archive of --checkpoint if that folder holds a checkpoint that
archives (loads) with this code, else of a small randomly initialised one made here, with a warning
and the reason in the report (the figures then measure the serving path, not a trained model).
Sends the requests with one httpx.AsyncClient: speech-like WAV clips of several durations and
invalid uploads (a corrupt WAV, an empty file, text). Every request must be answered,
each with the status its kind expects (200, 415 or 422): none with a 5xx.

Reports requests, answers by status, latency percentiles, throughput and the resident memory of the
gateway and of TorchServe's frontend and workers at start and end; writes <out>/report.json and prints
a table. Exits 1 if any request went unanswered or got an unexpected status. Bounded: at most
MAX_REQUESTS requests and --deadline-minutes of sending; everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch

from model.checkpoint import save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import FeatureConfig
from model.signals import speech_like, wav_bytes
from scripts import serve, torchserve
from scripts.archive import CHECKPOINT_FILES, ArchiveError, build_archive

DEFAULT_REQUESTS = 5_000
DEFAULT_CONCURRENCY = 32
MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
DEFAULT_DEADLINE_MINUTES = 60.0
REQUEST_TIMEOUT_SECONDS = 120.0
PROGRESS_EVERY = 500
DEFAULT_CHECKPOINT = Path("artifacts/default")
DEFAULT_OUT = Path("runs/load")
SMALL_CHECKPOINT_VERSION = "0.0-load"
SMALL_CHECKPOINT_SEED = 0
SCHEDULE_SEED = 0
PREDICT = "/predict-file/"
MIB = 1024 * 1024
PERCENTILES = (50, 95, 99)
JAVA = "java"
WORKER_MARKER = "model_service_worker"
SERVER_ERROR = 500


@dataclass(frozen=True)
class Kind:
    """One kind of upload in the mix: what is sent and the status it must get."""

    name: str
    filename: str
    payload: bytes
    expected: int
    share: int  # slots out of sum(shares) in each round of the mix


def request_mix() -> list[Kind]:
    """70 % valid clips of four durations (one spans two 6 s windows), 30 % invalid uploads."""
    return [
        Kind("clip-1.0s", "a.wav", wav_bytes(speech_like(1.0, seed=1)), 200, 2),
        Kind("clip-2.5s", "b.wav", wav_bytes(speech_like(2.5, seed=2)), 200, 2),
        Kind("clip-4.0s", "c.wav", wav_bytes(speech_like(4.0, seed=3)), 200, 2),
        Kind("clip-6.5s", "d.wav", wav_bytes(speech_like(6.5, seed=4)), 200, 1),
        Kind("corrupt-wav", "corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4, 415, 1),
        Kind("empty", "empty.wav", b"", 422, 1),
        Kind("text", "notes.wav", b"this is not audio\n" * 40, 415, 1),
    ]


@dataclass
class Results:
    """Every answer (kind, status, seconds) and every request that got none."""

    answers: list[tuple[str, int, float]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


def schedule(kinds: list[Kind], requests: int) -> list[Kind]:
    """`requests` uploads in the mix's proportions, in a fixed shuffled order (the same every run)."""
    slots = [kind for kind in kinds for _ in range(kind.share)]
    plan = [slots[i % len(slots)] for i in range(requests)]
    random.Random(SCHEDULE_SEED).shuffle(plan)
    return plan


async def send_all(url: str, plan: list[Kind], concurrency: int, deadline: float) -> tuple[Results, float]:
    """`concurrency` senders take the next planned request until none is left or the deadline passes."""
    results, cursor = Results(), iter(plan)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as client:

        async def sender() -> None:
            for kind in cursor:
                if time.monotonic() > deadline:
                    results.failures["deadline"] += 1
                    continue
                started = time.perf_counter()
                try:
                    response = await client.post(PREDICT, files={"file": (kind.filename, kind.payload)})
                except httpx.HTTPError as error:
                    results.failures[type(error).__name__] += 1
                    continue
                results.answers.append((kind.name, response.status_code, time.perf_counter() - started))
                if len(results.answers) % PROGRESS_EVERY == 0:
                    print(f"  {len(results.answers)} of {len(plan)} answered", flush=True)

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return results, time.perf_counter() - began


def small_checkpoint(directory: Path) -> Path:
    """A randomly initialised detector saved the way training saves one."""
    torch.manual_seed(SMALL_CHECKPOINT_SEED)
    config = ModelConfig()
    save_checkpoint(directory, build_detector(config), config, FeatureConfig(), {"version": SMALL_CHECKPOINT_VERSION})
    return directory


def is_checkpoint(directory: Path) -> bool:
    return all((directory / name).is_file() for name in CHECKPOINT_FILES)


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / MIB, 1)


def stack_memory(run_dir: Path) -> dict[str, float | int]:
    """RSS of the gateway, TorchServe's Java frontend and its Python workers (by recorded process group)."""
    gateway = torchserve.running_pid(run_dir, serve.GATEWAY_PID_FILE)
    server = torchserve.running_pid(run_dir)
    members = torchserve.group_members(server) if server else []
    commands = {}
    for pid in members:
        try:
            commands[pid] = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            continue
    workers = [pid for pid, command in commands.items() if WORKER_MARKER in command]
    frontend = [pid for pid, command in commands.items() if command.split(" ", 1)[0].endswith(JAVA)]
    return {
        "gateway_mib": rss_mib([gateway] if gateway else []),
        "torchserve_frontend_mib": rss_mib(frontend),
        "torchserve_workers_mib": rss_mib(workers),
        "torchserve_workers": len(workers),
        "torchserve_total_mib": rss_mib(list(commands)),
    }


def summarise(kinds: list[Kind], plan: list[Kind], results: Results, elapsed: float) -> dict:
    expected = {kind.name: kind.expected for kind in kinds}
    statuses = Counter(status for _, status, _ in results.answers)
    unexpected = Counter(f"{name}: {status}" for name, status, _ in results.answers if status != expected[name])
    latencies = np.asarray([seconds for _, _, seconds in results.answers]) * 1000
    valid = np.asarray([seconds for name, status, seconds in results.answers if expected[name] == 200]) * 1000
    return {
        "requests": len(plan),
        "answered": len(results.answers),
        "unanswered": dict(results.failures),
        "status_counts": {str(status): count for status, count in sorted(statuses.items())},
        "server_errors": sum(count for status, count in statuses.items() if status >= SERVER_ERROR),
        "unexpected": dict(unexpected),
        "by_kind": {
            kind.name: {
                "planned": sum(1 for planned in plan if planned is kind),
                "expected_status": kind.expected,
                "statuses": dict(Counter(str(status) for name, status, _ in results.answers if name == kind.name)),
            }
            for kind in kinds
        },
        "latency_ms": percentiles(latencies),
        "valid_latency_ms": percentiles(valid),
        "seconds": round(elapsed, 1),
        "throughput_rps": round(len(results.answers) / elapsed, 1) if elapsed else 0.0,
    }


def percentiles(milliseconds: np.ndarray) -> dict[str, float]:
    if milliseconds.size == 0:
        return {}
    return {f"p{q}": round(float(np.percentile(milliseconds, q)), 1) for q in PERCENTILES}


def archive_for_load(checkpoint: Path, out: Path, store: Path) -> tuple[Path, str | None]:
    """Archive the shipped checkpoint if it can be, else a small random one; say why it could not."""
    if not is_checkpoint(checkpoint):
        reason = f"{checkpoint} holds no checkpoint"
    else:
        print(f"archiving {checkpoint} ...", flush=True)
        try:
            build_archive(checkpoint, store)
            return checkpoint, None
        except ArchiveError as error:
            reason = f"{checkpoint} could not be archived: {str(error).strip().splitlines()[-1]}"
    print(f"WARNING: {reason}; load-testing a small random checkpoint instead", flush=True)
    small = small_checkpoint(out / "checkpoint")
    build_archive(small, store)
    return small, reason


def run(args: argparse.Namespace) -> dict:
    out = args.out.resolve()
    run_dir, store = out / "stack", out / "model-store"
    checkpoint, fallback_reason = archive_for_load(args.checkpoint, out, store)
    gateway_port, *server_ports = serve.free_ports(4)
    url = serve.start(run_dir, store, gateway_port, tuple(server_ports))
    try:
        kinds = request_mix()
        plan = schedule(kinds, args.requests)
        memory_start = stack_memory(run_dir)
        print(f"sending {len(plan)} requests at concurrency {args.concurrency} to {url} ...", flush=True)
        deadline = time.monotonic() + args.deadline_minutes * 60
        results, elapsed = asyncio.run(send_all(url, plan, args.concurrency, deadline))
        memory_end = stack_memory(run_dir)
    finally:
        serve.stop(run_dir)
    return {
        "machine": {"cpus": psutil.cpu_count(), "load_average": [round(v, 2) for v in psutil.getloadavg()]},
        "checkpoint": str(checkpoint),
        "fallback_reason": fallback_reason,
        "concurrency": args.concurrency,
        **summarise(kinds, plan, results, elapsed),
        "memory_start": memory_start,
        "memory_end": memory_end,
    }


def passed(report: dict) -> bool:
    return report["answered"] == report["requests"] and not report["unexpected"] and report["server_errors"] == 0


def print_report(report: dict) -> None:
    print(f"\nload test: {report['requests']} requests at concurrency {report['concurrency']} ({report['checkpoint']})")
    if report["fallback_reason"]:
        print(f"  (not the shipped model: {report['fallback_reason']})")
    print(f"{'kind':<13} {'planned':>8} {'expected':>9}  answers by status")
    for name, kind in report["by_kind"].items():
        print(f"{name:<13} {kind['planned']:>8} {kind['expected_status']:>9}  {kind['statuses']}")
    print(f"answered {report['answered']} of {report['requests']}; unanswered {report['unanswered'] or 0}")
    print(f"by status {report['status_counts']}; 5xx {report['server_errors']}; unexpected {report['unexpected'] or 0}")
    for label, key in (("latency, all", "latency_ms"), ("latency, valid", "valid_latency_ms")):
        print(f"{label:<15} " + ", ".join(f"{q} {ms} ms" for q, ms in report[key].items()))
    print(f"throughput      {report['throughput_rps']} requests/s over {report['seconds']} s")
    print(f"{'RSS MiB':<24} {'start':>8} {'end':>8}")
    for key in ("gateway_mib", "torchserve_frontend_mib", "torchserve_workers_mib", "torchserve_total_mib"):
        print(f"{key.removesuffix('_mib'):<24} {report['memory_start'][key]:>8} {report['memory_end'][key]:>8}")
    print("PASSED" if passed(report) else "FAILED: see unanswered / unexpected / 5xx above")


def bounded(limit: int) -> Callable[[str], int]:
    """An argparse type: an integer from 1 to `limit`, so a typo cannot start an unbounded run."""

    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be between 1 and {limit}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.load_test",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--requests", type=bounded(MAX_REQUESTS), default=DEFAULT_REQUESTS, help=f"default {DEFAULT_REQUESTS}"
    )
    parser.add_argument(
        "--concurrency",
        type=bounded(MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help=f"default {DEFAULT_CONCURRENCY}",
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="used if it holds a checkpoint")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report and run directory (default runs/load)")
    parser.add_argument(
        "--deadline-minutes",
        type=float,
        default=DEFAULT_DEADLINE_MINUTES,
        help=f"stop sending after (default {DEFAULT_DEADLINE_MINUTES:g})",
    )
    args = parser.parse_args(argv)
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"report: {args.out / 'report.json'}")
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())

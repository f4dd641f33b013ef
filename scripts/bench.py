"""Benchmark the detector end to end in one run: `make bench` (`--smoke`: CI's quick pass through every part).

    python -m scripts.bench [--checkpoint artifacts/default] [--out runs/bench] [--smoke]

On free loopback ports, one thing at a time:

1. offline (this process, the torch threads of one worker): time per stage of a request (decode,
   resampling, level normalisation, log-mel, forward, JSON) for a 4 s clip and a 10 min one; what
   each scoring change bought on the 10 min clip; the CPU forward options and their agreement.
2. the seed's architecture (scripts/bench_inprocess.py: one FastAPI process that runs the model
   in the request), then a fresh TorchServe + gateway (`make serve`'s code) timed from start to
   first prediction. For a 4 s 16 kHz WAV at concurrency 1, 8 and 32: throughput, p50/p95/p99 and
   CPU per request of each process, for the baseline, direct TorchServe (`POST
   /predictions/detector`, the bytes the gateway forwards) and the gateway.
3. a 10 min file (WAV and MP3) through the gateway, checked against offline scoring; 3 s requests
   alone and while 10 min files are scored back to back; the same archive registered with
   batching off; the peak RSS of every process.

Writes <out>/report.json and <out>/report.md (the tables the README shows) and prints the
Markdown. Bounded: about 8 minutes on 2 cores (`--smoke`: under a minute of measuring).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import torch

from model.audio import decode_audio
from model.inference import AudioDetector
from model.signals import SENTENCES, spoken, wav_bytes
from scripts import bench_offline, serve, torchserve
from scripts.archive import ServingSettings, build_archive
from scripts.bench_inprocess import CHECKPOINT_ENV
from scripts.bench_memory import MemorySampler, cpu_seconds, stack_roles
from scripts.bench_report import markdown, targets
from scripts.load_test import is_checkpoint, small_checkpoint

DEFAULT_CHECKPOINT = Path("artifacts/default")
DEFAULT_OUT = Path("runs/bench")
CLIP_SECONDS = 4.0
SHORT_SECONDS = 3.0
CONCURRENCY = (1, 8, 32)
MODEL = torchserve.MODEL_NAME
UNBATCHED = f"{MODEL}-unbatched"
BASELINE_PID_FILE = "baseline.pid"
REQUEST_TIMEOUT_SECONDS = 300.0
LONG_STREAMS = 1  # 10 min uploads kept in flight during the head-of-line test
WARM_UP_REQUESTS = 4


@dataclass(frozen=True)
class Plan:
    """How long each part runs: the full bench, or the smoke pass that only proves every part works."""

    smoke: bool
    level_seconds: float  # per concurrency level
    long_seconds: float  # the "10 minute" file: 599 s, as an MP3's encoder padding must stay under the 600 s limit
    long_repeats: int
    hol_seconds: float  # each phase of the head-of-line test

    @classmethod
    def of(cls, smoke: bool) -> Plan:
        return cls(True, 0.5, 20.0, 1, 1.5) if smoke else cls(False, 6.0, 599.0, 3, 15.0)


@dataclass(frozen=True)
class Payloads:
    clip: bytes  # 4 s WAV
    short: bytes  # 3 s WAV
    long_wav: bytes
    long_mp3: bytes


def payloads(plan: Plan) -> Payloads:
    """espeak-ng speech, so that serving's speech check passes and the VAD's cost is in every figure."""
    long_samples = spoken(plan.long_seconds)
    return Payloads(
        wav_bytes(spoken(CLIP_SECONDS, text=SENTENCES[0])),
        wav_bytes(spoken(SHORT_SECONDS, text=SENTENCES[1])),
        wav_bytes(long_samples),
        bench_offline.mp3_bytes(long_samples),
    )


# --- HTTP load


Sender = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def multipart(url: str, payload: bytes, filename: str = "clip.wav") -> Sender:
    return lambda client: client.post(url, files={"file": (filename, payload, "application/octet-stream")})


def raw_body(url: str, payload: bytes) -> Sender:
    return lambda client: client.post(url, content=payload, headers={"Content-Type": "application/octet-stream"})


def client_for(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits)


async def timed_request(client: httpx.AsyncClient, send: Sender) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await send(client)
    response.raise_for_status()
    return time.perf_counter() - started, response


async def load_level(send: Sender, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` users sending back to back for `seconds` (each at least one request)."""
    latencies: list[float] = []
    async with client_for(concurrency) as client:
        for _ in range(WARM_UP_REQUESTS):
            await timed_request(client, send)
        deadline = time.perf_counter() + seconds

        async def user() -> None:
            while True:
                latencies.append((await timed_request(client, send))[0])
                if time.perf_counter() >= deadline:
                    return

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 2),
        **percentiles(latencies),
    }


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def measure_levels(send: Sender, plan: Plan, pids: Callable[[], dict[str, list[int]]]) -> list[dict[str, Any]]:
    """Every concurrency level, with the CPU each process group spent per request."""
    rows = []
    for concurrency in CONCURRENCY:
        groups = pids()
        before = {name: cpu_seconds(members) for name, members in groups.items()}
        row = asyncio.run(load_level(send, concurrency, plan.level_seconds))
        row["cpu_ms_per_request"] = {
            name: round(1000 * (cpu_seconds(members) - before[name]) / row["requests"], 2)
            for name, members in groups.items()
        }  # warm-up requests included in the CPU, not in the count: a small overestimate
        rows.append(row)
        print(f"  c={concurrency}: {row['requests_per_second']} req/s, p50 {row['p50_ms']} ms", flush=True)
    return rows


# --- The seed's architecture


def run_baseline(checkpoint: Path, run_dir: Path, plan: Plan, clip: bytes, memory: MemorySampler) -> dict:
    """Start scripts/bench_inprocess.py under uvicorn, load it, stop it (by its recorded process group)."""
    port = serve.free_ports(1)[0]
    command = [sys.executable, "-m", "uvicorn", "--factory", "scripts.bench_inprocess:create_app",
               "--host", torchserve.HOST, "--port", str(port), "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, CHECKPOINT_ENV: str(checkpoint.resolve())}
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "baseline.log", "ab") as log:
        process = subprocess.Popen(command, cwd=torchserve.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    torchserve.write_pid(run_dir, process.pid, BASELINE_PID_FILE)
    url = f"http://{torchserve.HOST}:{port}"
    try:
        serve.wait_healthy(url, process)
        memory.watch({process.pid: "baseline (FastAPI + model)"})
        print("baseline: one FastAPI process with the model in the request", flush=True)
        return {
            "levels": measure_levels(multipart(url + "/predict-file/", clip), plan, lambda: {"baseline": [process.pid]})
        }
    finally:
        torchserve.stop_group(run_dir, BASELINE_PID_FILE)


# --- TorchServe + gateway


async def one_request(send: Sender) -> tuple[float, httpx.Response]:
    async with client_for(1) as client:
        return await timed_request(client, send)


def served_pids(run_dir: Path) -> dict[str, list[int]]:
    """The process groups whose CPU is charged to the served path, plus the load generator (this process)."""
    roles = stack_roles(run_dir)
    return {
        "gateway": [pid for pid, role in roles.items() if role == "gateway"],
        "torchserve": [pid for pid, role in roles.items() if role != "gateway"],
        "bench client": [os.getpid()],
    }


def run_served(
    store: Path, run_dir: Path, plan: Plan, data: Payloads, detector: AudioDetector, memory: MemorySampler
) -> dict:
    gateway_port, *server_ports = serve.free_ports(4)
    started = time.perf_counter()
    url = serve.start(run_dir, store, gateway_port, tuple(server_ports))
    healthy = time.perf_counter() - started
    asyncio.run(one_request(multipart(url + "/predict-file/", data.short)))
    cold_start = {
        "healthy_seconds": round(healthy, 2),
        "first_prediction_seconds": round(time.perf_counter() - started, 2),
    }
    print(f"served: cold start {cold_start['first_prediction_seconds']} s to the first prediction", flush=True)
    inference, management = (f"http://{torchserve.HOST}:{port}" for port in server_ports[:2])
    memory.watch_stack(run_dir)
    pids = lambda: served_pids(run_dir)  # noqa: E731
    try:
        print("direct TorchServe", flush=True)
        direct = measure_levels(raw_body(f"{inference}/predictions/{MODEL}", data.clip), plan, pids)
        print("gateway -> TorchServe", flush=True)
        gateway = measure_levels(multipart(url + "/predict-file/", data.clip), plan, pids)
        long = long_audio(url, inference, plan, data, detector)
        hol = asyncio.run(head_of_line(url, plan, data))
        unbatched = batching_off(inference, management, plan, data.clip, pids)
        settings = describe(management)
    finally:
        serve.stop(run_dir)
    return {"cold_start": cold_start, "model": settings, "direct": direct, "gateway": gateway,
            "long_audio": long, "head_of_line": hol, "batching_off": unbatched}  # fmt: skip


def describe(management: str) -> dict[str, Any]:
    described = httpx.get(f"{management}/models/{MODEL}", timeout=30).json()[0]
    keys = ("modelVersion", "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay")
    return {key: described.get(key) for key in keys} | {"workers": len(described.get("workers", []))}


def long_audio(url: str, inference: str, plan: Plan, data: Payloads, detector: AudioDetector) -> dict[str, Any]:
    """The long file through the gateway (WAV and MP3) and, for comparison, the WAV sent straight to TorchServe."""
    result: dict[str, Any] = {"clip_seconds": plan.long_seconds}
    for kind, payload in (("wav", data.long_wav), ("mp3", data.long_mp3)):
        times, body = [], {}
        for _ in range(plan.long_repeats):
            seconds, response = asyncio.run(one_request(multipart(url + "/predict-file/", payload, f"long.{kind}")))
            times.append(seconds)
            body = response.json()
        expected = detector.score_waveforms([decode_audio(payload)])[0]
        result[kind] = {
            "bytes": len(payload),
            "seconds": [round(t, 3) for t in times],
            "median_seconds": round(float(np.median(times)), 3),
            "segments": len(body["segments"]),
            "max_segment_seconds": max(s["end_seconds"] - s["start_seconds"] for s in body["segments"]),
            "served_offline_max_difference": served_offline_difference(body, expected),
        }
        print(f"long {kind}: {result[kind]['median_seconds']} s, {result[kind]['segments']} segments", flush=True)
    seconds, _ = asyncio.run(one_request(raw_body(f"{inference}/predictions/{MODEL}", data.long_wav)))
    result["wav_direct_seconds"] = round(seconds, 3)
    return result


def served_offline_difference(body: dict[str, Any], expected: Any) -> float:
    """Largest gap between the served and the offline probabilities (clip and every segment)."""
    if len(body["segments"]) != len(expected.segments):
        return float("inf")
    gaps = [abs(body["prediction"] - expected.probability_real)]
    gaps += [
        abs(s["prediction"] - e.probability_real) for s, e in zip(body["segments"], expected.segments, strict=True)
    ]
    return max(gaps)


async def head_of_line(url: str, plan: Plan, data: Payloads) -> dict[str, Any]:
    """3 s requests one after another, first alone, then while LONG_STREAMS long WAVs are scored back to back."""
    short = multipart(url + "/predict-file/", data.short, "short.wav")
    idle = await load_level(short, 1, plan.hol_seconds)
    stopping = asyncio.Event()
    long_times: list[float] = []

    async def long_stream() -> None:
        async with client_for(1) as client:
            while not stopping.is_set():
                long_times.append((await timed_request(client, multipart(url + "/predict-file/", data.long_wav)))[0])

    streams = [asyncio.create_task(long_stream()) for _ in range(LONG_STREAMS)]
    await asyncio.sleep(0.5)  # the first long upload has arrived and is being scored
    loaded = await load_level(short, 1, plan.hol_seconds)
    stopping.set()
    await asyncio.gather(*streams)
    print(f"head of line: 3 s p95 {idle['p95_ms']} ms alone, {loaded['p95_ms']} ms beside long files", flush=True)
    return {"long_streams": LONG_STREAMS, "long_files_scored": len(long_times), "idle": idle, "loaded": loaded,
            "p95_ratio": round(loaded["p95_ms"] / idle["p95_ms"], 2)}  # fmt: skip


def batching_off(inference: str, management: str, plan: Plan, clip: bytes, pids: Callable) -> dict[str, Any]:
    """The same archive registered a second time with batch size 1, measured straight on TorchServe."""
    described = httpx.get(f"{management}/models/{MODEL}", timeout=30).json()[0]
    params = {"url": Path(described["modelUrl"]).name, "model_name": UNBATCHED, "batch_size": 1,
              "max_batch_delay": 0, "initial_workers": described["minWorkers"], "synchronous": "true"}  # fmt: skip
    httpx.post(f"{management}/models", params=params, timeout=REQUEST_TIMEOUT_SECONDS).raise_for_status()
    try:
        registered = httpx.get(f"{management}/models/{UNBATCHED}", timeout=30).json()[0]
        print(f"batching off ({UNBATCHED}, batch size {registered['batchSize']})", flush=True)
        levels = measure_levels(raw_body(f"{inference}/predictions/{UNBATCHED}", clip), plan, pids)
    finally:
        httpx.delete(f"{management}/models/{UNBATCHED}", timeout=REQUEST_TIMEOUT_SECONDS)
    return {"batch_size": registered["batchSize"], "levels": levels}


# --- The run


def bench_checkpoint(requested: Path, out: Path) -> tuple[Path, str | None]:
    """The requested checkpoint, or (where it is missing, as in CI) a small random one, and why."""
    if is_checkpoint(requested):
        return requested, None
    return small_checkpoint(out / "checkpoint"), f"{requested} holds no checkpoint: a small random one was used"


def machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "cpu_model": platform.processor() or cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_average_start": [round(v, 2) for v in psutil.getloadavg()],
    }


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.of(args.smoke)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, fallback = bench_checkpoint(args.checkpoint, out)
    settings = ServingSettings(workers=args.workers) if args.workers else ServingSettings()
    threads = settings.torch_threads or max(1, torchserve_cpus() // settings.workers)
    report: dict[str, Any] = {"smoke": plan.smoke, "machine": machine(), "checkpoint": str(checkpoint),
                              "fallback_reason": fallback, "serving": settings.__dict__}  # fmt: skip
    detector = AudioDetector.from_checkpoint(checkpoint)
    print(f"offline, {threads} torch thread(s) (one worker's share)", flush=True)
    report["offline"] = bench_offline.offline(detector, threads, plan.smoke, plan.long_seconds, args.compile)
    data = payloads(plan)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as store, MemorySampler() as memory:
        build_archive(checkpoint, Path(store), settings=settings)
        report["baseline"] = run_baseline(checkpoint, out / "baseline", plan, data.clip, memory)
        report["served"] = run_served(Path(store), out / "stack", plan, data, detector, memory)
        report["peak_rss_mib"] = memory.peaks()
    report["machine"]["load_average_end"] = [round(v, 2) for v in psutil.getloadavg()]
    report["targets"] = targets(report)
    return report


def torchserve_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (and run dirs)")
    parser.add_argument("--smoke", action="store_true", help="a quick pass through every part (CI)")
    parser.add_argument("--workers", type=int, default=0, help="TorchServe workers (default: the archive's)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    args = parser.parse_args(argv)
    report = run(args)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "report.md").write_text(text)
    print("\n" + text + f"\nreport: {args.out / 'report.json'}, {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

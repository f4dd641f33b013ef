"""Benchmark the detector: offline stage timings, and latency/throughput/memory when served.

    python -m scripts.bench [--checkpoint artifacts/default] [--no-served]

Offline: decode (WAV and MP3), log-mel and forward times per clip length, and batch scoring
throughput, through model/ exactly as the handler calls it. Served: a private TorchServe +
gateway on free loopback ports (own run dir), sequential latency and concurrent throughput of
POST /predict-file/, and the resident memory of every process. Writes runs/bench/report.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch

from model.audio import decode_audio
from model.inference import AudioDetector
from model.signals import speech_like, wav_bytes
from scripts import serve, torchserve
from scripts.archive import build_archive

CLIP_SECONDS = (1.0, 6.0, 30.0)
REPEATS = 7
BATCH_CLIPS = 8
BATCH_CLIP_SECONDS = 3.0
SERVED_CLIP_SECONDS = 3.0
SEQUENTIAL_REQUESTS = 30
CONCURRENT_REQUESTS = 96
CONCURRENCY = 8
REQUEST_TIMEOUT_SECONDS = 120.0
MiB = 1024 * 1024


def mp3_bytes(samples: np.ndarray) -> bytes:
    command = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "wav",
        "-i",
        "pipe:0",
        "-b:a",
        "64k",
        "-f",
        "mp3",
        "pipe:1",
    ]
    return subprocess.run(command, input=wav_bytes(samples), capture_output=True, check=True, timeout=60).stdout


def median_ms(action, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 2)


def offline(checkpoint: Path) -> dict:
    detector = AudioDetector.from_checkpoint(checkpoint)
    rows = []
    for seconds in CLIP_SECONDS:
        samples = speech_like(seconds)
        wav, mp3 = wav_bytes(samples), mp3_bytes(samples)
        windows = detector.extractor.split(samples)
        features = [detector.extractor(w) for w in windows]
        rows.append(
            {
                "clip_seconds": seconds,
                "decode_wav_ms": median_ms(lambda wav=wav: decode_audio(wav)),
                "decode_mp3_ms": median_ms(lambda mp3=mp3: decode_audio(mp3)),
                "log_mel_ms": median_ms(lambda windows=windows: [detector.extractor(w) for w in windows]),
                "forward_ms": median_ms(lambda features=features: detector.score_features(features)),
                "end_to_end_wav_ms": median_ms(lambda wav=wav: detector.score_audio(wav)),
            }
        )
    batch = [speech_like(BATCH_CLIP_SECONDS, seed=seed) for seed in range(BATCH_CLIPS)]
    batch_ms = median_ms(lambda: detector.score_waveforms(batch))
    return {
        "per_clip": rows,
        "batch": {
            "clips": BATCH_CLIPS,
            "clip_seconds": BATCH_CLIP_SECONDS,
            "ms": batch_ms,
            "clips_per_second": round(1000 * BATCH_CLIPS / batch_ms, 1),
        },
        "parameters": sum(p.numel() for p in detector.model.parameters()),
        "torch_threads": torch.get_num_threads(),
    }


def rss_mib(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / MiB, 1)


def stack_memory(run_dir: Path) -> dict:
    """RSS of the gateway and of TorchServe's frontend + workers (the recorded process groups)."""
    gateway = torchserve.running_pid(run_dir, serve.GATEWAY_PID_FILE)
    server = torchserve.running_pid(run_dir)
    members = torchserve.group_members(server) if server else []
    return {
        "gateway_mib": rss_mib(gateway) if gateway else None,
        "torchserve_total_mib": round(sum(rss_mib(pid) for pid in members), 1),
        "torchserve_processes": len(members),
    }


async def post_clip(client: httpx.AsyncClient, url: str, payload: bytes) -> float:
    started = time.perf_counter()
    response = await client.post(url, files={"file": ("bench.wav", payload, "audio/wav")})
    response.raise_for_status()
    return time.perf_counter() - started


async def served_requests(url: str) -> dict:
    payload = wav_bytes(speech_like(SERVED_CLIP_SECONDS))
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        await post_clip(client, url, payload)  # warm-up
        sequential = [await post_clip(client, url, payload) for _ in range(SEQUENTIAL_REQUESTS)]
        gate = asyncio.Semaphore(CONCURRENCY)

        async def limited() -> float:
            async with gate:
                return await post_clip(client, url, payload)

        started = time.perf_counter()
        concurrent = await asyncio.gather(*(limited() for _ in range(CONCURRENT_REQUESTS)))
        elapsed = time.perf_counter() - started
    return {
        "clip_seconds": SERVED_CLIP_SECONDS,
        "sequential": {"requests": SEQUENTIAL_REQUESTS, **percentiles(sequential)},
        "concurrent": {
            "requests": CONCURRENT_REQUESTS,
            "concurrency": CONCURRENCY,
            **percentiles(concurrent),
            "requests_per_second": round(CONCURRENT_REQUESTS / elapsed, 1),
        },
    }


def percentiles(seconds: list[float]) -> dict:
    values = np.asarray(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def served(checkpoint: Path, run_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as store:
        build_archive(checkpoint, Path(store))
        gateway_port, *ts_ports = serve.free_ports(4)
        url = serve.start(run_dir, Path(store), gateway_port, tuple(ts_ports))
        try:
            memory_start = stack_memory(run_dir)
            results = asyncio.run(served_requests(url + "/predict-file/"))
            results["memory_start"], results["memory_end"] = memory_start, stack_memory(run_dir)
        finally:
            serve.stop(run_dir)
    return results


def print_report(report: dict) -> None:
    print(f"\noffline ({report['offline']['parameters']:,} parameters, {report['offline']['torch_threads']} threads)")
    print(f"{'clip s':>7} {'decode wav':>11} {'decode mp3':>11} {'log-mel':>8} {'forward':>8} {'total wav':>10}  (ms)")
    for row in report["offline"]["per_clip"]:
        print(
            f"{row['clip_seconds']:>7g} {row['decode_wav_ms']:>11} {row['decode_mp3_ms']:>11} "
            f"{row['log_mel_ms']:>8} {row['forward_ms']:>8} {row['end_to_end_wav_ms']:>10}"
        )
    batch = report["offline"]["batch"]
    rate = f"{batch['clips_per_second']} clips/s"
    print(f"batch of {batch['clips']} x {batch['clip_seconds']:g} s: {batch['ms']} ms ({rate})")
    if "served" in report:
        s = report["served"]
        print(f"\nserved, {s['clip_seconds']:g} s WAV through gateway -> TorchServe")
        for mode in ("sequential", "concurrent"):
            r = s[mode]
            extra = (
                f", {r['requests_per_second']} req/s at concurrency {r['concurrency']}" if mode == "concurrent" else ""
            )
            print(
                f"  {mode:<10} {r['requests']} requests: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
                f"p99 {r['p99_ms']} ms{extra}"
            )
        print(f"  memory start {s['memory_start']}\n  memory end   {s['memory_end']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("artifacts/default"), help="checkpoint folder")
    parser.add_argument("--served", action=argparse.BooleanOptionalAction, default=True, help="benchmark serving")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="report folder (and run dir)")
    args = parser.parse_args(argv)
    report = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
            "load_average": [round(v, 2) for v in psutil.getloadavg()],
        },
        "checkpoint": str(args.checkpoint),
        "offline": offline(args.checkpoint),
    }
    if args.served:
        report["served"] = served(args.checkpoint, (args.out / "stack").resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nreport: {args.out / 'report.json'}")


if __name__ == "__main__":
    main()

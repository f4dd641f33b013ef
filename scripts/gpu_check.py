"""Check the CUDA paths on a machine with a GPU: `python -m scripts.gpu_check`.

CI has no GPU, so this is what shows that training with `--device cuda` (or `auto`), a
checkpoint saved from GPU tensors, and the TorchServe handler on the `gpu_id` a worker is
given all work, and that the GPU scores what the CPU scores. Each check prints one line; the
report is written as JSON; the exit status is 1 if any check failed. On a machine without
CUDA it stops at once with a message (`--device cpu` runs the same checks on the CPU, to
try the script itself).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from model.audio import SAMPLE_RATE
from model.inference import AudioDetector
from model.signals import speech_like, wav_bytes
from scripts.bench_offline import timed
from training.manifest import ManifestRow, write_manifest
from training.train import TrainConfig, train

SHIPPED_MODEL = Path("artifacts/default")
TOY_CLIPS = 80
TOY_SPLITS = ("train", "train", "train", "dev", "test")
TOY_EPOCHS = 8
TOY_DEV_EER_LIMIT = 0.10  # the buzz is obvious: a run that learns anything gets far below this
BUZZ_HZ = 3000
PARITY_TOLERANCE = 1e-3  # probability; float32 kernels differ between devices in the last bits
PARITY_CLIP_SECONDS = (0.6, 2.0, 5.0, 12.0, 31.0)  # one window, several windows, a ragged tail
THROUGHPUT_CLIPS = 64
THROUGHPUT_CLIP_SECONDS = 5.0
THROUGHPUT_REPEATS = 5


def toy_clip(index: int, real: bool) -> np.ndarray:
    """'Real' is a clean voiced signal, 'fake' the same with a square-wave buzz: separable at a glance."""
    rng = np.random.default_rng(index)
    clip = speech_like(rng.uniform(0.5, 2.0), seed=index)
    if not real:
        t = np.arange(len(clip)) / SAMPLE_RATE
        clip = 0.6 * clip + 0.3 * np.sign(np.sin(2 * np.pi * BUZZ_HZ * t)).astype(np.float32)
    return clip


def write_toy_manifest(root: Path) -> Path:
    rows = []
    for index in range(TOY_CLIPS):
        real = index % 2 == 0
        path = root / "clips" / f"{index:03d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, toy_clip(index, real), SAMPLE_RATE)
        split = TOY_SPLITS[(index // 2) % len(TOY_SPLITS)]
        rows.append(ManifestRow(path, "real" if real else "fake", split, "bonafide" if real else "buzz", "toy", "toy"))
    write_manifest(rows, root / "manifest.csv")
    return root / "manifest.csv"


def check_training(device: str, work: Path) -> dict:
    """A short run on the toy set learns it on `device`, and its checkpoint loads on the CPU."""
    config = TrainConfig(
        manifest=str(write_toy_manifest(work / "toy")),
        out=str(work / "run"),
        device=device,
        epochs=TOY_EPOCHS,
        patience=TOY_EPOCHS,
        cache_dir="",
        evaluate=False,
        members=1,
        vocoded_copies=0,
    )
    started = time.perf_counter()
    metadata = train(config)
    seconds = time.perf_counter() - started
    reloaded = AudioDetector.from_checkpoint(Path(config.out), device="cpu")
    cpu_parameters = all(p.device.type == "cpu" for p in reloaded.model.parameters())
    return {
        "ok": metadata["dev_eer"] <= TOY_DEV_EER_LIMIT and cpu_parameters,
        "dev_eer": metadata["dev_eer"],
        "loads_on_cpu": cpu_parameters,
        "seconds": round(seconds, 1),
    }


def parity_clips() -> list[np.ndarray]:
    return [speech_like(seconds, seed=i) for i, seconds in enumerate(PARITY_CLIP_SECONDS)]


def check_scoring_parity(device: str, checkpoint: Path) -> dict:
    """The shipped model gives the same probabilities on `device` as on the CPU."""
    clips = parity_clips()
    on_cpu = AudioDetector.from_checkpoint(checkpoint, device="cpu").score_waveforms(clips)
    on_device = AudioDetector.from_checkpoint(checkpoint, device=device).score_waveforms(clips)
    gap = max(abs(a.probability_real - b.probability_real) for a, b in zip(on_cpu, on_device, strict=True))
    segment_gap = max(
        abs(a.probability_real - b.probability_real)
        for x, y in zip(on_cpu, on_device, strict=True)
        for a, b in zip(x.segments, y.segments, strict=True)
    )
    return {"ok": max(gap, segment_gap) <= PARITY_TOLERANCE, "max_gap": gap, "max_segment_gap": segment_gap}


def check_handler(device: str, checkpoint: Path) -> dict:
    """The TorchServe handler, given the gpu_id a worker gets, serves from the GPU and matches the CPU."""
    from ts.context import Context, RequestProcessor

    from handler.detector_handler import DetectorHandler

    def answers(gpu_id: int | None) -> tuple[str, list[dict]]:
        manifest = {"model": {"modelName": "detector", "modelVersion": "gpu-check", "handler": "detector_handler.py"}}
        context = Context("detector", str(checkpoint), manifest, len(clips), gpu_id, "gpu-check")
        handler = DetectorHandler()
        handler.initialize(context)
        context.request_processor = [RequestProcessor({}) for _ in clips]
        bodies = handler.handle([{"body": wav_bytes(clip)} for clip in clips], context)
        return handler.device.type, [json.loads(body) for body in bodies]

    clips = parity_clips()
    device_type, on_device = answers(0 if device == "cuda" else None)
    _, on_cpu = answers(None)
    gap = max(abs(a["prediction"] - b["prediction"]) for a, b in zip(on_cpu, on_device, strict=True))
    return {"ok": device_type == device and gap <= PARITY_TOLERANCE, "worker_device": device_type, "max_gap": gap}


def clips_per_second(detector: AudioDetector, clips: list[np.ndarray]) -> float:
    """Median rate over repeats; scores come back to the CPU, so each timing includes the GPU's work."""
    milliseconds = timed(lambda: detector.score_waveforms(clips), repeats=THROUGHPUT_REPEATS).wall_ms  # after a warm-up
    return len(clips) / (milliseconds / 1000)


def measure_throughput(device: str, checkpoint: Path) -> dict:
    """Offline scoring rate, CPU against `device` (decode excluded: the clips are already samples)."""
    clips = [speech_like(THROUGHPUT_CLIP_SECONDS, seed=i) for i in range(THROUGHPUT_CLIPS)]
    rates = {
        name: round(clips_per_second(AudioDetector.from_checkpoint(checkpoint, device=name), clips), 1)
        for name in dict.fromkeys(("cpu", device))
    }
    return {"ok": True, "clip_seconds": THROUGHPUT_CLIP_SECONDS, "clips_per_second": rates}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.gpu_check",
        description="Train, reload and serve on the GPU, and check the GPU scores what the CPU scores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="device to check against the CPU")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_MODEL, help="model for the parity checks")
    parser.add_argument("--report", type=Path, default=Path("gpu_check.json"), help="where to write the JSON report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible to torch; run this on a machine with a GPU")
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    report: dict = {"device": device_name, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        checks: dict[str, Callable[[], dict]] = {
            "training": lambda: check_training(args.device, Path(work)),
            "scoring_parity": lambda: check_scoring_parity(args.device, args.checkpoint),
            "handler": lambda: check_handler(args.device, args.checkpoint),
            "throughput": lambda: measure_throughput(args.device, args.checkpoint),
        }
        for name, check in checks.items():
            try:
                report[name] = check()
            except Exception as error:  # a broken check is a failed check, reported with the others
                report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            print(f"{'ok  ' if report[name]['ok'] else 'FAIL'} {name}: {json.dumps(report[name])}", flush=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report in {args.report}")
    sys.exit(0 if all(value["ok"] for value in report.values() if isinstance(value, dict)) else 1)


if __name__ == "__main__":
    main()

"""The offline half of `make bench`: where the time goes inside one request, what each change bought,
and which CPU forward option is fastest while still agreeing with the trained detector.

Everything runs in this process with the torch threads one TorchServe worker gets, through model/
exactly as the handler calls it. Times are the median wall time of a few repeats and the process CPU
time of the same runs: on a shared machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import copy
import io
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from model.audio import decode_audio, resample
from model.detectors import Detector, inference_copy
from model.features import FRONT_ENDS, normalize_level, pad_batch
from model.inference import MAX_WINDOWS_PER_FORWARD, AudioDetector
from model.signals import speech_like, wav_bytes
from model.timeline import SEGMENT_SECONDS, score_segments, segment_spans

MP3_BITRATE = "64k"
NATIVE_RATE = 44_100  # a typical upload's rate: what the resampler is timed on
FORWARD_WINDOWS = 8  # the batch the forward options are timed on: 8 windows of the detector's length
AGREEMENT = 1e-4  # a forward option must give the eager detector's logits within this to be kept


@dataclass(frozen=True)
class Timing:
    wall_ms: float
    cpu_ms: float

    def as_dict(self) -> dict[str, float]:
        return {"wall_ms": self.wall_ms, "cpu_ms": self.cpu_ms}


def timed(action: Callable[[], Any], repeats: int) -> Timing:
    """Median wall and CPU (all threads of this process) milliseconds of `repeats` runs after one warm-up."""
    action()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(round(1000 * statistics.median(walls), 2), round(1000 * statistics.median(cpus), 2))


def mp3_bytes(samples: np.ndarray) -> bytes:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
               "-b:a", MP3_BITRATE, "-f", "mp3", "pipe:1"]  # fmt: skip
    return subprocess.run(command, input=wav_bytes(samples), capture_output=True, check=True, timeout=300).stdout


def handler_json(detector: AudioDetector, samples: np.ndarray) -> str:
    """The body the handler answers (handler.detector_handler.success_body's shape)."""
    score = detector.score_waveforms([samples])[0]
    segments = [
        {"start_seconds": s.start_seconds, "end_seconds": s.end_seconds, "prediction": s.probability_real}
        for s in score.segments
    ]
    return json.dumps({"prediction": score.probability_real, "label": score.label, "segments": segments})


def stage_profile(detector: AudioDetector, seconds: float, repeats: int) -> dict[str, Any]:
    """Each stage of one request for a clip of `seconds`, and the whole of it."""
    config = detector.extractor.config
    samples = speech_like(seconds)
    native = speech_like(seconds, NATIVE_RATE)
    wav, mp3 = wav_bytes(samples), mp3_bytes(samples)
    levelled = normalize_level(samples, config.target_level_dbfs) if config.target_level_dbfs is not None else samples
    audio = torch.from_numpy(levelled)
    features = detector.extractor(samples)
    hop = config.hop_length
    spans = [
        [
            (a // hop, b // hop)
            for a, b in segment_spans(len(samples), config.window_samples, round(SEGMENT_SECONDS * config.sample_rate))
        ]
    ]
    window_frames = round(config.window_samples / hop)
    body = handler_json(detector, samples)

    def forward() -> None:
        with torch.inference_mode():
            score_segments(detector.scorer, [features], spans, window_frames)

    stages = {
        "decode_wav": lambda: decode_audio(wav),
        "decode_mp3": lambda: decode_audio(mp3),
        f"resample_{NATIVE_RATE // 1000}k": lambda: resample(native, NATIVE_RATE),
        "level_normalisation": lambda: normalize_level(samples, config.target_level_dbfs or 0.0),
        "log_mel": lambda: FRONT_ENDS[config.extractor].compute(audio, config.n_mels),
        "forward": forward,
        "json": lambda: json.dumps(json.loads(body)),
        "end_to_end_wav": lambda: detector.score_audio(wav),
    }
    return {
        "clip_seconds": seconds,
        "segments": len(spans[0]),
        "wav_bytes": len(wav),
        "mp3_bytes": len(mp3),
        "stages": {name: timed(action, repeats).as_dict() for name, action in stages.items()},
    }


def seed_path_logits(detector: AudioDetector, samples: np.ndarray) -> torch.Tensor:
    """The scoring this work replaced, kept here as the yardstick: each window levelled and
    transformed on its own in a Python loop, the eager detector over slices of 64 windows."""
    features = [detector.extractor(window) for window in detector.extractor.split(samples)]
    logits = []
    with torch.inference_mode():
        for start in range(0, len(features), MAX_WINDOWS_PER_FORWARD):
            logits.append(detector.model.logits(*pad_batch(features[start : start + MAX_WINDOWS_PER_FORWARD])))
    return torch.cat(logits)


def steps(detector: AudioDetector, seconds: float, repeats: int) -> list[dict[str, Any]]:
    """What each change bought for one long clip, measured back to back."""
    samples = speech_like(seconds)
    eager = copy.copy(detector)
    eager.scorer = detector.model  # the same one-pass scoring with the trained (unfolded) module
    windows = len(detector.extractor.split(samples))
    rows = [
        ("seed path: per-window features in a Python loop, eager detector, 6 s windows", windows,
         lambda: seed_path_logits(detector, samples)),
        ("+ features once per clip, one chunked trunk pass, 2 s timeline (eager detector)", None,
         lambda: eager.score_waveforms([samples])),
        ("+ inference copy: batch norms folded, channels-last, in-place, no all-ones masks", None,
         lambda: detector.score_waveforms([samples])),
    ]  # fmt: skip
    segments = len(detector.score_waveforms([samples])[0].segments)
    return [
        {"step": name, "segments": count or segments, **timed(action, repeats).as_dict()}
        for name, count, action in rows
    ]


def forward_options(
    detector: Detector, rows: int, window_frames: int, repeats: int, compile_: bool
) -> list[dict[str, Any]]:
    """CPU per window and agreement with the eager detector of each way to run the forward pass
    (rows x window_frames features, FORWARD_WINDOWS of them)."""
    torch.manual_seed(0)
    features = torch.randn(FORWARD_WINDOWS, rows, window_frames)
    lengths = torch.full((FORWARD_WINDOWS,), window_frames)
    with torch.inference_mode():
        reference = detector.logits(features, lengths)
    fast = inference_copy(detector)
    options: dict[str, Callable[[], Callable[[], torch.Tensor] | str]] = {
        "eager (trained module, reference)": lambda: lambda: detector.logits(features, lengths),
        "channels-last only": lambda: channels_last(detector, features, lengths),
        "inference copy (shipped)": lambda: lambda: fast.logits(features, lengths),
        "TorchScript trace + freeze of the inference copy": lambda: torchscript(fast, features, lengths),
        "ONNX Runtime (export of the inference copy)": lambda: onnx_runtime(fast, features, lengths),
        "dynamic int8 quantization (Linear layers) of the inference copy": lambda: quantized(fast, features, lengths),
    }
    if compile_:
        options["torch.compile (inductor) of the inference copy"] = lambda: compiled(fast, features, lengths)
    rows = []
    for name, build in options.items():
        started = time.perf_counter()
        run = build()
        setup_seconds = round(time.perf_counter() - started, 2)
        if isinstance(run, str):
            rows.append({"option": name, "unavailable": run})
            continue
        with torch.inference_mode():
            difference = float((run() - reference).abs().max())
            timing = timed(run, repeats)
        rows.append({
            "option": name,
            "cpu_ms_per_window": round(timing.cpu_ms / FORWARD_WINDOWS, 2),
            "wall_ms_per_window": round(timing.wall_ms / FORWARD_WINDOWS, 2),
            "max_abs_logit_difference": difference,
            "agrees": difference <= AGREEMENT,
            "setup_seconds": setup_seconds,
        })  # fmt: skip
    return rows


def channels_last(detector: Detector, features: torch.Tensor, lengths: torch.Tensor) -> Callable[[], torch.Tensor]:
    model = copy.deepcopy(detector).to(memory_format=torch.channels_last)
    return lambda: model.logits(features, lengths)


class _Logits(torch.nn.Module):
    """`Detector.logits` as `forward`, for the tracers and exporters."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.detector.logits(features, lengths)


def torchscript(detector: Detector, features: torch.Tensor, lengths: torch.Tensor) -> Callable[[], torch.Tensor]:
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(_Logits(detector).eval(), (features, lengths), check_trace=False))
    return lambda: frozen(features, lengths)


def onnx_runtime(detector: Detector, features: torch.Tensor, lengths: torch.Tensor) -> Callable[[], torch.Tensor] | str:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime
    except ImportError as error:
        return f"not installed ({error.name}; pip install the dev extras)"
    buffer = io.BytesIO()
    try:  # e.g. the pitch probe's framing (Tensor.unfold over a padded input) has no ONNX export
        torch.onnx.export(_Logits(detector).eval(), (features, lengths), buffer, dynamo=False,
                          input_names=["features", "lengths"], output_names=["logits"])  # fmt: skip
    except torch.onnx.errors.OnnxExporterError as error:
        return f"export failed ({str(error).splitlines()[0][:120]})"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    inputs = {"features": features.numpy(), "lengths": lengths.numpy()}
    return lambda: torch.from_numpy(session.run(None, inputs)[0])


def quantized(detector: Detector, features: torch.Tensor, lengths: torch.Tensor) -> Callable[[], torch.Tensor] | str:
    try:
        model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(detector), {torch.nn.Linear}, dtype=torch.qint8)
    except (AttributeError, RuntimeError) as error:
        return f"unavailable ({error})"
    return lambda: model.logits(features, lengths)


def compiled(detector: Detector, features: torch.Tensor, lengths: torch.Tensor) -> Callable[[], torch.Tensor]:
    function = torch.compile(detector.logits, dynamic=True)
    with torch.inference_mode():
        function(features, lengths)  # the compilation itself, counted in setup_seconds
    return lambda: function(features, lengths)


def offline(detector: AudioDetector, threads: int, smoke: bool, long_seconds: float, compile_: bool) -> dict[str, Any]:
    """All offline measurements at `threads` torch threads (the bench process's own count is restored)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    repeats = 1 if smoke else 3
    config = detector.extractor.config
    window_frames = round(config.window_samples / config.hop_length)
    try:
        return {
            "torch_threads": threads,
            "parameters": sum(p.numel() for p in detector.model.parameters()),
            "profile": [stage_profile(detector, seconds, repeats) for seconds in (4.0, long_seconds)],
            "steps": steps(detector, long_seconds, repeats),
            "forward_options": forward_options(
                detector.model, config.n_mels, window_frames, 2 if smoke else 5, compile_
            ),
        }
    finally:
        torch.set_num_threads(previous)

"""TorchServe handler: decode each request's audio, score the whole batch with model/, answer JSON.

Everything about decoding, features and scoring lives in model/ (the same code training used);
this module only adapts TorchServe's batch of requests to AudioDetector.score_waveforms and
turns a request that is not usable audio into its own 4xx answer, so one bad upload never
fails the other requests batched with it. TorchServe wants exactly one class per handler module.

Clients send the audio as a multipart field (`data` or `file`) or as the raw request body with a
non-form content type (application/octet-stream, audio/*): TorchServe itself parses an
application/x-www-form-urlencoded body and fails on binary data before the handler sees it.
If the scoring itself fails, TorchServe answers the whole batch 503 "Prediction failed".
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler

from model.audio import (
    DEFAULT_DECODE_TIMEOUT_SECONDS,
    AudioDecodeError,
    AudioTooLongError,
    UnusableAudioError,
    decode_audio,
)
from model.inference import AudioDetector, ClipScore

logger = logging.getLogger(__name__)

# Request fields that may carry the audio, in order of preference: multipart fields `data` and
# `file`, then `body`, the name TorchServe gives a raw (non-form) request body.
AUDIO_FIELDS = ("data", "file", "body")
JSON_CONTENT_TYPE = "application/json"
DEFAULT_SERVING_MAX_AUDIO_SECONDS = 600.0
HANDLER_CONFIG_SECTION = "handler"
# The worker's environment overrides the archive's model-config.yaml, so an operator can change a
# limit by restarting TorchServe (scripts/torchserve.py passes its environment on), not rebuilding.
MAX_AUDIO_SECONDS_ENV = "DETECTOR_MAX_AUDIO_SECONDS"
DECODE_TIMEOUT_ENV = "DETECTOR_DECODE_TIMEOUT_SECONDS"

STATUS_TOO_LARGE = 413
STATUS_UNSUPPORTED = 415
STATUS_UNPROCESSABLE = 422
STATUS_INTERNAL = 500
# model.audio's AudioDecodeError subclasses say what is wrong; anything else undecodable is 415.
STATUS_BY_ERROR = ((AudioTooLongError, STATUS_TOO_LARGE), (UnusableAudioError, STATUS_UNPROCESSABLE))
NO_AUDIO_MESSAGE = "the request has no audio: send the file as the request body or as multipart field 'data' or 'file'"
NOT_BYTES_MESSAGE = "the request's audio was sent as text; send the raw file bytes"
INTERNAL_MESSAGE = "the audio could not be processed because of an internal error"


# Why one request of a batch gets no prediction: (HTTP status, message safe to show). A tuple,
# not a class, because TorchServe refuses a handler module that defines more than one class.
RequestError = tuple[int, str]


class DetectorHandler(BaseHandler):
    """Real-vs-fake speech detector: audio bytes in, P(real) with per-segment scores out."""

    def initialize(self, context: Any) -> None:
        """Rebuild the detector from the archive's checkpoint files and read the serving limits."""
        properties = context.system_properties
        model_config = getattr(context, "model_yaml_config", None) or {}
        settings = model_config.get(HANDLER_CONFIG_SECTION) or {}
        self.max_audio_seconds = serving_limit(
            MAX_AUDIO_SECONDS_ENV, settings.get("max_audio_seconds"), DEFAULT_SERVING_MAX_AUDIO_SECONDS
        )
        self.decode_timeout = serving_limit(
            DECODE_TIMEOUT_ENV, settings.get("decode_timeout_seconds"), DEFAULT_DECODE_TIMEOUT_SECONDS
        )
        threads = torch_threads(settings, model_config)
        torch.set_num_threads(threads)
        self.device = pick_device(properties.get("gpu_id"))
        self.detector = AudioDetector.from_checkpoint(Path(properties["model_dir"]), device=self.device)
        self.model_name = context.model_name
        self.version = str(context.manifest["model"].get("modelVersion", ""))
        self.initialized = True
        logger.info(
            "detector %s version %s ready on %s with %d torch threads, max %g s of audio, %g s to decode",
            self.model_name, self.version, self.device, threads, self.max_audio_seconds, self.decode_timeout,
        )  # fmt: skip

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[str]:
        """Score every decodable request of the batch in one forward pass; answer the rest with 4xx."""
        decoded = [self.decode_request(row) for row in data]
        good = [i for i, item in enumerate(decoded) if isinstance(item, np.ndarray)]
        scores = dict(zip(good, self.detector.score_waveforms([decoded[i] for i in good]), strict=True))
        logger.info("batch of %d requests: %d scored, %d refused", len(data), len(good), len(data) - len(good))
        answers = []
        for index, item in enumerate(decoded):
            context.set_response_content_type(index, JSON_CONTENT_TYPE)
            if isinstance(item, tuple):
                status, message = item
                context.set_response_status(status, message, idx=index)
                answers.append(json.dumps({"error": message}))
            else:
                answers.append(json.dumps(self.success_body(scores[index])))
        return answers

    def decode_request(self, row: dict[str, Any]) -> np.ndarray | RequestError:
        """The request's audio as 16 kHz mono samples, or the reason it cannot be scored."""
        payload = audio_payload(row)
        if isinstance(payload, tuple):
            return payload
        try:
            return decode_audio(payload, max_seconds=self.max_audio_seconds, timeout=self.decode_timeout)
        except AudioDecodeError as error:
            return status_for(error), str(error)
        except Exception:  # one request's surprise must not fail its batch-mates
            logger.exception("unexpected error while decoding a request")
            return STATUS_INTERNAL, INTERNAL_MESSAGE

    def success_body(self, score: ClipScore) -> dict[str, Any]:
        """The JSON the gateway relies on (see README: TorchServe answer)."""
        return {
            "prediction": score.probability_real,
            "label": score.label,
            "threshold": self.detector.threshold,
            "duration_seconds": score.duration_seconds,
            "segments": [
                {"start_seconds": s.start_seconds, "end_seconds": s.end_seconds, "prediction": s.probability_real}
                for s in score.segments
            ],
            "model": self.model_name,
            "version": self.version,
        }


def audio_payload(row: dict[str, Any]) -> bytes | RequestError:
    """Pick the audio bytes out of one TorchServe request (multipart field or raw body)."""
    for field in AUDIO_FIELDS:
        value = row.get(field)
        if value is None:
            continue
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        return STATUS_UNSUPPORTED, NOT_BYTES_MESSAGE
    return STATUS_UNPROCESSABLE, NO_AUDIO_MESSAGE


def status_for(error: AudioDecodeError) -> int:
    """413 for audio over the limit, 422 for empty/short/NaN audio, 415 for anything not decodable."""
    return next((status for kind, status in STATUS_BY_ERROR if isinstance(error, kind)), STATUS_UNSUPPORTED)


def serving_limit(env_name: str, configured: float | str | None, default: float) -> float:
    """A limit in seconds: the environment variable if set, else the archive's value, else the default.

    A value that is not a positive number stops the worker from starting (with this message in its
    log) rather than serving without the limit.
    """
    raw = os.environ.get(env_name) or configured
    value = default if raw is None else float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{env_name} (or the archive's handler setting) must be a positive number, not {raw!r}")
    return value


def torch_threads(settings: dict[str, Any], model_config: dict[str, Any]) -> int:
    """Threads per worker: the configured number, else the CPUs shared out among the workers.

    Every worker is its own process; letting each use all cores oversubscribes the CPU as soon
    as there are two of them, which is slower than splitting the cores.
    """
    if settings.get("torch_threads"):
        return max(1, int(settings["torch_threads"]))
    workers = max(1, int(model_config.get("minWorkers") or 1))
    return max(1, available_cpus() // workers)


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pick_device(gpu_id: int | None) -> torch.device:
    """TorchServe hands a gpu_id only when it assigns a GPU to this worker."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")

"""TorchServe handler: decode each request's audio, score the whole batch with model/, answer JSON.

Everything about decoding, features and scoring lives in model/ (the same code training used);
this module only adapts TorchServe's batch of requests to AudioDetector.score_waveforms and
turns a request that is not usable audio into its own 4xx answer, so one bad upload never
fails the other requests batched with it. TorchServe wants exactly one class per handler module.

Clients send the audio as a multipart field (`data` or `file`) or as the raw request body with a
non-form content type (application/octet-stream, audio/*): TorchServe itself parses an
application/x-www-form-urlencoded body and fails on binary data before the handler sees it.
If the scoring itself fails, TorchServe answers the whole batch 503 "Prediction failed".

Under KServe (scripts/kserve_bundle.py) TorchServe's request envelope unwraps the KServe protocol
before the handler sees it: `service_envelope=kservev2` hands over the request's `inputs` (each
BYTES input's `data` reduced to its first element, the base64 text of one audio file), `kserve`
(v1) the request's `instances` (`{"b64": ...}` or `{"<name>": {"b64": ...}}`). Such a request is
scored as a whole or refused as a whole with one 4xx (PredictionException), since it is one
client request whatever number of clips it carries.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

from model.audio import (
    DEFAULT_DECODE_TIMEOUT_SECONDS,
    AudioDecodeError,
    AudioTooLongError,
    UnusableAudioError,
    decode_audio,
)
from model.inference import AudioDetector, ClipScore
from model.vad import NoSpeechError, check_speech, speech_check_enabled

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
# Torch threads per worker. In a container the CPUs this process may run on are the node's, not its
# CPU limit, so deploy/ sets this to the limit (Kubernetes' downward API, limits.cpu).
TORCH_THREADS_ENV = "DETECTOR_TORCH_THREADS"

STATUS_BAD_REQUEST = 400
STATUS_TOO_LARGE = 413
STATUS_UNSUPPORTED = 415
STATUS_UNPROCESSABLE = 422
STATUS_INTERNAL = 500
# model.audio's AudioDecodeError subclasses say what is wrong; anything else undecodable is 415.
STATUS_BY_ERROR = ((AudioTooLongError, STATUS_TOO_LARGE), (UnusableAudioError, STATUS_UNPROCESSABLE))
NO_AUDIO_MESSAGE = "the request has no audio: send the file as the request body or as multipart field 'data' or 'file'"
NOT_BYTES_MESSAGE = "the request's audio was sent as text; send the raw file bytes"
INTERNAL_MESSAGE = "the audio could not be processed because of an internal error"

# KServe protocols as TorchServe's envelopes hand them over (see the module docstring).
KSERVE_V1 = "v1"
KSERVE_V2 = "v2"
KSERVE_V2_AUDIO_DATATYPE = "BYTES"
KSERVE_B64_FIELD = "b64"
# The kservev2 envelope names output i after context.input_names[i], which it reads after the handler
# returns, so the handler puts its own output names there: P(real) as FP32 and the label as BYTES,
# one element per input clip. (TorchServe 0.12 is the final release: this envelope will not change.)
KSERVE_V2_OUTPUT_NAMES = ("probability_real", "label")


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
        self.check_speech = speech_check_enabled()
        self.model_name = context.model_name
        self.version = str(context.manifest["model"].get("modelVersion", ""))
        self.initialized = True
        logger.info(
            "detector %s version %s ready on %s with %d torch threads, max %g s of audio, %g s to decode, "
            "speech check %s",
            self.model_name, self.version, self.device, threads, self.max_audio_seconds, self.decode_timeout,
            "on" if self.check_speech else "off",
        )  # fmt: skip

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Score every decodable request of the batch in one forward pass; answer the rest with 4xx."""
        protocol = kserve_protocol(data)
        if protocol is not None:
            return self.handle_kserve(data, context, protocol)
        decoded = [self.decode_request(row) for row in data]
        good = [i for i, item in enumerate(decoded) if isinstance(item, np.ndarray)]
        scored = self.detector.score_waveforms([decoded[i] for i in good], self.check_speech)
        scores = dict(zip(good, scored, strict=True))
        logger.info("batch of %d requests: %d scored, %d refused", len(data), len(good), len(data) - len(good))
        answers = []
        for index, item in enumerate(decoded):
            context.set_response_content_type(index, JSON_CONTENT_TYPE)
            refusal = item if isinstance(item, tuple) else self.speech_refusal(scores[index])
            if refusal is not None:
                status, message = refusal
                context.set_response_status(status, message, idx=index)
                answers.append(json.dumps({"error": message}))
            else:
                answers.append(json.dumps(self.success_body(scores[index])))
        return answers

    def handle_kserve(self, rows: list[dict[str, Any]], context: Any, protocol: str) -> list[Any]:
        """Score the clips of one KServe request, in what its envelope formats into the protocol's answer.

        v2: two arrays the kservev2 envelope turns into the outputs `probability_real` (FP32) and
        `label` (BYTES), one element per input; v1: one answer body per instance, `predictions`.
        """
        for index in range(len(context.request_processor)):
            context.set_response_content_type(index, JSON_CONTENT_TYPE)
        waveforms = [self.decode_kserve_input(row, protocol, index) for index, row in enumerate(rows)]
        scores = self.detector.score_waveforms(waveforms, self.check_speech)
        for index, score in enumerate(scores):
            if (refusal := self.speech_refusal(score)) is not None:
                raise PredictionException(f"clip {index}: {refusal[1]}", refusal[0])
        logger.info("KServe %s request: %d clips scored", protocol, len(scores))
        if protocol == KSERVE_V1:
            return [self.success_body(score) for score in scores]
        context.input_names = list(KSERVE_V2_OUTPUT_NAMES)
        return [
            np.array([score.probability_real for score in scores], dtype=np.float32),
            np.array([score.label for score in scores]),
        ]

    def speech_refusal(self, score: ClipScore) -> RequestError | None:
        """422 for a clip in which the VAD found no speech (silence, noise, a tone, music without a
        voice): a score of it would be a confident guess. Such clips are scored with the rest of the
        batch and the score dropped: the VAD runs for the whole batch at once, and a refusal is rare.
        With the check off (DETECTOR_SPEECH_CHECK=0) every decodable clip is scored."""
        if not self.check_speech:
            return None
        try:
            check_speech(score.speech_seconds)
        except NoSpeechError as error:
            return status_for(error), str(error)
        return None

    def decode_kserve_input(self, row: dict[str, Any], protocol: str, index: int) -> np.ndarray:
        """One input's (v2) or instance's (v1) audio as samples; PredictionException with a 4xx if unusable."""
        what = f"input '{row.get('name')}'" if protocol == KSERVE_V2 else f"instance {index}"
        text = kserve_v2_text(row, what) if protocol == KSERVE_V2 else kserve_v1_text(row, what)
        decoded = self.decode_bytes(decode_base64(text, what))
        if isinstance(decoded, tuple):
            status, message = decoded
            raise PredictionException(f"{what}: {message}", status)
        return decoded

    def decode_request(self, row: dict[str, Any]) -> np.ndarray | RequestError:
        """The request's audio as 16 kHz mono samples, or the reason it cannot be scored."""
        payload = audio_payload(row)
        if isinstance(payload, tuple):
            return payload
        return self.decode_bytes(payload)

    def decode_bytes(self, payload: bytes) -> np.ndarray | RequestError:
        """Decode an audio file's bytes within the serving limits, or say why not (never raises)."""
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


def kserve_protocol(rows: list[dict[str, Any]]) -> str | None:
    """KSERVE_V2 or KSERVE_V1 when a KServe envelope unwrapped the request, None for a raw/multipart one.

    Envelopes hand over JSON values (text, objects); raw bodies and multipart fields always arrive as
    bytes (decode_input_request=false), so neither can be taken for the other.
    """
    if any(isinstance(row.get("datatype"), str) for row in rows):
        return KSERVE_V2
    if any(isinstance(kserve_v1_b64(row), str) for row in rows):
        return KSERVE_V1
    return None


def kserve_v1_b64(instance: dict[str, Any]) -> Any:
    """The `b64` value of a v1 instance `{"b64": ...}` or `{"<input name>": {"b64": ...}}`, else None."""
    if KSERVE_B64_FIELD in instance:
        return instance[KSERVE_B64_FIELD]
    nested = [value for value in instance.values() if isinstance(value, dict) and KSERVE_B64_FIELD in value]
    return nested[0][KSERVE_B64_FIELD] if len(nested) == 1 else None


def kserve_v1_text(instance: dict[str, Any], what: str) -> str:
    text = kserve_v1_b64(instance)
    if not isinstance(text, str):
        raise PredictionException(
            f'{what} has no audio: send each clip as {{"b64": "<base64 of the audio file>"}}', STATUS_BAD_REQUEST
        )
    return text


def kserve_v2_text(tensor: dict[str, Any], what: str) -> str:
    """The base64 text of a v2 input: one BYTES element (the kservev2 envelope keeps only the first)."""
    if tensor.get("datatype") != KSERVE_V2_AUDIO_DATATYPE:
        raise PredictionException(
            f"{what} has datatype {tensor.get('datatype')}; send the audio file as a BYTES input holding its "
            "base64 text",
            STATUS_BAD_REQUEST,
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or any(not isinstance(size, int) or size > 1 for size in shape):
        raise PredictionException(f"{what} has shape {shape}; send one clip per input, shape [1]", STATUS_BAD_REQUEST)
    if not isinstance(tensor.get("data"), str):
        raise PredictionException(f"{what} must hold the audio file as base64 text", STATUS_BAD_REQUEST)
    return tensor["data"]


def decode_base64(text: str, what: str) -> bytes:
    """Standard base64 (line breaks allowed, as `base64` wraps them); anything else is a 400."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise PredictionException(f"{what} is not valid base64 ({error})", STATUS_BAD_REQUEST) from None


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
    """Threads per worker: $DETECTOR_TORCH_THREADS, else the archive's number, else the CPUs / workers.

    Every worker is its own process; letting each use all cores oversubscribes the CPU as soon
    as there are two of them, which is slower than splitting the cores.
    """
    configured = int(os.environ.get(TORCH_THREADS_ENV) or settings.get("torch_threads") or 0)
    if configured:
        return max(1, configured)
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

"""Where the speech is in a clip (Silero VAD), so leading and trailing non-speech can be cut.

The length of the silence or room tone around the speech is a known shortcut (TTS pads with
digital silence, recordings with seconds of room noise), and uploads in the wild carry any amount
of it. Cutting the clip to its speech, with a short pad, takes that cue away in training and
serving alike (FeatureConfig.vad_trim decides; model.features applies it).

The model is silero-vad's TorchScript file, shipped inside the wheel (nothing is downloaded),
loaded once per process on first use. It carries recurrent state from one 32 ms chunk to the
next, so a lock keeps whole clips from interleaving when threads share it.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import torch

from model.audio import SAMPLE_RATE, UnusableAudioError

SPEECH_THRESHOLD = 0.5  # silero's default: a 32 ms chunk is speech above this probability
MIN_SPEECH_CHUNK_MS = 250  # silero's default: shorter bursts (clicks, a cough) are not speech
MIN_SILENCE_MS = 100  # silero's default: shorter gaps do not end a stretch of speech
TRIM_PAD_SECONDS = 0.2
"""Kept on each side of the speech: silero's boundaries fall on 32 ms chunks and miss soft onsets and
fading ends; the pad keeps them, yet is too short to carry a silence-length cue."""
MIN_SPEECH_SECONDS = MIN_SPEECH_CHUNK_MS / 1000
"""Less speech than one stretch the VAD counts is no basis for a verdict: serving answers 422 rather
than guess. Half a second, the first choice, refused 29 % of real dev clips (single words and
syllables); with this minimum 2 % of real and 4 % of fake dev clips are refused (docs/results.md)."""
PIECE_SECONDS = 4.0
"""Clips go through the VAD in pieces this long, all pieces of all clips in one batch: a 10 min file
costs about a sixth of one long stream, and on 300 dev clips the speech found differs from one
stream's by 1 ms per clip on average (2 s pieces: 14 ms, as the model's state warms up per piece)."""
FIRST_SCAN_SECONDS = 8.0
"""Serving's check hears the first 8 s of a clip, then the next 16, 32, ... and stops at the first
stretch of speech: a 10 min recording that speaks early costs what an 8 s clip does, and one of
silence a few batched passes."""
CHUNK_SAMPLES = 512  # silero's 32 ms step at 16 kHz
NO_SPEECH_MESSAGE = (
    f"no speech found in the audio (no stretch of speech of {MIN_SPEECH_SECONDS:g} s or more); "
    "upload a recording with someone speaking"
)

SPEECH_CHECK_ENV = "DETECTOR_SPEECH_CHECK"
"""0 turns serving's speech check off (the service then scores silence, noise and music as it
scores speech); anything else, or unset, keeps it on. Read by the handler and the predict CLI."""

_lock = threading.Lock()  # guards the model's loading and its recurrent state
_model: Any = None


class NoSpeechError(UnusableAudioError):
    """Decodable audio with too little speech in it to tell real from fake."""


@dataclass(frozen=True)
class SpeechSpan:
    """Samples start:end of a clip hold its speech (the whole clip when nothing was trimmed)."""

    start: int
    end: int
    speech_seconds: float | None = None  # what the VAD found; None when it did not run


@cache
def silero() -> ModuleType:
    """The silero_vad package, imported once.

    Importing it calls torch.set_num_threads(1) for the whole process: that is undone, or a trainer
    or serving worker would silently drop to one thread.
    """
    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


def speech_probabilities(waveforms: Sequence[np.ndarray]) -> list[list[float]]:
    """Silero's speech probability for each 512-sample (32 ms) chunk of each 16 kHz clip.

    Each clip is cut into PIECE_SECONDS pieces and every piece of every clip is one row of a single
    batch, zero-padded at its end: the model is causal, so the padding changes no earlier chunk.
    """
    global _model
    piece = round(PIECE_SECONDS * SAMPLE_RATE)
    pieces = [w[start : start + piece] for w in waveforms for start in range(0, max(len(w), 1), piece)]
    longest = -(-max(len(p) for p in pieces) // CHUNK_SAMPLES) * CHUNK_SAMPLES
    batch = torch.zeros(len(pieces), max(longest, CHUNK_SAMPLES))
    for row, samples in enumerate(pieces):
        batch[row, : len(samples)] = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    with _lock, torch.inference_mode():
        if _model is None:
            with warnings.catch_warnings(action="ignore", category=FutureWarning):  # torch.jit.load's deprecation
                _model = silero().load_silero_vad(onnx=False)
        rows = _model.audio_forward(batch, SAMPLE_RATE).tolist()
    result, row = [], 0
    for waveform in waveforms:
        count = -(-max(len(waveform), 1) // piece)
        chunks = -(-len(waveform) // CHUNK_SAMPLES)
        result.append([p for r in rows[row : row + count] for p in r[: piece // CHUNK_SAMPLES]][:chunks])
        row += count
    return result


def speech_segments(probabilities: list[float], samples: int) -> list[dict[str, int]]:
    """Stretches of speech (sample `start`/`end`) by silero's rules for its probabilities."""
    return silero().get_speech_timestamps_from_probs(
        probabilities,
        sampling_rate=SAMPLE_RATE,
        threshold=SPEECH_THRESHOLD,
        min_speech_duration_ms=MIN_SPEECH_CHUNK_MS,
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=0,
        audio_length_samples=samples,
    )


def segments_seconds(segments: list[dict[str, int]]) -> float:
    return sum(s["end"] - s["start"] for s in segments) / SAMPLE_RATE


def find_speech(waveform: np.ndarray) -> SpeechSpan:
    """From the first speech onset to the last speech end, TRIM_PAD_SECONDS wider on each side.

    Pauses inside the speech stay. Where the VAD finds no speech at all the whole clip is kept
    (speech_seconds 0): there is nothing to cut to, and the caller decides whether to score it.
    """
    segments = speech_segments(speech_probabilities([waveform])[0], len(waveform))
    if not segments:
        return SpeechSpan(0, len(waveform), 0.0)
    pad = round(TRIM_PAD_SECONDS * SAMPLE_RATE)
    start, end = max(0, segments[0]["start"] - pad), min(len(waveform), segments[-1]["end"] + pad)
    return SpeechSpan(start, end, segments_seconds(segments))


def speech_seconds(waveforms: Sequence[np.ndarray], enough: float | None = None) -> list[float]:
    """Seconds of speech the VAD finds in each clip, all clips in one batch.

    With `enough` (serving's check) each clip is heard in doubling spans from FIRST_SCAN_SECONDS on
    and no further once that much speech is found: the figure is a lower bound, and cheap.
    """
    if enough is None:
        probabilities = speech_probabilities(waveforms)
        return [segments_seconds(speech_segments(p, len(w))) for p, w in zip(probabilities, waveforms, strict=True)]
    scan = round(FIRST_SCAN_SECONDS * SAMPLE_RATE)
    found = [0.0] * len(waveforms)
    pending, start = list(range(len(waveforms))), 0
    while pending:
        parts = [waveforms[i][start : start + scan] for i in pending]
        for i, part, p in zip(pending, parts, speech_probabilities(parts), strict=True):
            found[i] += segments_seconds(speech_segments(p, len(part)))
        start, scan = start + scan, 2 * scan
        pending = [i for i in pending if found[i] < enough and len(waveforms[i]) > start]
    return found


def speech_check_enabled() -> bool:
    return os.environ.get(SPEECH_CHECK_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def check_speech(speech_seconds: float | None) -> None:
    """Raise NoSpeechError when the VAD ran (speech_seconds is not None) and found less than MIN_SPEECH_SECONDS."""
    if speech_seconds is not None and speech_seconds < MIN_SPEECH_SECONDS:
        raise NoSpeechError(NO_SPEECH_MESSAGE)

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

import threading
import warnings
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
MIN_SPEECH_SECONDS = 0.5
"""Less speech than this is no basis for a verdict: serving answers 422 rather than guess."""
NO_SPEECH_MESSAGE = (
    f"no speech found in the audio (less than {MIN_SPEECH_SECONDS:g} s of speech detected); "
    "upload a recording with someone speaking"
)

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


def speech_probabilities(waveform: np.ndarray) -> list[float]:
    """Silero's speech probability for each 512-sample (32 ms) chunk of a 16 kHz clip (the last zero-padded)."""
    global _model
    audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None]
    with _lock, torch.inference_mode():
        if _model is None:
            with warnings.catch_warnings(action="ignore", category=FutureWarning):  # torch.jit.load's deprecation
                _model = silero().load_silero_vad(onnx=False)
        return _model.audio_forward(audio, SAMPLE_RATE)[0].tolist()


def find_speech(waveform: np.ndarray) -> SpeechSpan:
    """From the first speech onset to the last speech end, TRIM_PAD_SECONDS wider on each side.

    Pauses inside the speech stay. Where the VAD finds no speech at all the whole clip is kept
    (speech_seconds 0): there is nothing to cut to, and the caller decides whether to score it.
    """
    probabilities = speech_probabilities(waveform)
    segments = silero().get_speech_timestamps_from_probs(
        probabilities,
        sampling_rate=SAMPLE_RATE,
        threshold=SPEECH_THRESHOLD,
        min_speech_duration_ms=MIN_SPEECH_CHUNK_MS,
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=0,
        audio_length_samples=len(waveform),
    )
    if not segments:
        return SpeechSpan(0, len(waveform), 0.0)
    pad = round(TRIM_PAD_SECONDS * SAMPLE_RATE)
    speech = sum(s["end"] - s["start"] for s in segments) / SAMPLE_RATE
    return SpeechSpan(max(0, segments[0]["start"] - pad), min(len(waveform), segments[-1]["end"] + pad), speech)


def check_speech(speech_seconds: float | None) -> None:
    """Raise NoSpeechError when the VAD ran (speech_seconds is not None) and found less than MIN_SPEECH_SECONDS."""
    if speech_seconds is not None and speech_seconds < MIN_SPEECH_SECONDS:
        raise NoSpeechError(NO_SPEECH_MESSAGE)

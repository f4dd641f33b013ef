"""Deterministic test signals: for archive smoke tests, benchmarks and tests.

`speech_like` is not speech; it only needs broadband, voiced, syllable-paced energy so that every
stage (decoding, windows, features, the detector) runs on realistic spectra, the same samples for
the same seed. Silero VAD does not take it for speech, so where serving's speech check must pass
(the benchmark, the check's own tests) `spoken` has espeak-ng read real sentences.
"""

from __future__ import annotations

import io
import subprocess

import numpy as np
import soundfile as sf

from model.audio import SAMPLE_RATE, resample

HARMONICS = 11
PEAK = 0.8
SENTENCES = (
    "Seven apples fell from the old tree by the river.",
    "The morning train was late again, so we walked to the station.",
    "Please call me back when you have read the letter.",
)
ESPEAK_TIMEOUT_SECONDS = 60


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-paced harmonic signal with a wandering pitch, plus a little noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    pitch = 110 + 40 * rng.random() + 25 * np.sin(2 * np.pi * (0.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    harmonics = sum(np.sin(k * phase) * np.exp(-0.35 * k) for k in range(1, HARMONICS + 1))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * (3.5 + rng.random()) * t)) ** 2
    signal = 0.25 * harmonics * syllables + 0.02 * rng.standard_normal(t.shape)
    return (PEAK * signal / np.abs(signal).max()).astype(np.float32)


def spoken(seconds: float | None = None, text: str = " ".join(SENTENCES)) -> np.ndarray:
    """espeak-ng reading `text` at 16 kHz (float32); with `seconds`, repeated or cut to that length."""
    command = ["espeak-ng", "--stdout", text]
    wav = subprocess.run(command, check=True, capture_output=True, timeout=ESPEAK_TIMEOUT_SECONDS).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    speech = resample(samples, rate)
    if seconds is None:
        return speech
    length = round(seconds * SAMPLE_RATE)
    return np.resize(speech, length).astype(np.float32)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype=subtype)
    return buffer.getvalue()

"""The built-in test signal behind `GET /predict`: a short synthetic WAV, generated once per process.

A harmonic tone whose pitch sweeps like a voice, so the served model sees speech-like spectra
without the gateway shipping an audio file.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import soundfile as sf

FILENAME = "test-signal.wav"
SAMPLE_RATE = 16_000
DURATION_SECONDS = 3.0
PITCH_START_HZ, PITCH_END_HZ = 110.0, 220.0
HARMONICS = 6
PEAK = 0.5
FADE_SECONDS = 0.05


@cache
def builtin_signal_wav() -> bytes:
    """16 kHz mono 16-bit PCM WAV bytes of a pitch sweep with decaying harmonics."""
    time = np.arange(int(SAMPLE_RATE * DURATION_SECONDS)) / SAMPLE_RATE
    pitch = np.linspace(PITCH_START_HZ, PITCH_END_HZ, time.size)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    wave = sum(np.sin(harmonic * phase) / harmonic for harmonic in range(1, HARMONICS + 1))
    fade = np.clip(np.minimum(time, time[-1] - time) / FADE_SECONDS, 0.0, 1.0)
    wave = PEAK * fade * wave / np.max(np.abs(wave))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()

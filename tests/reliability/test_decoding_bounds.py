"""What one upload may cost the decoder: memory, resampling work, disk and time are bounded.

A small file must not make a worker allocate gigabytes (coprime sample rates, many channels of
compressible silence) or decode for ever: these pin the bounds in model/audio.py.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import psutil
import pytest

from model.audio import (
    MAX_RESAMPLE_KERNEL,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    RATE_SNAP_HZ,
    SAMPLE_RATE,
    AudioTooLongError,
    UnsupportedAudioError,
    decode_audio,
    resampling_rate,
)
from tests.audio_fixtures import encode, speech_like, speech_wav, wav_bytes
from tests.reliability.corpus import MANY_CHANNELS, STUDIO_RATE, silent_surround_flac

COMMON_RATES = (8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000)
SURROUND_SECONDS = 10.0
FLOAT_BYTES = 4
HIGH_RATE = 96_000
CAPPED_SECONDS = 1.0
CAPPED_CLIP_SECONDS = 1.5
TINY_TIMEOUT_SECONDS = 0.001


def kernel_taps(rate: int, target: int = SAMPLE_RATE) -> int:
    """The size of torchaudio's sinc kernel for rate -> target: (rate / g) x (target / g)."""
    divisor = np.gcd(rate, target)
    return (rate // divisor) * (target // divisor)


def test_every_supported_rate_resamples_with_a_small_kernel_close_to_its_own_rate() -> None:
    rates = np.arange(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE + 1)

    used = np.array([resampling_rate(int(rate), SAMPLE_RATE) for rate in rates])

    assert max(kernel_taps(int(rate)) for rate in np.unique(used)) <= MAX_RESAMPLE_KERNEL
    assert np.abs(used - rates).max() <= RATE_SNAP_HZ / 2
    assert [resampling_rate(rate, SAMPLE_RATE) for rate in COMMON_RATES] == list(COMMON_RATES)


def test_odd_rate_decodes_to_the_length_of_its_duration() -> None:
    decoded = decode_audio(wav_bytes(speech_like(1.0, 44_101), 44_101))

    assert len(decoded) == pytest.approx(SAMPLE_RATE, rel=RATE_SNAP_HZ / MIN_SAMPLE_RATE)


def test_many_channels_cost_the_memory_of_one() -> None:
    """numpy reports its buffers to tracemalloc: decoding may not hold all 8 channels at once."""
    audio = silent_surround_flac(SURROUND_SECONDS)
    mono_bytes = SURROUND_SECONDS * STUDIO_RATE * FLOAT_BYTES

    tracemalloc.start()
    try:
        decoded = decode_audio(audio)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert len(decoded) == SURROUND_SECONDS * SAMPLE_RATE
    assert peak < 2 * mono_bytes < MANY_CHANNELS * mono_bytes


def test_ffmpeg_output_is_capped_in_bytes() -> None:
    """An 8-channel 96 kHz M4A decodes to more float bytes per second than the cap allows."""
    surround = np.stack([speech_like(CAPPED_CLIP_SECONDS, HIGH_RATE)] * MANY_CHANNELS, axis=1)
    audio = encode(wav_bytes(surround, HIGH_RATE), "m4a")

    with pytest.raises(AudioTooLongError, match="decodes to more than"):
        decode_audio(audio, max_seconds=CAPPED_SECONDS)


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1])
def test_rates_outside_the_supported_range_are_refused(rate: int) -> None:
    with pytest.raises(UnsupportedAudioError, match=f"sample rate of {rate} Hz"):
        decode_audio(wav_bytes(speech_like(0.5, rate), rate))


def test_slow_decode_is_cut_and_leaves_no_process_behind() -> None:
    audio = encode(speech_wav(3.0), "m4a")  # M4A goes through ffmpeg

    with pytest.raises(UnsupportedAudioError, match=f"decoding took longer than {TINY_TIMEOUT_SECONDS:g} s"):
        decode_audio(audio, timeout=TINY_TIMEOUT_SECONDS)
    assert [child for child in psutil.Process().children(recursive=True) if child.name() == "ffmpeg"] == []

"""Every input format, channel layout and rate decodes to the same 16 kHz mono signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import MIN_AUDIO_SECONDS, SAMPLE_RATE, AudioDecodeError, decode_audio, resample
from tests.model.conftest import encode, voiced

SECONDS = 1.5
RATES = (8_000, 16_000, 22_050, 44_100, 48_000)
WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def reference(rate: int, channels: int = 1) -> np.ndarray:
    """What a perfect decoder returns: the float source, downmixed and resampled the same way."""
    return resample(voiced(SECONDS, rate, channels).mean(axis=1), rate)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("subtype", WAV_SUBTYPES)
def test_wav_bit_depths_decode_to_the_source(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, voiced(SECONDS, 16_000), 16_000, subtype=subtype)
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    tolerance = {"PCM_U8": 1e-2, "PCM_16": 1e-4}.get(subtype, 1e-6)
    np.testing.assert_allclose(audio, reference(16_000), atol=tolerance)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_any_rate_and_channel_count_becomes_16k_mono(tmp_path: Path, rate: int, channels: int) -> None:
    path = encode(voiced(SECONDS, rate, channels), rate, tmp_path / "clip.flac")
    audio = decode_audio(path)
    assert len(audio) == pytest.approx(SECONDS * SAMPLE_RATE, abs=2)
    np.testing.assert_allclose(audio, reference(rate, channels), atol=1e-4)


@pytest.mark.parametrize("suffix", ["ogg", "opus", "mp3", "m4a"])
def test_lossy_formats_decode_close_to_the_source(tmp_path: Path, suffix: str) -> None:
    path = encode(voiced(SECONDS, 44_100, 2), 44_100, tmp_path / f"clip.{suffix}")
    audio = decode_audio(path)
    assert abs(len(audio) - SECONDS * SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codecs add priming samples
    assert _aligned_correlation(audio, reference(44_100, 2)) > 0.9


def _aligned_correlation(audio: np.ndarray, ref: np.ndarray) -> float:
    """Best correlation over small shifts (encoder delay)."""
    return max(correlation(audio[shift:], ref) for shift in range(0, 2000, 8))


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_path_and_bytes_decode_identically(tmp_path: Path, suffix: str) -> None:
    path = encode(voiced(SECONDS, 22_050, 2), 22_050, tmp_path / f"clip.{suffix}")
    np.testing.assert_array_equal(decode_audio(path), decode_audio(path.read_bytes()))


def test_eight_bit_mu_law_wav(tmp_path: Path) -> None:
    path = tmp_path / "ulaw.wav"
    sf.write(path, voiced(SECONDS, 8_000), 8_000, subtype="ULAW")
    assert correlation(decode_audio(path), reference(8_000)) > 0.99


BAD_INPUTS = {
    "empty": b"",
    "text": b"this is not audio, it is a shopping list\n" * 20,
    "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_undecodable_bytes_raise_one_clear_error(name: str) -> None:
    with pytest.raises(AudioDecodeError) as error:
        decode_audio(BAD_INPUTS[name])
    assert "Traceback" not in str(error.value) and "/" not in str(error.value)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 16_000)
    with pytest.raises(AudioDecodeError, match="no audio samples"):
        decode_audio(path)


def test_too_short_audio(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, voiced(MIN_AUDIO_SECONDS / 2, 16_000), 16_000)
    with pytest.raises(AudioDecodeError, match="at least"):
        decode_audio(path)


def test_non_finite_samples(tmp_path: Path) -> None:
    samples = voiced(SECONDS, 16_000)
    samples[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        decode_audio(path)


@pytest.mark.parametrize("suffix", ["wav", "m4a"])
def test_audio_over_the_duration_limit(tmp_path: Path, suffix: str) -> None:
    path = encode(voiced(3.0, 16_000), 16_000, tmp_path / f"long.{suffix}")
    with pytest.raises(AudioDecodeError, match="limit of 2 s"):
        decode_audio(path, max_seconds=2.0)
    assert len(decode_audio(path, max_seconds=4.0)) == pytest.approx(3.0 * SAMPLE_RATE, abs=0.1 * SAMPLE_RATE)


def test_truncated_file_is_reported_not_crashed(tmp_path: Path) -> None:
    path = encode(voiced(SECONDS, 16_000), 16_000, tmp_path / "clip.mp3")
    with pytest.raises(AudioDecodeError):
        decode_audio(path.read_bytes()[:40])


def test_missing_path() -> None:
    with pytest.raises(AudioDecodeError, match="no such audio file"):
        decode_audio("/nonexistent/clip.wav")


def test_error_kinds_say_what_is_wrong(tmp_path: Path) -> None:
    from model.audio import AudioTooLongError, UnsupportedAudioError, UnusableAudioError

    with pytest.raises(UnsupportedAudioError):
        decode_audio(BAD_INPUTS["text"])
    with pytest.raises(UnusableAudioError):
        decode_audio(b"")
    path = tmp_path / "long.wav"
    sf.write(path, voiced(3.0, 16_000), 16_000)
    with pytest.raises(AudioTooLongError):
        decode_audio(path, max_seconds=1.0)

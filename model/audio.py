"""Decode any common audio input to 16 kHz mono float32.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis, Opus and MP3 in-process; anything it
rejects (M4A/AAC, odd containers) goes through ffmpeg, run without a shell and with a
timeout. Both paths hand native-rate PCM to the same downmix and the same torchaudio
resampler, so a clip decodes to the same samples whichever path read it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

SAMPLE_RATE = 16_000
MIN_AUDIO_SECONDS = 0.1
DEFAULT_MAX_AUDIO_SECONDS = 3600.0
DEFAULT_DECODE_TIMEOUT_SECONDS = 60.0

AudioSource = str | os.PathLike | bytes


class AudioDecodeError(ValueError):
    """The input is not usable audio; the message is safe to show to the person who sent it."""


class UnsupportedAudioError(AudioDecodeError):
    """Not audio at all, a format no decoder knows, corrupt, or too slow to decode."""


class UnusableAudioError(AudioDecodeError):
    """Decodable, but nothing to score: empty, too short, or non-finite samples."""


class AudioTooLongError(AudioDecodeError):
    """Longer than the caller's duration limit."""


def decode_audio(
    source: AudioSource,
    *,
    max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    timeout: float = DEFAULT_DECODE_TIMEOUT_SECONDS,
) -> np.ndarray:
    """Return the audio as a 1-D float32 array at SAMPLE_RATE, or raise AudioDecodeError."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise UnusableAudioError("the file is empty")
    elif not Path(source).is_file():
        raise UnsupportedAudioError("no such audio file")
    try:
        samples, rate = _read_with_soundfile(source, max_seconds)
    except _NotForSoundfile:
        samples, rate = _read_with_ffmpeg(source, max_seconds, timeout)
    return _to_model_input(samples, rate, max_seconds)


class _NotForSoundfile(Exception):
    """libsndfile cannot parse this container; ffmpeg gets a try."""


def _read_with_soundfile(source: AudioSource, max_seconds: float) -> tuple[np.ndarray, int]:
    handle = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with sf.SoundFile(handle) as f:
            rate = f.samplerate
            if f.frames > 0 and f.frames / rate > max_seconds:
                raise AudioTooLongError(_too_long_message(f.frames / rate, max_seconds))
            samples = f.read(frames=int(max_seconds * rate) + 1, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise _NotForSoundfile from error
    return samples, rate


def _read_with_ffmpeg(source: AudioSource, max_seconds: float, timeout: float) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed; it is needed for formats libsndfile cannot read")
    with tempfile.TemporaryDirectory(prefix="decode-") as tmp:
        if isinstance(source, bytes | bytearray | memoryview):
            # Containers such as M4A keep their index at the end, so ffmpeg needs a seekable file.
            input_path = Path(tmp) / "input"
            input_path.write_bytes(bytes(source))
        else:
            input_path = Path(source)
        output_path = Path(tmp) / "decoded.wav"
        command = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-i", str(input_path), "-vn", "-map", "0:a:0",
            "-t", f"{max_seconds + 1:.3f}", "-c:a", "pcm_f32le", "-f", "wav", str(output_path),
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise UnsupportedAudioError(f"decoding took longer than {timeout:g} s") from error
        if result.returncode != 0 or not output_path.exists():
            raise UnsupportedAudioError("the file is not a supported audio format or is corrupt")
        samples, rate = sf.read(output_path, dtype="float32", always_2d=True)
    return samples, rate


def _to_model_input(samples: np.ndarray, rate: int, max_seconds: float) -> np.ndarray:
    if samples.size == 0:
        raise UnusableAudioError("the file contains no audio samples")
    duration = samples.shape[0] / rate
    if duration > max_seconds:
        raise AudioTooLongError(_too_long_message(duration, max_seconds))
    if duration < MIN_AUDIO_SECONDS:
        raise UnusableAudioError(
            f"the audio is {duration * 1000:.0f} ms long; at least {MIN_AUDIO_SECONDS * 1000:.0f} ms is needed"
        )
    if not np.isfinite(samples).all():
        raise UnusableAudioError("the audio contains NaN or infinite sample values")
    mono = samples.mean(axis=1, dtype=np.float32)
    return resample(mono, rate)


def resample(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited sinc resampling (torchaudio), the one resampler used everywhere."""
    if rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return taf.resample(tensor, rate, target_rate).numpy()


def _too_long_message(duration: float, max_seconds: float) -> str:
    return f"the audio lasts {duration:.1f} s, more than the limit of {max_seconds:g} s"

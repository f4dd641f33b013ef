"""Decode any common audio input to 16 kHz mono float32.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis, Opus and MP3 in-process; anything it
rejects (M4A/AAC, odd containers) goes through ffmpeg, run without a shell and with a
timeout. Both paths hand native-rate PCM to the same downmix and the same torchaudio
resampler, so a clip decodes to the same samples whichever path read it.

Decoding untrusted uploads must cost memory in proportion to the audio the model will see,
not to what a small file can expand to: channels are averaged block by block as they are read,
sample rates outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE are refused, and ffmpeg's temporary
output is capped in bytes.

libsndfile's MP3 decoder (libmpg123) prints notes and warnings straight to the process's C stderr
for every damaged file ("Illegal Audio-MPEG-Header ...", "Trying to resync..."), so an uploader
could fill a server's logs; that stderr is silenced while libsndfile decodes unless
DECODER_DEBUG_ENV is 1. ffmpeg's messages are captured, never printed.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

SAMPLE_RATE = 16_000
MIN_AUDIO_SECONDS = 0.1
DEFAULT_MAX_AUDIO_SECONDS = 3600.0
DEFAULT_DECODE_TIMEOUT_SECONDS = 60.0
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000
READ_BLOCK_FRAMES = 65_536
MAX_RESAMPLE_KERNEL = 1_000_000
"""torchaudio's sinc resampler builds a kernel of about (rate / g) x (target / g) taps, g = gcd(rate,
target): 441 x 160 for 44.1 kHz -> 16 kHz, but 44101 x 16000 (gigabytes, minutes) for 44101 Hz."""
RATE_SNAP_HZ = 100
"""Rates whose kernel would exceed MAX_RESAMPLE_KERNEL are taken as the nearest multiple of this:
at most 50 Hz off, i.e. under 1.25 % at MIN_SAMPLE_RATE and under 0.2 % at CD rates."""
DECODED_BYTES_PER_SECOND = 48_000 * 8 * 4
"""ffmpeg's float32 output may hold at most this per second of the duration limit: 7.1 surround at
48 kHz. A small compressed file of many-channel high-rate silence would otherwise fill the disk."""

DECODER_DEBUG_ENV = "DETECTOR_DECODER_DEBUG"
"""Set to 1 to let libsndfile's decoders write their notes to stderr (debugging a file that fails)."""
STDERR_FD = 2

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
        mono, rate = _read_with_soundfile(source, max_seconds)
    except _NotForSoundfile:
        mono, rate = _read_with_ffmpeg(source, max_seconds, timeout)
    return _to_model_input(mono, rate)


class _NotForSoundfile(Exception):
    """libsndfile cannot parse this container; ffmpeg gets a try."""


def _read_with_soundfile(source: AudioSource, max_seconds: float) -> tuple[np.ndarray, int]:
    handle = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with _quiet_decoder(), sf.SoundFile(handle) as f:
            return _read_mono(f, max_seconds), f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise _NotForSoundfile from error


class _StderrSilencer:
    """Points file descriptor 2 at /dev/null while at least one thread is inside `silenced()`.

    A descriptor is process-wide, so the redirection is counted: threads decoding at once share
    one, and the last one out restores the real stderr (saving and restoring per thread would
    leave stderr pointing at /dev/null when they interleave). Anything else written to stderr in
    those milliseconds is lost too; a decode takes 0.1-7 ms.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    @contextmanager
    def silenced(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                sys.stderr.flush()  # what Python wrote before still reaches the real stderr
                self._saved = os.dup(STDERR_FD)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, STDERR_FD)
                os.close(devnull)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    os.dup2(self._saved, STDERR_FD)
                    os.close(self._saved)
                    self._saved = None


_STDERR = _StderrSilencer()


@contextmanager
def _quiet_decoder() -> Iterator[None]:
    """Silence in-process decoders' stderr, unless DECODER_DEBUG_ENV asks to see it."""
    if os.environ.get(DECODER_DEBUG_ENV) == "1":
        yield
        return
    with _STDERR.silenced():
        yield


def _read_mono(f: sf.SoundFile, max_seconds: float) -> np.ndarray:
    """At most max_seconds of the file, its channels averaged block by block.

    Only one block of all channels is in memory at a time, so an 8-channel file costs what its mono
    signal costs: at most max_seconds x MAX_SAMPLE_RATE x 4 bytes (460 MB for 600 s at 192 kHz).
    """
    rate = f.samplerate
    check_sample_rate(rate)
    if f.frames > 0 and f.frames / rate > max_seconds:
        raise AudioTooLongError(_too_long_message(max_seconds, f.frames / rate))
    limit = int(max_seconds * rate)
    capacity = limit + 1 if f.frames <= 0 else min(f.frames, limit + 1)
    mono = np.empty(capacity, dtype=np.float32)
    filled = 0
    # Not f.blocks(): it trusts the header's frame count and pads a truncated file with garbage.
    while filled < capacity:
        block = f.read(min(READ_BLOCK_FRAMES, capacity - filled), dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        block.mean(axis=1, dtype=np.float32, out=mono[filled : filled + len(block)])
        filled += len(block)
    if filled > limit:  # the header did not tell the length, and there is more than the limit
        raise AudioTooLongError(_too_long_message(max_seconds))
    return mono[:filled]


def check_sample_rate(rate: int) -> None:
    """Refuse rates no recording uses: they only make resampling slow or huge."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudioError(
            f"the sample rate of {rate} Hz is not supported ({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
        )


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
        max_bytes = int((max_seconds + 1) * DECODED_BYTES_PER_SECOND)
        command = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-i", str(input_path), "-vn", "-map", "0:a:0",
            "-t", f"{max_seconds + 1:.3f}", "-c:a", "pcm_f32le", "-f", "wav", "-fs", str(max_bytes), str(output_path),
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise UnsupportedAudioError(f"decoding took longer than {timeout:g} s") from error
        if result.returncode != 0 or not output_path.exists():
            raise UnsupportedAudioError("the file is not a supported audio format or is corrupt")
        if output_path.stat().st_size >= max_bytes:  # ffmpeg stopped writing at -fs: the rest is missing
            raise AudioTooLongError(
                f"the audio decodes to more than {max_bytes / 1e6:.0f} MB of samples (too many channels "
                f"or too high a rate for the limit of {max_seconds:g} s)"
            )
        with sf.SoundFile(output_path) as f:
            try:
                return _read_mono(f, max_seconds), f.samplerate
            except AudioTooLongError as error:  # -t stopped ffmpeg at max_seconds + 1: the true length is unknown
                raise AudioTooLongError(_too_long_message(max_seconds)) from error


def _to_model_input(mono: np.ndarray, rate: int) -> np.ndarray:
    if mono.size == 0:
        raise UnusableAudioError("the file contains no audio samples")
    duration = mono.size / rate
    if duration < MIN_AUDIO_SECONDS:
        raise UnusableAudioError(
            f"the audio is {duration * 1000:.0f} ms long; at least {MIN_AUDIO_SECONDS * 1000:.0f} ms is needed"
        )
    if not np.isfinite(mono).all():  # a NaN or infinite sample makes its frame's channel mean non-finite
        raise UnusableAudioError("the audio contains NaN or infinite sample values")
    return resample(mono, rate)


def resample(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited sinc resampling (torchaudio), the one resampler used everywhere."""
    rate = resampling_rate(rate, target_rate)
    if rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return taf.resample(tensor, rate, target_rate).numpy()


def resampling_rate(rate: int, target_rate: int) -> int:
    """The rate to resample from: `rate` itself, or its nearest multiple of RATE_SNAP_HZ when the exact
    kernel would be larger than MAX_RESAMPLE_KERNEL (see there)."""
    divisor = math.gcd(rate, target_rate)
    if (rate // divisor) * (target_rate // divisor) <= MAX_RESAMPLE_KERNEL:
        return rate
    return round(rate / RATE_SNAP_HZ) * RATE_SNAP_HZ


def _too_long_message(max_seconds: float, duration: float | None = None) -> str:
    if duration is None:
        return f"the audio lasts longer than the limit of {max_seconds:g} s"
    return f"the audio lasts {duration:.1f} s, more than the limit of {max_seconds:g} s"

"""Synthetic audio for tests: speech-like signals of any length, as arrays, WAV bytes or other codecs.

Nothing here is real speech; the signals only need to exercise decoding, windowing and scoring
deterministically (same seed, same samples).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from model.signals import SAMPLE_RATE, speech_like, wav_bytes

__all__ = ["SAMPLE_RATE", "speech_like", "wav_bytes"]
FFMPEG_TIMEOUT_SECONDS = 60
# ffmpeg output options per target format (codec and container).
FFMPEG_FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "3", "-f", "ogg"],
    "m4a": ["-c:a", "aac", "-b:a", "64k", "-f", "ipod"],
}


def speech_wav(seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> bytes:
    """WAV bytes of `speech_like` (16-bit PCM)."""
    return wav_bytes(speech_like(seconds, sample_rate, seed), sample_rate)


def write_wav(path: Path, seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> Path:
    Path(path).write_bytes(speech_wav(seconds, sample_rate, seed))
    return Path(path)


def encode(audio: bytes, target: str) -> bytes:
    """Re-encode audio bytes (any format ffmpeg reads) to mp3, flac, ogg (Vorbis) or m4a with ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to encode test audio")
    with tempfile.TemporaryDirectory(prefix="encode-") as tmp:
        source, output = Path(tmp) / "input", Path(tmp) / f"output.{target}"
        source.write_bytes(audio)
        command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                   *FFMPEG_FORMATS[target], str(output)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS)
        return output.read_bytes()


def corrupt_audio() -> bytes:
    """A WAV header followed by garbage: looks like audio to a sniffing client, decodes to nothing."""
    return b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4


def nan_wav(seconds: float = 1.0) -> bytes:
    """A float WAV whose samples include NaN (the decoder must refuse it)."""
    samples = speech_like(seconds)
    samples[100:200] = np.nan
    return wav_bytes(samples, subtype="FLOAT")

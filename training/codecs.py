"""Re-encode clips with ffmpeg (no shell, with a timeout) for codec-robustness evaluation."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

MP3_BITRATE = "64k"
TELEPHONE_RATE = 8_000
TELEPHONE_CODEC = "pcm_mulaw"  # G.711 mu-law, the North American / Japanese telephone channel
POOR_RATE = 11_025
POOR_BITRATE = "16k"
"""The poor channel an own recording often comes through (a cheap app, a voice message): the independent
evaluation's test of real speech is labelled real through it."""
ENCODE_TIMEOUT_SECONDS = 60


def reencode_mp3(source: Path, cache_dir: Path, bitrate: str = MP3_BITRATE) -> Path:
    """The clip as MP3 at `bitrate`, cached by source path and bitrate."""
    return _reencode(source, cache_dir, bitrate, ".mp3", ["-codec:a", "libmp3lame", "-b:a", bitrate])


def reencode_telephone(source: Path, cache_dir: Path) -> Path:
    """The clip through a telephone channel: 8 kHz mono G.711 mu-law WAV, cached by source path."""
    options = ["-ar", str(TELEPHONE_RATE), "-ac", "1", "-c:a", TELEPHONE_CODEC]
    return _reencode(source, cache_dir, f"telephone-{TELEPHONE_RATE}-{TELEPHONE_CODEC}", ".wav", options)


def reencode_poor(source: Path, cache_dir: Path) -> Path:
    """The clip as 11 kHz mono MP3 at 16 kbit/s, cached by source path."""
    options = ["-ar", str(POOR_RATE), "-ac", "1", "-codec:a", "libmp3lame", "-b:a", POOR_BITRATE]
    return _reencode(source, cache_dir, f"poor-{POOR_RATE}-{POOR_BITRATE}", ".mp3", options)


def _reencode(source: Path, cache_dir: Path, setting: str, suffix: str, options: list[str]) -> Path:
    """ffmpeg's `options` applied to `source`, written once under a key of its path, mtime and `setting`."""
    source = Path(source)
    key = hashlib.sha1(f"{source.resolve()}|{source.stat().st_mtime_ns}|{setting}".encode()).hexdigest()
    target = Path(cache_dir) / f"{key}{suffix}"
    if target.is_file():
        return target
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to re-encode clips; run `make setup`")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial{suffix}")
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *options,
               str(partial)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=ENCODE_TIMEOUT_SECONDS)
    partial.replace(target)
    return target

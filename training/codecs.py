"""Re-encode clips with ffmpeg (no shell, with a timeout) for codec-robustness evaluation."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

MP3_BITRATE = "64k"
ENCODE_TIMEOUT_SECONDS = 60


def reencode_mp3(source: Path, cache_dir: Path, bitrate: str = MP3_BITRATE) -> Path:
    """The clip as MP3 at `bitrate`, cached by source path and bitrate."""
    source = Path(source)
    key = hashlib.sha1(f"{source.resolve()}|{source.stat().st_mtime_ns}|{bitrate}".encode()).hexdigest()
    target = Path(cache_dir) / f"{key}.mp3"
    if target.is_file():
        return target
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to re-encode clips to MP3; run `make setup`")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.mp3")
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
               "-codec:a", "libmp3lame", "-b:a", bitrate, str(partial)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=ENCODE_TIMEOUT_SECONDS)
    partial.replace(target)
    return target

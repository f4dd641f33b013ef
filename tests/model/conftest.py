"""Audio written by the tests themselves: a voiced, speech-like signal in any container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.detectors import REQUIRED_FRONT_ENDS
from model.features import EXTRACTOR_NAME, FeatureConfig
from model.signals import speech_like

FFMPEG_CODECS = {"mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], "m4a": ["-c:a", "aac", "-b:a", "128k"],
                 "opus": ["-c:a", "libopus", "-b:a", "64k"], "ogg": ["-c:a", "libvorbis", "-q:a", "5"]}  # fmt: skip


def perturb_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Move every BatchNorm far from the identity and switch to eval, so a padding leak, a wrong fold
    or a chunk seam changes the output instead of hiding behind fresh statistics."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1, 1)
    return model.eval()


def feature_rows(architecture: str) -> int:
    """The height of the features an architecture reads (the whisper_pitch_probe also reads the samples)."""
    return FeatureConfig.for_front_end(REQUIRED_FRONT_ENDS.get(architecture, EXTRACTOR_NAME)).n_mels


def voiced(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(samples, channels) of model.signals.speech_like, each channel a little quieter."""
    signal = speech_like(seconds, rate, seed)
    return np.stack([signal * np.float32(1 - 0.1 * c) for c in range(channels)], axis=1)


def encode(samples: np.ndarray, rate: int, path: Path) -> Path:
    """Write `samples` to `path`; the suffix picks the codec (ffmpeg for the lossy ones)."""
    suffix = path.suffix.lstrip(".")
    if suffix not in FFMPEG_CODECS:
        sf.write(path, samples, rate)
        return path
    source = path.with_suffix(".source.wav")
    sf.write(source, samples, rate, subtype="FLOAT")
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *FFMPEG_CODECS[suffix], str(path)]
    subprocess.run(command, check=True, timeout=60)
    return path


@pytest.fixture
def voiced_wav(tmp_path: Path) -> Path:
    return encode(voiced(1.5, 16_000), 16_000, tmp_path / "voiced.wav")

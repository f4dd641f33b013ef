"""Whisper log-mel features and the config that pins them to a trained model.

A FeatureConfig is saved beside every checkpoint. Serving rebuilds the extractor from it,
and `check_compatible` refuses a checkpoint whose features this code would compute
differently (other parameters, or a changed extractor: a reference signal's features are
stored at training time and recomputed at load time).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import whisper

from model.audio import SAMPLE_RATE

EXTRACTOR_NAME = "whisper_log_mel"
WHISPER_N_FFT = whisper.audio.N_FFT
WHISPER_HOP_LENGTH = whisper.audio.HOP_LENGTH
SUPPORTED_N_MELS = (80, 128)
DEFAULT_WINDOW_SECONDS = 6.0
REFERENCE_SEED = 1234
REFERENCE_SECONDS = 1.0
REFERENCE_TOLERANCE = 1e-3
DEFAULT_TARGET_LEVEL_DBFS = -25.0
LEVEL_FRAME_SAMPLES = 320  # 20 ms at 16 kHz
LEVEL_ACTIVE_RANGE_DB = 40.0  # frames this far below the loudest one count as silence
SILENCE_RMS = 1e-6  # below this nothing is audible: leave the clip alone rather than boost noise


class FeatureConfigMismatch(ValueError):
    """A checkpoint was trained on features this code does not reproduce."""


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the numbers a detector sees."""

    extractor: str = EXTRACTOR_NAME
    sample_rate: int = SAMPLE_RATE
    n_mels: int = 80
    n_fft: int = WHISPER_N_FFT
    hop_length: int = WHISPER_HOP_LENGTH
    # Longer audio is scored in windows of at most this length (training crops to it).
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    # Each window is scaled so its active-speech RMS is this level before the log-mel: Whisper's
    # log-mel is absolute, so without this the recording level would be a cue (None disables).
    target_level_dbfs: float | None = DEFAULT_TARGET_LEVEL_DBFS
    # Per-bin means of the features of a fixed reference signal, filled in at save time.
    reference_bin_means: tuple[float, ...] = field(default=(), compare=False)

    def validate(self) -> None:
        """Refuse parameters the whisper extractor cannot honour."""
        problems = []
        if self.extractor != EXTRACTOR_NAME:
            problems.append(f"extractor {self.extractor!r} (this code has {EXTRACTOR_NAME!r})")
        if self.sample_rate != SAMPLE_RATE:
            problems.append(f"sample_rate {self.sample_rate} (whisper needs {SAMPLE_RATE})")
        if self.n_fft != WHISPER_N_FFT or self.hop_length != WHISPER_HOP_LENGTH:
            problems.append(
                f"n_fft/hop {self.n_fft}/{self.hop_length} (whisper has {WHISPER_N_FFT}/{WHISPER_HOP_LENGTH})"
            )
        if self.n_mels not in SUPPORTED_N_MELS:
            problems.append(f"n_mels {self.n_mels} (whisper supports {SUPPORTED_N_MELS})")
        if problems:
            raise FeatureConfigMismatch("unsupported feature config: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    def with_reference(self) -> FeatureConfig:
        return dataclasses.replace(self, reference_bin_means=tuple(reference_bin_means(self)))

    def check_compatible(self) -> None:
        """Raise FeatureConfigMismatch unless this code reproduces the saved features."""
        self.validate()
        if not self.reference_bin_means:
            raise FeatureConfigMismatch("feature config has no reference_bin_means; re-save it with this code")
        current = np.asarray(reference_bin_means(self))
        saved = np.asarray(self.reference_bin_means)
        if saved.shape != current.shape or np.abs(saved - current).max() > REFERENCE_TOLERANCE:
            raise FeatureConfigMismatch(
                "this code computes different features than the model was trained on "
                "(reference signal check failed); retrain or install the matching versions"
            )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> FeatureConfig:
        values = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FeatureConfigMismatch(f"feature config {path.name} has fields this code does not know: {unknown}")
        values["reference_bin_means"] = tuple(values.get("reference_bin_means", ()))
        return cls(**values)


def normalize_level(waveform: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale so the RMS of the active (non-silent) 20 ms frames is `target_dbfs`.

    Measuring active frames only keeps leading/trailing silence from changing the gain.
    """
    usable = len(waveform) // LEVEL_FRAME_SAMPLES * LEVEL_FRAME_SAMPLES
    frames = waveform[:usable].reshape(-1, LEVEL_FRAME_SAMPLES) if usable else waveform[None, :]
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    active = energy >= energy.max() * 10 ** (-LEVEL_ACTIVE_RANGE_DB / 10)
    rms = float(np.sqrt(energy[active].mean()))
    if rms < SILENCE_RMS:
        return waveform
    return (waveform * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def log_mel(waveform: np.ndarray, config: FeatureConfig) -> torch.Tensor:
    """(n_mels, frames) whisper log-mel of a 16 kHz mono clip; one frame per hop (10 ms)."""
    if config.target_level_dbfs is not None:
        waveform = normalize_level(waveform, config.target_level_dbfs)
    audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return whisper.log_mel_spectrogram(audio, n_mels=config.n_mels)


def split_windows(waveform: np.ndarray, config: FeatureConfig) -> list[np.ndarray]:
    """Cut long audio into equal windows no longer than window_seconds; nothing is dropped."""
    count = max(1, int(np.ceil(len(waveform) / config.window_samples)))
    return np.array_split(waveform, count)


def reference_signal(config: FeatureConfig) -> np.ndarray:
    """A fixed chirp plus seeded noise: a deterministic probe of the extractor."""
    t = np.arange(int(REFERENCE_SECONDS * config.sample_rate)) / config.sample_rate
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 3000 * t) * t)
    noise = 0.05 * np.random.default_rng(REFERENCE_SEED).standard_normal(t.shape)
    return (chirp + noise).astype(np.float32)


def reference_bin_means(config: FeatureConfig) -> list[float]:
    features = log_mel(reference_signal(config), config)
    return [round(float(v), 6) for v in features.mean(dim=1)]


class AudioFeatureExtractor:
    """The seed's extractor: one object, built from a FeatureConfig, used by training and serving."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.config.validate()

    def __call__(self, waveform: np.ndarray) -> torch.Tensor:
        return log_mel(waveform, self.config)

    def split(self, waveform: np.ndarray) -> list[np.ndarray]:
        return split_windows(waveform, self.config)


def pad_batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (n_mels, frames) tensors into (batch, n_mels, max_frames), zero-padded, plus lengths."""
    lengths = torch.tensor([f.shape[-1] for f in features], dtype=torch.long)
    batch = torch.zeros(len(features), features[0].shape[0], int(lengths.max()))
    for i, f in enumerate(features):
        batch[i, :, : f.shape[-1]] = f
    return batch, lengths

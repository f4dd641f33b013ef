"""Score audio with a trained detector: the single inference path for serving and evaluation.

Each clip is cut into windows (FeatureConfig.window_seconds), every window of every clip in
the request goes through the detector together, and a clip's score is the mean of its
windows' scores. Masked pooling makes each window's score independent of its batch-mates.
Each window's logit is calibrated (the checkpoint's Platt scaling, identity if it has none)
before the sigmoid, so segment scores and the clip mean alike are calibrated P(real).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.audio import AudioSource, decode_audio
from model.checkpoint import DEFAULT_THRESHOLD, checkpoint_calibration, load_checkpoint
from model.detectors import Detector
from model.features import AudioFeatureExtractor, FeatureConfig, pad_batch

MAX_WINDOWS_PER_FORWARD = 64
REAL, FAKE = "real", "fake"


@dataclass(frozen=True)
class SegmentScore:
    start_seconds: float
    end_seconds: float
    probability_real: float


@dataclass(frozen=True)
class ClipScore:
    probability_real: float
    label: str
    duration_seconds: float
    segments: list[SegmentScore] = field(default_factory=list)


class AudioDetector:
    """A detector together with the exact feature extractor, calibration and threshold it was trained with."""

    def __init__(
        self,
        model: Detector,
        feature_config: FeatureConfig,
        metadata: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model.to(device).eval()
        self.extractor = AudioFeatureExtractor(feature_config)
        self.metadata = metadata or {}
        self.threshold = float(self.metadata.get("threshold", DEFAULT_THRESHOLD))
        self.calibration = checkpoint_calibration(self.metadata)
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, directory: Path, device: str | torch.device = "cpu") -> AudioDetector:
        model, feature_config, metadata = load_checkpoint(directory, device)
        return cls(model, feature_config, metadata, device)

    def label(self, probability_real: float) -> str:
        return REAL if probability_real >= self.threshold else FAKE

    @torch.inference_mode()
    def window_logits(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The detector's raw (uncalibrated) logit for each (n_mels, frames) window, in slices that bound memory."""
        logits = []
        for start in range(0, len(features), MAX_WINDOWS_PER_FORWARD):
            batch, lengths = pad_batch(features[start : start + MAX_WINDOWS_PER_FORWARD])
            logits.append(self.model.logits(batch.to(self.device), lengths.to(self.device)).float().cpu())
        return torch.cat(logits) if logits else torch.empty(0)

    def score_features(self, features: Sequence[torch.Tensor]) -> list[float]:
        """Calibrated P(real) for each (n_mels, frames) window (float64, so the scaling adds no rounding)."""
        return torch.sigmoid(self.calibration.apply(self.window_logits(features).double())).tolist()

    def score_waveforms(self, waveforms: Sequence[np.ndarray]) -> list[ClipScore]:
        """Score 16 kHz mono clips; all their windows share forward passes."""
        rate = self.extractor.config.sample_rate
        windows_per_clip = [clip_windows(w, self.extractor) for w in waveforms]
        flat = [features for windows in windows_per_clip for features, _ in windows]
        scores = iter(self.score_features(flat))
        results = []
        for waveform, windows in zip(waveforms, windows_per_clip, strict=True):
            segments = []
            for _, (start, end) in windows:
                segments.append(SegmentScore(round(start / rate, 3), round(end / rate, 3), next(scores)))
            probability = float(np.mean([s.probability_real for s in segments]))
            results.append(ClipScore(probability, self.label(probability), round(len(waveform) / rate, 3), segments))
        return results

    def score_audio(self, source: AudioSource, **decode_options: Any) -> ClipScore:
        return self.score_waveforms([decode_audio(source, **decode_options)])[0]


def clip_windows(waveform: np.ndarray, extractor: AudioFeatureExtractor) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """Features of each window with its sample span."""
    result, start = [], 0
    for window in extractor.split(waveform):
        result.append((extractor(window), (start, start + len(window))))
        start += len(window)
    return result

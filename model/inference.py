"""Score audio with a trained detector: the single inference path for serving and evaluation.

A clip's features are computed once over the whole clip and go through the detector's trunk in
one pass (model.timeline), batched with every other clip of the request. A clip no longer than
the detector's window (FeatureConfig.window_seconds) is one segment, scored as before; a longer
one is a timeline of equal segments of at most 2 s (timeline.SEGMENT_SECONDS), each scored by the
window of the detector's length centred on it. A clip's score is the mean of its segments' scores.
Masked pooling makes each score independent of its batch-mates. Each logit is calibrated (the
checkpoint's Platt scaling, identity if it has none) before the sigmoid, so segment scores and
the clip mean alike are calibrated P(real). The detector runs as `inference_copy` (batch norms
folded, channels-last): the same logits as the trained module within 1e-5, about half the CPU.
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
from model.detectors import Detector, inference_copy
from model.features import AudioFeatureExtractor, FeatureConfig, pad_batch
from model.timeline import SEGMENT_SECONDS, score_segments, segment_spans

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
    speech_seconds: float | None = None  # speech the VAD found (vad_trim or check_speech), else None


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
        self.scorer = inference_copy(self.model)
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
            logits.append(self.scorer.logits(batch.to(self.device), lengths.to(self.device)).float().cpu())
        return torch.cat(logits) if logits else torch.empty(0)

    def score_features(self, features: Sequence[torch.Tensor]) -> list[float]:
        """Calibrated P(real) for each (n_mels, frames) window (float64, so the scaling adds no rounding)."""
        return torch.sigmoid(self.calibration.apply(self.window_logits(features).double())).tolist()

    @torch.inference_mode()
    def score_waveforms(self, waveforms: Sequence[np.ndarray], check_speech: bool = False) -> list[ClipScore]:
        """Score 16 kHz mono clips; all their segments share forward passes.

        `check_speech` (serving) has the VAD measure each clip's speech into `speech_seconds`, so a
        caller can refuse speech-free audio (model.vad.check_speech); the scores are the same either way.
        """
        config = self.extractor.config
        rate, hop = config.sample_rate, config.hop_length
        spans = self.extractor.speech_spans(waveforms, check_speech)
        features = [
            self.extractor(w[span.start : span.end]).to(self.device) for w, span in zip(waveforms, spans, strict=True)
        ]
        segment_samples = round(SEGMENT_SECONDS * rate)
        sample_spans = [segment_spans(span.end - span.start, config.window_samples, segment_samples) for span in spans]
        frame_spans = [[(a // hop, b // hop) for a, b in clip] for clip in sample_spans]
        logits = score_segments(self.scorer, features, frame_spans, round(config.window_samples / hop))
        results = []
        for waveform, span, clip_spans, clip_logits in zip(waveforms, spans, sample_spans, logits, strict=True):
            probabilities = torch.sigmoid(self.calibration.apply(clip_logits.cpu().double())).tolist()
            segments = [
                SegmentScore(round((span.start + a) / rate, 3), round((span.start + b) / rate, 3), p)
                for (a, b), p in zip(clip_spans, probabilities, strict=True)
            ]
            probability = float(np.mean(probabilities))
            duration = round(len(waveform) / rate, 3)
            results.append(ClipScore(probability, self.label(probability), duration, segments, span.speech_seconds))
        return results

    def score_audio(self, source: AudioSource, check_speech: bool = False, **decode_options: Any) -> ClipScore:
        return self.score_waveforms([decode_audio(source, **decode_options)], check_speech)[0]


def clip_windows(waveform: np.ndarray, extractor: AudioFeatureExtractor) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """Features of each window of the clip's speech span (extractor.speech_span), with its sample span in the clip."""
    span = extractor.speech_span(waveform)
    result, start = [], span.start
    for window in extractor.split(waveform[span.start : span.end]):
        result.append((extractor(window), (start, start + len(window))))
        start += len(window)
    return result

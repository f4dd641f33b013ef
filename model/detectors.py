"""Detectors: (batch, n_mels, frames) log-mel plus valid lengths → probability the audio is REAL.

Padding never changes a clip's score: every layer that mixes time re-zeroes the padded
frames, and pooling statistics are taken over valid frames only. A clip therefore gets the
same output alone or in a batch with longer clips.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ARCHITECTURES = ("cnn", "improved")


@dataclass(frozen=True)
class ModelConfig:
    """Saved in the checkpoint, so a detector can be rebuilt without the training code."""

    architecture: str = "cnn"
    n_mels: int = 80
    hidden: int = 64
    channels: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.2
    normalize_bands: bool = False  # subtract each band's mean over the clip's valid frames first
    members: int = 1  # above 1: that many detectors of this config, trained apart, logits averaged

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        values = json.loads(Path(path).read_text())
        values["channels"] = tuple(values.get("channels", cls.channels))
        return cls(**values)


def time_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(batch, frames) bool mask, True on valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the last (time) axis of (batch, features, frames), valid frames only."""
    mask = time_mask(lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    count = mask.sum(dim=-1).clamp(min=1.0)
    mean = (x * mask).sum(dim=-1) / count
    var = (((x - mean.unsqueeze(-1)) * mask) ** 2).sum(dim=-1) / count
    return mean, torch.sqrt(var + 1e-6)


class Detector(nn.Module):
    """Common interface: `logits` for training, `forward` gives P(real)."""

    def logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features, lengths))


def subtract_band_means(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Cepstral mean normalisation: a fixed microphone/room colouring becomes a zero offset."""
    mean, _ = masked_mean_std(features, lengths)
    return features - mean.unsqueeze(-1)


class ImprovedDetector(Detector):
    """The seed baseline: mean over time → hidden layer with ReLU → one output."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.hidden = nn.Linear(config.n_mels, config.hidden)
        self.output = nn.Linear(config.hidden, 1)

    def logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled, _ = masked_mean_std(features, lengths)
        return self.output(torch.relu(self.hidden(pooled))).squeeze(-1)


class ConvBlock(nn.Module):
    """Two 3x3 conv+BN layers with a 1x1 residual, then 2x2 max-pool; padding re-zeroed after each."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = time_mask(lengths, x.shape[-1])[:, None, None, :]
        y = torch.relu(self.bn1(self.conv1(x))) * mask
        y = torch.relu(self.bn2(self.conv2(y)) + self.skip(x)) * mask
        lengths = torch.div(lengths, 2, rounding_mode="floor").clamp(min=1)
        y = self.pool(y)
        return y * time_mask(lengths, y.shape[-1])[:, None, None, :], lengths


class CNNDetector(Detector):
    """Compact residual CNN over the log-mel with masked mean+std pooling over time."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = (1, *config.channels)
        self.normalize_bands = config.normalize_bands
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in itertools.pairwise(widths))
        freq_bins = config.n_mels // (2 ** len(config.channels))
        embedding = config.channels[-1] * freq_bins
        self.head = nn.Sequential(
            nn.Linear(2 * embedding, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 1),
        )

    def logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Each block halves time; short clips get masked zero frames so the last block has one.
        if self.normalize_bands:
            features = subtract_band_means(features, lengths)
        shortfall = 2 ** len(self.blocks) - features.shape[-1]
        if shortfall > 0:
            features = nn.functional.pad(features, (0, shortfall))
        x = (features * time_mask(lengths, features.shape[-1])[:, None, :]).unsqueeze(1)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        x = x.flatten(1, 2)  # (batch, channels * freq, frames)
        mean, std = masked_mean_std(x, lengths)
        return self.head(torch.cat([mean, std], dim=1)).squeeze(-1)


class EnsembleDetector(Detector):
    """Mean logit of detectors trained alone with different seeds.

    On speakers no member has heard, each member's mistakes are partly its own; averaging
    keeps what they agree on and is steadier than the best single run.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        member = dataclasses.replace(config, members=1)
        self.members = nn.ModuleList(build_detector(member) for _ in range(config.members))

    def logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([member.logits(features, lengths) for member in self.members]).mean(dim=0)


def build_detector(config: ModelConfig) -> Detector:
    if config.members > 1:
        return EnsembleDetector(config)
    if config.architecture == "cnn":
        return CNNDetector(config)
    if config.architecture == "improved":
        return ImprovedDetector(config)
    raise ValueError(f"unknown architecture {config.architecture!r}; choose one of {ARCHITECTURES}")

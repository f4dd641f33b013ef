"""Detectors: (batch, n_mels, frames) log-mel plus valid lengths → probability the audio is REAL.

Padding never changes a clip's score: every layer that mixes time re-zeroes the padded
frames, and pooling statistics are taken over valid frames only. A clip therefore gets the
same output alone or in a batch with longer clips.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model import pitch_encoder, whisper_encoder
from model.features import SAMPLE_ROWS_MELS, WHISPER_HOP_LENGTH, WHISPER_LOG_MEL_SAMPLES
from model.whisper_encoder import ENCODER_STRIDE, encoder_lengths, pretrained_encoder

ARCHITECTURES = ("cnn", "improved", "resnet_asp", "whisper_probe", "whisper_pitch_probe")
# Trained head-only on pooled embeddings (training.probe).
FROZEN_TRUNK_ARCHITECTURES = ("whisper_probe", "whisper_pitch_probe")
# Architectures that read more than a spectrogram, and the front end (model.features) that feeds them.
REQUIRED_FRONT_ENDS = {"whisper_pitch_probe": WHISPER_LOG_MEL_SAMPLES}
DEFAULT_PITCH_HOP_FRAMES = pitch_encoder.FRAME_HOP // WHISPER_HOP_LENGTH
ATTENTION_HIDDEN = 128  # resnet_asp: width of the layer that scores each frame for attentive pooling


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
    # resnet_asp only: stage widths (each stage halves frequency and time) and residual blocks per stage.
    resnet_channels: tuple[int, ...] = (16, 32, 64, 128)
    resnet_blocks: int = 2
    # whisper_probe only: input frames the encoder attends across (6 s, the scoring window); longer
    # input is encoded in consecutive blocks of this length, so a window never sees past its block.
    block_frames: int = 600
    # whisper_pitch_probe only: 10 ms input frames between CREPE frames (4 = 40 ms); even, divides block_frames.
    pitch_hop_frames: int = DEFAULT_PITCH_HOP_FRAMES

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        values = json.loads(Path(path).read_text())
        for name in ("channels", "resnet_channels"):  # JSON lists back to the frozen config's tuples
            if name in values:
                values[name] = tuple(values[name])
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
    """Common interface: `logits` for training, `forward` gives P(real).

    `logits` runs three stages, kept apart so that long audio can be scored in one pass
    (model.inference): `normalize` (per-clip statistics of the features), `embed` (the frame-level
    trunk, `time_stride` input frames per output frame, nothing mixed beyond its receptive field)
    and `classify` (pooling over an embedding's valid frames, then the head). Any span of a clip's
    embedding can then be classified as a window without recomputing the trunk.
    """

    normalize_bands = False
    # Set where the trunk mixes time globally within fixed blocks of input frames (a transformer):
    # long audio is then embedded in chunks aligned to them, without overlap (model.timeline).
    block_frames: int | None = None

    @property
    def time_stride(self) -> int:
        return 1

    def normalize(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return subtract_band_means(features, lengths) if self.normalize_bands else features

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, dims, frames // time_stride) frame embeddings of normalised features, and their lengths."""
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One logit per row, from the embedding's first `lengths` frames."""
        raise NotImplementedError

    def logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(*self.embed(self.normalize(features, lengths), lengths))

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

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features, lengths

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled, _ = masked_mean_std(embedding, lengths)
        return self.output(torch.relu(self.hidden(pooled))).squeeze(-1)


def classifier_head(features: int, config: ModelConfig) -> nn.Sequential:
    """The hidden layer every trunk ends in; its layout keeps checkpoints' `head.0` / `head.3` keys."""
    return nn.Sequential(
        nn.Linear(features, config.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, 1),
    )


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
        # Without padding in the batch every mask is all ones: skipping them is exact and saves
        # a pass over each activation (long audio and equal-length windows are scored this way).
        if not bool((lengths < x.shape[-1]).any()):
            y = torch.relu_(self.bn1(self.conv1(x)))
            y = self.pool(torch.relu_(self.bn2(self.conv2(y)).add_(self.skip(x))))
            return y, torch.full_like(lengths, y.shape[-1])
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
        self.head = classifier_head(2 * embedding, config)

    @property
    def time_stride(self) -> int:
        return 2 ** len(self.blocks)

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Each block halves time; short clips get masked zero frames so the last block has one.
        shortfall = self.time_stride - features.shape[-1]
        if shortfall > 0:
            features = nn.functional.pad(features, (0, shortfall))
        x = (features * time_mask(lengths, features.shape[-1])[:, None, :]).unsqueeze(1)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x.flatten(1, 2), lengths  # (batch, channels * freq, frames)

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(embedding, lengths)
        return self.head(torch.cat([mean, std], dim=1)).squeeze(-1)


def strided_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid frames after a kernel-3, padding-1 conv with this stride: those whose window starts in the clip."""
    return torch.div(lengths - 1, stride, rounding_mode="floor") + 1


class ResidualBlock(nn.Module):
    """Basic ResNet block: two 3x3 conv+BN and a shortcut; stride 2 halves frequency and time.

    The input is zero past `lengths`, as a clip alone sees the conv's own zero padding, so the
    valid outputs match; everything past the new lengths is zeroed again.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = strided_lengths(lengths, self.stride)
        y = self.conv1(x)
        mask = time_mask(lengths, y.shape[-1])[:, None, None, :]
        y = torch.relu(self.bn1(y)) * mask
        y = torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x)) * mask
        return y, lengths


class AttentiveStatisticsPooling(nn.Module):
    """Okabe et al. 2018: a learnt weight per frame, then the weighted mean and std over valid frames.

    Runs in float32 even under autocast: a softmax over hundreds of frames and a variance as
    E[(x - mean)^2] lose too much in bfloat16. Padded frames get weight exactly zero.
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(features, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            valid = time_mask(lengths, x.shape[-1])[:, None, :]
            weights = self.score(x).masked_fill(~valid, float("-inf")).softmax(dim=-1)
            mean = (weights * x).sum(dim=-1)
            var = (weights * (x - mean.unsqueeze(-1)) ** 2).sum(dim=-1)
            return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)


class ResNetASPDetector(Detector):
    """A stronger comparison: 2-D ResNet over the log-mel, frequency flattened, attentive statistics pooling."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = config.resnet_channels
        self.normalize_bands = config.normalize_bands
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]))
        self.blocks = nn.ModuleList()
        for previous, width in itertools.pairwise((widths[0], *widths)):
            self.blocks.append(ResidualBlock(previous, width, stride=2))
            self.blocks.extend(ResidualBlock(width, width, stride=1) for _ in range(config.resnet_blocks - 1))
        freq_bins = config.n_mels
        for _ in widths:
            freq_bins = (freq_bins - 1) // 2 + 1
        embedding = widths[-1] * freq_bins
        self.pool = AttentiveStatisticsPooling(embedding, ATTENTION_HIDDEN)
        self.head = classifier_head(2 * embedding, config)

    @property
    def time_stride(self) -> int:
        return 2 ** sum(block.stride == 2 for block in self.blocks)

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = lengths.clamp(min=1)
        mask = time_mask(lengths, features.shape[-1])[:, None, None, :]
        x = torch.relu(self.stem(features.unsqueeze(1) * mask)) * mask
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x.flatten(1, 2), lengths

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(embedding, lengths)).squeeze(-1)


class WhisperProbeDetector(Detector):
    """Whisper tiny.en's encoder, frozen (model.whisper_encoder), probed by a small head.

    The trunk is the pretrained encoder's output (384 dims, 50 frames per second). The head pools
    each dimension's mean and std over the window's frames, standardises them with statistics
    fixed at training time (`pooled_mean`, `pooled_scale`) and classifies them. Only the head and
    those statistics are the checkpoint's weights; the encoder comes from its package at load time.
    The output generalised better than the encoder's inner layers on the held-out folds (docs/results.md).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.block_frames = config.block_frames
        pooled = 2 * self.embedding_width()
        self.register_buffer("pooled_mean", torch.zeros(pooled))
        self.register_buffer("pooled_scale", torch.ones(pooled))
        self.head = classifier_head(pooled, config)

    @property
    def trunk_identity(self) -> str:
        """Names the frozen trunk (its weights and settings) in caches of its pooled output."""
        return whisper_encoder.WEIGHTS_SHA256

    def embedding_width(self) -> int:
        return pretrained_encoder().width

    @property
    def time_stride(self) -> int:
        return ENCODER_STRIDE

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = pretrained_encoder(features.device)
        blocked, block_lengths = split_blocks(features, lengths, self.block_frames)
        with torch.no_grad():  # an empty block (a short clip beside long ones) is encoded as one frame, then masked
            embedding, _ = encoder(blocked.float(), block_lengths.clamp(min=1))
        embedding = embedding.reshape(len(features), -1, embedding.shape[-1]).transpose(1, 2)  # (batch, dims, frames)
        return embedding, encoder_lengths(lengths)  # blocks are full up to a clip's last: valid frames lead

    def statistics(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean and std of every dimension over the valid frames: what the head reads, once standardised."""
        mean, std = masked_mean_std(embedding.float(), lengths)
        return torch.cat([mean, std], dim=1)

    def classify_statistics(self, statistics: torch.Tensor) -> torch.Tensor:
        return self.head((statistics - self.pooled_mean) / self.pooled_scale).squeeze(-1)

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify_statistics(self.statistics(embedding, lengths))


def split_blocks(features: torch.Tensor, lengths: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, rows, frames) → (batch * blocks, rows, block) consecutive blocks, each to be encoded alone,
    and each block's valid frames (0 for a block past a short clip's end). Input within one block stays whole."""
    batch, rows, frames = features.shape
    blocks = max(1, -(-frames // block))
    if blocks > 1:
        features = nn.functional.pad(features, (0, blocks * block - frames))
        features = features.view(batch, rows, blocks, block).permute(0, 2, 1, 3).reshape(-1, rows, block)
    offsets = torch.arange(blocks, device=lengths.device) * block
    return features, (lengths[:, None] - offsets[None, :]).clamp(0, block).flatten()


class WhisperPitchProbeDetector(WhisperProbeDetector):
    """The Whisper probe with CREPE tiny's pitch embedding (model.pitch_encoder) beside the encoder's output.

    Reads the whisper_log_mel_samples front end: the log-mel rows go to Whisper, the sample rows
    are joined back into audio for CREPE. Both trunks see the same blocks of `block_frames`, so a
    window's embedding does not depend on audio outside its block. CREPE's frames (every
    `pitch_hop_frames` x 10 ms) are repeated to Whisper's 20 ms frames; the head pools and
    classifies the 640 dims together.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.pitch_hop_frames = config.pitch_hop_frames
        if self.pitch_hop_frames % ENCODER_STRIDE or self.block_frames % self.pitch_hop_frames:
            raise ValueError(
                f"pitch_hop_frames {self.pitch_hop_frames} must be a multiple of {ENCODER_STRIDE} "
                f"that divides block_frames {self.block_frames}"
            )

    @property
    def trunk_identity(self) -> str:
        identity = f"{super().trunk_identity}+{pitch_encoder.WEIGHTS_SHA256}"
        return identity if self.pitch_hop_frames == DEFAULT_PITCH_HOP_FRAMES else f"{identity}@{self.pitch_hop_frames}"

    def embedding_width(self) -> int:
        return super().embedding_width() + pitch_encoder.EMBEDDING_WIDTH

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if features.shape[1] != SAMPLE_ROWS_MELS + WHISPER_HOP_LENGTH:
            raise ValueError(
                f"whisper_pitch_probe reads the {WHISPER_LOG_MEL_SAMPLES} front end "
                f"({SAMPLE_ROWS_MELS + WHISPER_HOP_LENGTH} rows), got {features.shape[1]} rows"
            )
        speech, frame_lengths = super().embed(features[:, :SAMPLE_ROWS_MELS], lengths)
        pitch = self.pitch_embedding(features[:, SAMPLE_ROWS_MELS:], lengths)
        return torch.cat([speech, pitch[..., : speech.shape[-1]]], dim=1), frame_lengths

    def pitch_embedding(self, samples: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, 256, encoder frames) CREPE embeddings of each block's audio (zero past a clip's end)."""
        blocked, block_lengths = split_blocks(samples, lengths, self.block_frames)
        blocked = blocked.float() * time_mask(block_lengths, blocked.shape[-1])[:, None, :]  # padding reads as silence
        audio = blocked.transpose(1, 2).flatten(1)  # (batch * blocks, samples): the rows were hop-long slices
        frames = pitch_encoder.frame_audio(audio, self.pitch_hop_frames * WHISPER_HOP_LENGTH)
        with torch.no_grad():
            embedding = pitch_encoder.pretrained_pitch_encoder(samples.device)(frames.flatten(0, 1))
        embedding = embedding.view(len(samples), -1, pitch_encoder.EMBEDDING_WIDTH)
        return embedding.repeat_interleave(self.pitch_hop_frames // ENCODER_STRIDE, dim=1).transpose(1, 2)


class EnsembleDetector(Detector):
    """Mean logit of detectors trained alone with different seeds.

    On speakers no member has heard, each member's mistakes are partly its own; averaging
    keeps what they agree on and is steadier than the best single run.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        member = dataclasses.replace(config, members=1)
        self.members = nn.ModuleList(build_detector(member) for _ in range(config.members))

    @property
    def time_stride(self) -> int:
        return self.members[0].time_stride

    def normalize(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.members[0].normalize(features, lengths)  # members share the config

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The members' embeddings side by side (equal shapes: one config)."""
        embedded = [member.embed(features, lengths) for member in self.members]
        return torch.cat([x for x, _ in embedded], dim=1), embedded[0][1]

    def classify(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        parts = embedding.chunk(len(self.members), dim=1)
        return torch.stack([m.classify(x, lengths) for m, x in zip(self.members, parts, strict=True)]).mean(dim=0)


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """The convolution followed by the (eval-mode) batch norm as one convolution with a bias."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale[:, None, None, None])
        folded.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
    return folded


def inference_copy(detector: Detector) -> Detector:
    """A copy for scoring only: batch norms folded into the convolutions before them, channels-last.

    Every BatchNorm2d here directly follows the Conv2d registered just before it in the same module,
    so that pair becomes one convolution. Measured on the shipped ensemble (scripts/bench.py): about
    half the CPU per window of the eager model or less, logits within 1e-5 of it.
    """
    copy = deepcopy(detector).eval()
    for module in copy.modules():
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d) and previous and isinstance(previous[1], nn.Conv2d):
                setattr(module, previous[0], fold_batch_norm(previous[1], child))
                setattr(module, name, nn.Identity())
            previous = (name, child)
    return copy.to(memory_format=torch.channels_last)


def build_detector(config: ModelConfig) -> Detector:
    if config.members > 1:
        return EnsembleDetector(config)
    if config.architecture == "cnn":
        return CNNDetector(config)
    if config.architecture == "improved":
        return ImprovedDetector(config)
    if config.architecture == "resnet_asp":
        return ResNetASPDetector(config)
    if config.architecture == "whisper_probe":
        return WhisperProbeDetector(config)
    if config.architecture == "whisper_pitch_probe":
        return WhisperPitchProbeDetector(config)
    raise ValueError(f"unknown architecture {config.architecture!r}; choose one of {ARCHITECTURES}")

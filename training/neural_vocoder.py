"""A small neural vocoder, trained here on a training split's own real speech, for vocoded copies.

Neural TTS (Kokoro, hibari) is the one family every detector trained on the other families
calls real when it is held out: the data holds no other learned waveform generator, and no
package ships a neural vocoder's weights. Wang and Yamagishi (ICASSP 2023) made their training
fakes by copy-synthesising real speech through neural vocoders; this module trains such a
vocoder from scratch so the copies can carry a learned generator's trace instead of
Griffin-Lim's.

The network is Vocos-style (Siuzdak, 2023): ConvNeXt blocks over an 80-band log-mel predict
each STFT frame's log-magnitude and phase, and an inverse STFT makes the waveform, so one
forward pass vocodes a clip at any length. It learns from multi-resolution STFT and mel losses
only (no discriminator), which two CPU cores fit in minutes. Its input is its own mel analysis,
not the detector's front end: a vocoder's bottleneck is a property of the attack.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.transforms as tat
from torch import nn
from torch.nn import functional
from tqdm import tqdm

from model.audio import SAMPLE_RATE, decode_audio

N_FFT = 640  # 40 ms analysis and synthesis frames
HOP = 160  # 10 ms: 100 frames a second
MEL_BANDS = 80
LOG_FLOOR = 1e-5
MAX_LOG_MAGNITUDE = math.log(100.0)  # Vocos clips the predicted magnitude at 100
STFT_RESOLUTIONS = ((256, 64), (640, 160), (1024, 256), (2048, 512))  # (n_fft, hop) of the spectral losses
MEL_LOSS_WEIGHT = 45.0  # HiFi-GAN's weight on the mel term beside the STFT terms (kept in Vocos)
SEGMENT_SAMPLES = SAMPLE_RATE  # 1 s training crops
WEIGHTS_NAME = "vocoder.pt"
KEY_CHARS = 16  # hex digits of the training set's digest in a vocoder's folder name


@dataclass(frozen=True)
class VocoderConfig:
    width: int = 128
    blocks: int = 6
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 5e-4
    seed: int = 0


class ConvNeXtBlock(nn.Module):
    """Depthwise 7-tap convolution, layer norm, pointwise expansion and back, scaled residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel_size=7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, 3 * width)
        self.project = nn.Linear(3 * width, width)
        self.scale = nn.Parameter(torch.full((width,), 1.0 / 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x).transpose(1, 2)
        y = self.project(functional.gelu(self.expand(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class Vocoder(nn.Module):
    """Log-mel (batch, bands, frames) → waveform (batch, frames * HOP)."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Conv1d(MEL_BANDS, config.width, kernel_size=7, padding=3)
        self.norm_in = nn.LayerNorm(config.width)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(config.width) for _ in range(config.blocks)))
        self.norm_out = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, N_FFT + 2)  # log-magnitude and phase of N_FFT // 2 + 1 bins
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, log_mel: torch.Tensor, length: int | None = None) -> torch.Tensor:
        x = self.norm_in(self.embed(log_mel).transpose(1, 2)).transpose(1, 2)
        x = self.norm_out(self.blocks(x).transpose(1, 2))
        log_magnitude, phase = self.head(x).transpose(1, 2).chunk(2, dim=1)
        spectrum = torch.polar(log_magnitude.clamp(max=MAX_LOG_MAGNITUDE).exp(), phase)
        return torch.istft(spectrum, N_FFT, HOP, window=self.window, center=True, length=length)


def mel_analysis() -> tat.MelSpectrogram:
    return tat.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=MEL_BANDS, power=1.0, center=True)


def log_mel(mel: tat.MelSpectrogram, audio: torch.Tensor) -> torch.Tensor:
    return mel(audio).clamp(min=LOG_FLOOR).log()


def spectral_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spectral convergence plus log-magnitude L1, summed over STFT_RESOLUTIONS."""
    total = generated.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        window = torch.hann_window(n_fft, device=generated.device)
        g, t = (torch.stft(a, n_fft, hop, window=window, return_complex=True).abs() for a in (generated, target))
        total = total + torch.linalg.norm(t - g) / torch.linalg.norm(t).clamp(min=LOG_FLOOR)
        total = total + functional.l1_loss(g.clamp(min=LOG_FLOOR).log(), t.clamp(min=LOG_FLOOR).log())
    return total


def training_crops(clips: Sequence[np.ndarray], count: int, rng: np.random.Generator) -> torch.Tensor:
    """`count` random 1 s crops, each from a random clip (short clips zero-padded)."""
    crops = np.zeros((count, SEGMENT_SAMPLES), dtype=np.float32)
    for row, index in enumerate(rng.integers(len(clips), size=count)):
        clip = clips[index]
        start = int(rng.integers(max(clip.size - SEGMENT_SAMPLES, 0) + 1))
        piece = clip[start : start + SEGMENT_SAMPLES]
        crops[row, : piece.size] = piece
    return torch.from_numpy(crops)


def train_vocoder(clips: Sequence[np.ndarray], config: VocoderConfig) -> Vocoder:
    """Fit a vocoder to reproduce `clips` from their mel spectrograms (seeded; CPU minutes)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    vocoder, mel = Vocoder(config), mel_analysis()
    optimizer = torch.optim.AdamW(vocoder.parameters(), lr=config.learning_rate, betas=(0.8, 0.9))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    progress = tqdm(range(config.steps), desc="neural vocoder", unit="step", leave=False)
    for _ in progress:
        target = training_crops(clips, config.batch_size, rng)
        with torch.no_grad():
            features = log_mel(mel, target)
        generated = vocoder(features, target.shape[-1])
        loss = spectral_loss(generated, target) + MEL_LOSS_WEIGHT * functional.l1_loss(
            log_mel(mel, generated), features
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(vocoder.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    return vocoder.eval()


def vocode(vocoder: Vocoder, samples: np.ndarray) -> np.ndarray:
    """Copy synthesis: the clip's mel through the vocoder, same length, float32 (clips under one
    frame are padded with silence for the analysis, then cut back)."""
    padded = np.pad(np.asarray(samples, dtype=np.float32), (0, max(N_FFT - samples.size, 0)))
    with torch.inference_mode():
        generated = vocoder(log_mel(mel_analysis(), torch.from_numpy(padded))[None], padded.size)[0]
    return generated[: samples.size].numpy().astype(np.float32)


def training_set_key(paths: Sequence[Path], config: VocoderConfig) -> str:
    """Digest of the training clips' bytes and the config: the same reals train the same vocoder once."""
    digest = hashlib.sha256(repr(sorted(asdict(config).items())).encode())
    for content in sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths):
        digest.update(content.encode())
    return digest.hexdigest()


def vocoder_folder(paths: Sequence[Path], directory: Path, config: VocoderConfig = VocoderConfig()) -> Path:
    """Where the vocoder trained on exactly these clips keeps its weights (and its copies)."""
    return Path(directory) / training_set_key(paths, config)[:KEY_CHARS]


def load_or_train(paths: Sequence[Path], folder: Path, config: VocoderConfig = VocoderConfig()) -> Vocoder:
    """The vocoder in `folder` if made before, else one trained on `paths` and saved there."""
    target = Path(folder) / WEIGHTS_NAME
    if target.is_file():
        saved = torch.load(target, weights_only=True)
        vocoder = Vocoder(VocoderConfig(**saved["config"]))
        vocoder.load_state_dict(saved["state_dict"])
        return vocoder.eval()
    clips = [decode_audio(p) for p in tqdm(paths, desc="vocoder training clips", unit="clip", leave=False)]
    vocoder = train_vocoder(clips, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    torch.save({"config": asdict(vocoder.config), "state_dict": vocoder.state_dict()}, partial)
    partial.replace(target)
    return vocoder

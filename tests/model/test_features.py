"""The feature config pins the extractor; windows cover long audio without dropping any."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import whisper

from model.audio import SAMPLE_RATE
from model.features import (
    AudioFeatureExtractor,
    FeatureConfig,
    FeatureConfigMismatch,
    pad_batch,
    split_windows,
)
from tests.model.conftest import voiced


def test_extractor_is_whisper_log_mel_with_80_bins() -> None:
    audio = voiced(2.0, SAMPLE_RATE)[:, 0]
    features = AudioFeatureExtractor()(audio)
    assert features.shape == (80, 200)  # one frame per 10 ms hop
    np.testing.assert_array_equal(features.numpy(), whisper.log_mel_spectrogram(audio, n_mels=80).numpy())


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = FeatureConfig(window_seconds=4.0).with_reference()
    config.save(tmp_path / "f.json")
    loaded = FeatureConfig.load(tmp_path / "f.json")
    assert loaded == config and loaded.reference_bin_means == config.reference_bin_means
    loaded.check_compatible()


@pytest.mark.parametrize(
    "change", [{"n_fft": 512}, {"hop_length": 320}, {"sample_rate": 22_050}, {"n_mels": 64}, {"extractor": "mfcc"}]
)
def test_unsupported_parameters_are_refused(change: dict) -> None:
    config = dataclasses.replace(FeatureConfig().with_reference(), **change)
    with pytest.raises(FeatureConfigMismatch, match="unsupported feature config"):
        config.check_compatible()


def test_changed_extractor_output_is_detected() -> None:
    config = FeatureConfig().with_reference()
    drifted = dataclasses.replace(config, reference_bin_means=tuple(v + 0.01 for v in config.reference_bin_means))
    with pytest.raises(FeatureConfigMismatch, match="different features"):
        drifted.check_compatible()


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    values = dataclasses.asdict(FeatureConfig().with_reference()) | {"pre_emphasis": 0.97}
    (tmp_path / "f.json").write_text(json.dumps(values))
    with pytest.raises(FeatureConfigMismatch, match="pre_emphasis"):
        FeatureConfig.load(tmp_path / "f.json")


@pytest.mark.parametrize("seconds", [0.5, 6.0, 6.01, 14.0, 61.3])
def test_windows_cover_every_sample_and_respect_the_limit(seconds: float) -> None:
    config = FeatureConfig()
    audio = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32)
    windows = split_windows(audio, config)
    assert all(len(w) <= config.window_samples for w in windows)
    np.testing.assert_array_equal(np.concatenate(windows), audio)
    assert max(len(w) for w in windows) - min(len(w) for w in windows) <= 1


def test_pad_batch_pads_with_zeros_and_reports_lengths() -> None:
    import torch

    a, b = torch.ones(80, 5), torch.full((80, 3), 2.0)
    batch, lengths = pad_batch([a, b])
    assert batch.shape == (2, 80, 5)
    assert lengths.tolist() == [5, 3]
    assert torch.equal(batch[1, :, :3], b) and torch.count_nonzero(batch[1, :, 3:]) == 0

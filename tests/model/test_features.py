"""The feature config pins the extractor; windows cover long audio without dropping any."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper

from model.audio import SAMPLE_RATE
from model.features import (
    DEFAULT_TARGET_LEVEL_DBFS,
    AudioFeatureExtractor,
    FeatureConfig,
    FeatureConfigMismatch,
    normalize_level,
    pad_batch,
    split_windows,
)
from tests.model.conftest import voiced


def test_extractor_is_whisper_log_mel_with_80_bins_of_level_normalised_audio() -> None:
    audio = voiced(2.0, SAMPLE_RATE)[:, 0]
    features = AudioFeatureExtractor()(audio)
    assert features.shape == (80, 200)  # one frame per 10 ms hop
    expected = whisper.log_mel_spectrogram(normalize_level(audio, DEFAULT_TARGET_LEVEL_DBFS), n_mels=80)
    np.testing.assert_array_equal(features.numpy(), expected.numpy())
    raw = AudioFeatureExtractor(FeatureConfig(target_level_dbfs=None))(audio)
    np.testing.assert_array_equal(raw.numpy(), whisper.log_mel_spectrogram(audio, n_mels=80).numpy())


@pytest.mark.parametrize("gain_db", [-30.0, -12.0, 0.0, 12.0])
def test_recording_level_does_not_change_features(gain_db: float) -> None:
    audio = voiced(2.0, SAMPLE_RATE)[:, 0] * np.float32(0.1)
    extractor = AudioFeatureExtractor()
    reference = extractor(audio)
    scaled = extractor(audio * np.float32(10 ** (gain_db / 20)))
    torch.testing.assert_close(scaled, reference, atol=1e-4, rtol=0)


def test_level_is_measured_on_active_frames_so_silence_padding_does_not_matter() -> None:
    speech = voiced(1.0, SAMPLE_RATE)[:, 0]
    padded = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), speech, np.zeros(SAMPLE_RATE, np.float32)])
    assert dbfs(normalize_level(speech, -25.0)) == pytest.approx(-25.0, abs=0.5)
    assert dbfs(normalize_level(padded, -25.0)[SAMPLE_RATE:-SAMPLE_RATE]) == pytest.approx(-25.0, abs=0.5)


def dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))


def test_digital_silence_is_left_alone() -> None:
    silence = np.zeros(SAMPLE_RATE, np.float32)
    assert np.array_equal(normalize_level(silence, -25.0), silence)


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
    a, b = torch.ones(80, 5), torch.full((80, 3), 2.0)
    batch, lengths = pad_batch([a, b])
    assert batch.shape == (2, 80, 5)
    assert lengths.tolist() == [5, 3]
    assert torch.equal(batch[1, :, :3], b) and torch.count_nonzero(batch[1, :, 3:]) == 0

"""Every front end: whisper's framing and scale, level-free, deterministic, pinned by the reference check.

The linear and LFCC front ends exist to be compared with the whisper log-mel on held-out
sources, so they must differ from it only in the frequency axis: same frames, same level
normalisation, same range, and the same checkpoint safety net.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
import whisper

from model.audio import SAMPLE_RATE
from model.checkpoint import save_checkpoint
from model.detectors import ModelConfig, build_detector
from model.features import (
    FRONT_ENDS,
    LFCC,
    LFCC_COEFFICIENTS,
    LFCC_FILTERS,
    LFCC_ROWS,
    LINEAR_LOG_SPEC,
    WHISPER_LOG_MEL,
    WHISPER_LOG_MEL_SAMPLES,
    AudioFeatureExtractor,
    FeatureConfig,
    FeatureConfigMismatch,
    lfcc_transform,
    linear_band_weights,
    normalize_level,
    pad_batch,
    power_spectrogram,
    whisper_scale,
)
from model.inference import AudioDetector
from tests.model.conftest import voiced

NAMES = tuple(FRONT_ENDS)
DEFAULT_ROWS = {WHISPER_LOG_MEL: 80, LINEAR_LOG_SPEC: 80, LFCC: 60, WHISPER_LOG_MEL_SAMPLES: 240}
LEVEL_TOLERANCE = 1e-4


def speech(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return voiced(seconds, SAMPLE_RATE, seed=seed)[:, 0]


def dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))


def at_level(samples: np.ndarray, level_dbfs: float) -> np.ndarray:
    return (samples * 10 ** ((level_dbfs - dbfs(samples)) / 20)).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_default_config_of_each_front_end_is_valid_with_its_row_count(name: str) -> None:
    config = FeatureConfig.for_front_end(name)
    config.validate()
    assert (config.extractor, config.n_mels) == (name, DEFAULT_ROWS[name])


def test_the_default_front_end_is_still_the_whisper_log_mel() -> None:
    assert FeatureConfig.for_front_end() == FeatureConfig()
    assert FeatureConfig().extractor == WHISPER_LOG_MEL and FeatureConfig().n_mels == 80


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("samples", [SAMPLE_RATE, 6 * SAMPLE_RATE, SAMPLE_RATE + 1, 21_392, 12_345, 1_600])
def test_shape_is_rows_by_one_frame_per_10_ms_like_whisper(name: str, samples: int) -> None:
    audio = np.resize(speech(), samples)
    features = AudioFeatureExtractor(FeatureConfig.for_front_end(name))(audio)
    assert features.shape == (DEFAULT_ROWS[name], samples // 160)
    assert features.dtype == torch.float32


@pytest.mark.parametrize("name", [WHISPER_LOG_MEL, LINEAR_LOG_SPEC])
def test_the_wide_setting_gives_128_rows(name: str) -> None:
    config = dataclasses.replace(FeatureConfig.for_front_end(name), n_mels=128)
    assert AudioFeatureExtractor(config)(speech(1.0)).shape == (128, 100)


@pytest.mark.parametrize("name", NAMES)
def test_same_input_gives_identical_features(name: str) -> None:
    audio = speech(1.5)
    first = AudioFeatureExtractor(FeatureConfig.for_front_end(name))(audio)
    again = AudioFeatureExtractor(FeatureConfig.for_front_end(name))(audio.copy())
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("target_level_dbfs", [-25.0, None])
def test_silence_and_full_scale_noise_give_finite_features(name: str, target_level_dbfs: float | None) -> None:
    config = dataclasses.replace(FeatureConfig.for_front_end(name), target_level_dbfs=target_level_dbfs)
    extractor = AudioFeatureExtractor(config)
    noise = np.random.default_rng(0).uniform(-1.0, 1.0, 6 * SAMPLE_RATE).astype(np.float32)
    square = np.sign(np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    for audio in (np.zeros(SAMPLE_RATE, np.float32), noise, square):
        features = extractor(audio)
        assert torch.isfinite(features).all()
        assert features.abs().max() < 10  # whisper's scale: roughly unit range, not dB


@pytest.mark.parametrize("name", NAMES)
def test_a_clip_at_minus_15_and_minus_35_dbfs_gives_the_same_features(name: str) -> None:
    extractor = AudioFeatureExtractor(FeatureConfig.for_front_end(name))
    audio = speech(2.0, seed=3)
    loud, quiet = extractor(at_level(audio, -15.0)), extractor(at_level(audio, -35.0))
    torch.testing.assert_close(loud, quiet, atol=LEVEL_TOLERANCE, rtol=0)
    # Without the level normalisation the two would differ: the test has teeth.
    raw = AudioFeatureExtractor(dataclasses.replace(extractor.config, target_level_dbfs=None))
    assert (raw(at_level(audio, -15.0)) - raw(at_level(audio, -35.0))).abs().max() > 0.1


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_json_and_passes_its_reference_check(name: str, tmp_path: Path) -> None:
    config = FeatureConfig.for_front_end(name).with_reference()
    assert len(config.reference_bin_means) == DEFAULT_ROWS[name]
    config.save(tmp_path / "f.json")
    loaded = FeatureConfig.load(tmp_path / "f.json")
    assert loaded == config and loaded.reference_bin_means == config.reference_bin_means
    loaded.check_compatible()


@pytest.mark.parametrize("name", NAMES)
def test_reference_check_catches_drift_of_each_front_end(name: str) -> None:
    config = FeatureConfig.for_front_end(name).with_reference()
    drifted = dataclasses.replace(config, reference_bin_means=tuple(v + 0.01 for v in config.reference_bin_means))
    with pytest.raises(FeatureConfigMismatch, match="different features"):
        drifted.check_compatible()


def test_reference_check_tells_the_mel_from_the_linear_front_end() -> None:
    """A checkpoint's features must be the ones it was trained on, not another front end's of the same height."""
    mel = FeatureConfig().with_reference()
    relabelled = dataclasses.replace(mel, extractor=LINEAR_LOG_SPEC)
    with pytest.raises(FeatureConfigMismatch, match="different features"):
        relabelled.check_compatible()


@pytest.mark.parametrize(
    "change",
    [
        {"extractor": "cqt"},
        {"extractor": "mfcc"},
        {"extractor": LINEAR_LOG_SPEC, "n_mels": 64},
        {"extractor": LINEAR_LOG_SPEC, "n_mels": 201},
        {"extractor": LFCC, "n_mels": 80},
        {"extractor": LFCC, "n_mels": 20},
        {"extractor": WHISPER_LOG_MEL, "n_mels": 60},
        {"extractor": LFCC, "n_mels": 60, "hop_length": 320},
        {"extractor": LINEAR_LOG_SPEC, "sample_rate": 22_050},
    ],
)
def test_validate_refuses_unknown_front_ends_and_wrong_row_counts(change: dict) -> None:
    config = dataclasses.replace(FeatureConfig(), **change)
    with pytest.raises(FeatureConfigMismatch, match="unsupported feature config"):
        config.validate()
    with pytest.raises(FeatureConfigMismatch, match="unsupported feature config"):
        AudioFeatureExtractor(config)


def test_an_unknown_front_end_name_is_refused_with_the_choices() -> None:
    with pytest.raises(FeatureConfigMismatch, match="lfcc"):
        FeatureConfig.for_front_end("cqt")


def test_whisper_scale_on_whisper_framing_reproduces_whisper_log_mel() -> None:
    """The linear front end shares whisper's STFT and normalisation; only the filterbank differs."""
    audio = torch.from_numpy(normalize_level(speech(1.3), -25.0))
    filters = whisper.audio.mel_filters("cpu", 80)
    ours = whisper_scale(torch.clamp(filters @ power_spectrogram(audio), min=1e-10).log10())
    torch.testing.assert_close(ours, whisper.log_mel_spectrogram(audio, n_mels=80), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bins", [80, 128])
def test_linear_bands_are_equal_width_and_per_hz_like_whisper_mel_filters(bins: int) -> None:
    weights = linear_band_weights(bins)
    assert weights.shape == (bins, 201)
    # Every STFT bin is shared out completely (weights tile 0..8 kHz) and each band sums to 1/40, as mel's do.
    torch.testing.assert_close(weights.sum(dim=1), torch.full((bins,), 1 / 40), atol=1e-6, rtol=0)
    coverage = weights.sum(dim=0) * 8000 / bins
    torch.testing.assert_close(coverage[1:-1], torch.ones(199), atol=1e-5, rtol=0)
    # White noise sits at the same level on both axes.
    noise = np.random.default_rng(1).standard_normal(6 * SAMPLE_RATE).astype(np.float32) * 0.1
    mel = AudioFeatureExtractor(FeatureConfig())(noise).mean()
    linear = AudioFeatureExtractor(dataclasses.replace(FeatureConfig.for_front_end(LINEAR_LOG_SPEC), n_mels=bins))
    assert float(linear(noise).mean()) == pytest.approx(float(mel), abs=0.02)


def test_linear_front_end_resolves_high_frequencies_that_mel_blurs() -> None:
    """Two tones 200 Hz apart near 6 kHz: two peaks on the 100 Hz linear axis, one on mel's ~230 Hz-spaced bands."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    tones = (0.3 * (np.sin(2 * np.pi * 6050 * t) + np.sin(2 * np.pi * 6250 * t))).astype(np.float32)

    def peaks(name: str) -> int:
        profile = AudioFeatureExtractor(FeatureConfig.for_front_end(name))(tones).mean(dim=1)
        inner = profile[1:-1]
        return int(((inner > profile[:-2]) & (inner > profile[2:]) & (inner > profile.max() - 0.1)).sum())

    assert peaks(LINEAR_LOG_SPEC) == 2
    assert peaks(WHISPER_LOG_MEL) == 1


def test_the_samples_front_end_is_the_log_mel_above_the_level_normalised_audio() -> None:
    audio = speech(1.2345, seed=2)
    config = FeatureConfig.for_front_end(WHISPER_LOG_MEL_SAMPLES)
    features = AudioFeatureExtractor(config)(audio)
    frames = len(audio) // 160
    torch.testing.assert_close(features[:80], AudioFeatureExtractor(FeatureConfig())(audio), atol=0, rtol=0)
    # Column t holds samples 160t..160t+159: read column by column, the rows give back the audio.
    expected = normalize_level(audio, config.target_level_dbfs)[: frames * 160]
    np.testing.assert_array_equal(features[80:].T.reshape(-1).numpy(), expected)


def test_lfcc_rows_are_torchaudio_coefficients_then_deltas_then_double_deltas() -> None:
    audio = torch.from_numpy(normalize_level(speech(1.2), -25.0))
    features = AudioFeatureExtractor(FeatureConfig.for_front_end(LFCC))(audio.numpy())
    assert features.shape[0] == LFCC_ROWS == 3 * LFCC_COEFFICIENTS
    transform = lfcc_transform()
    assert (transform.n_filter, transform.n_lfcc) == (LFCC_FILTERS, LFCC_COEFFICIENTS)
    assert (transform.Spectrogram.n_fft, transform.Spectrogram.hop_length) == (400, 160)
    # The static rows are the DCT of whisper-scaled log energies of torchaudio's linear filters (c0 as their mean).
    energies = transform.filter_mat.T @ transform.Spectrogram(audio)
    scaled = whisper_scale(torch.clamp(energies, min=1e-10).log10())
    cepstra = transform.dct_mat.T @ scaled
    cepstra[0] /= math.sqrt(LFCC_FILTERS)
    torch.testing.assert_close(features[:LFCC_COEFFICIENTS], cepstra[:, :-1], atol=1e-4, rtol=0)
    deltas = torchaudio.functional.compute_deltas(cepstra)
    torch.testing.assert_close(features[LFCC_COEFFICIENTS : 2 * LFCC_COEFFICIENTS], deltas[:, :-1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("architecture", ["cnn", "improved"])
def test_a_tiny_model_for_each_front_end_runs_a_forward_pass(name: str, architecture: str) -> None:
    extractor = AudioFeatureExtractor(FeatureConfig.for_front_end(name))
    config = ModelConfig(architecture=architecture, n_mels=extractor.config.n_mels, hidden=8, channels=(4, 8))
    model = build_detector(config).eval()
    batch, lengths = pad_batch([extractor(speech(1.0)), extractor(speech(0.37, seed=1))])
    with torch.no_grad():
        probabilities = model(batch, lengths)
    assert probabilities.shape == (2,)
    assert torch.isfinite(probabilities).all() and ((probabilities > 0) & (probabilities < 1)).all()


@pytest.mark.parametrize("name", [LINEAR_LOG_SPEC, LFCC])
def test_a_checkpoint_of_each_front_end_serves_through_the_same_path(name: str, tmp_path: Path) -> None:
    feature_config = FeatureConfig.for_front_end(name)
    config = ModelConfig(n_mels=feature_config.n_mels, hidden=8, channels=(4, 8))
    model = build_detector(config)
    save_checkpoint(tmp_path / name, model, config, feature_config, {"version": "0.1"})
    served = AudioDetector.from_checkpoint(tmp_path / name)  # runs the reference check
    assert served.extractor.config == feature_config
    audio = speech(7.5)
    in_memory = AudioDetector(model, feature_config).score_waveforms([audio])[0]
    assert served.score_waveforms([audio])[0] == in_memory

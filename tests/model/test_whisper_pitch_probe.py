"""The Whisper + pitch probe: CREPE's frames line up with Whisper's, each 6 s block is embedded alone,
and the architecture brings its own front end."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.detectors import ModelConfig, WhisperPitchProbeDetector, build_detector
from model.features import WHISPER_LOG_MEL_SAMPLES, AudioFeatureExtractor, FeatureConfig
from model.pitch_encoder import EMBEDDING_WIDTH, frame_audio, pretrained_pitch_encoder
from model.whisper_encoder import pretrained_encoder
from tests.model.conftest import voiced
from training.train import TrainConfig

RATE = 16_000
EXTRACTOR = AudioFeatureExtractor(FeatureConfig.for_front_end(WHISPER_LOG_MEL_SAMPLES))


@pytest.fixture(scope="module")
def probe() -> WhisperPitchProbeDetector:
    torch.manual_seed(0)
    return build_detector(ModelConfig(architecture="whisper_pitch_probe")).eval()


def embed(probe: WhisperPitchProbeDetector, features: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return probe.embed(features[None], torch.tensor([features.shape[-1]]))[0][0]


def test_the_head_reads_whisper_and_pitch_statistics(probe: WhisperPitchProbeDetector) -> None:
    width = pretrained_encoder().width + EMBEDDING_WIDTH
    assert probe.pooled_mean.shape == (2 * width,) and probe.head[0].in_features == 2 * width


@pytest.mark.parametrize("hop_frames", [4, 8, 20])
def test_each_pitch_frame_fills_the_whisper_frames_of_its_hop(hop_frames: int) -> None:
    probe = build_detector(ModelConfig(architecture="whisper_pitch_probe", pitch_hop_frames=hop_frames)).eval()
    features = EXTRACTOR(voiced(2.5, RATE, seed=1)[:, 0])  # 250 frames: one block
    embedding = embed(probe, features)
    assert embedding.shape == (pretrained_encoder().width + EMBEDDING_WIDTH, 125)
    audio = features[80:].T.reshape(1, -1)
    with torch.inference_mode():
        pitch = pretrained_pitch_encoder()(frame_audio(audio, hop_frames * 160)[0])  # every hop_frames x 10 ms
    repeat = hop_frames // 2
    for offset in range(repeat):
        columns = embedding[-EMBEDDING_WIDTH:, offset::repeat]
        torch.testing.assert_close(columns, pitch[: columns.shape[-1]].T, atol=1e-5, rtol=1e-5)


def test_the_pitch_hop_must_fit_whisper_frames_and_blocks() -> None:
    for hop_frames in (3, 7, 16):  # odd, or not a divisor of the 600-frame block
        with pytest.raises(ValueError, match="pitch_hop_frames"):
            build_detector(ModelConfig(architecture="whisper_pitch_probe", pitch_hop_frames=hop_frames))
    identities = {
        build_detector(ModelConfig(architecture="whisper_pitch_probe", pitch_hop_frames=h)).trunk_identity
        for h in (4, 8)
    }
    assert len(identities) == 2  # cached pooled vectors of one hop are never read for another


def test_a_block_is_embedded_as_if_the_clip_ended_there(probe: WhisperPitchProbeDetector) -> None:
    features = EXTRACTOR(voiced(13.0, RATE, seed=2)[:, 0])
    whole = embed(probe, features)
    first, second = embed(probe, features[:, :600]), embed(probe, features[:, 600:1200])
    torch.testing.assert_close(whole[:, :300], first, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(whole[:, 300:600], second, atol=1e-3, rtol=1e-4)


def test_spectrogram_only_features_are_refused(probe: WhisperPitchProbeDetector) -> None:
    with pytest.raises(ValueError, match="whisper_log_mel_samples front end"):
        probe(torch.zeros(1, 80, 100), torch.tensor([100]))


def test_the_architecture_brings_its_front_end() -> None:
    config = TrainConfig(architecture="whisper_pitch_probe")
    assert config.feature_config() == FeatureConfig.for_front_end(WHISPER_LOG_MEL_SAMPLES)
    assert TrainConfig(architecture="whisper_probe").feature_config() == FeatureConfig()
    with pytest.raises(SystemExit, match="reads the whisper_log_mel_samples front end, not lfcc"):
        dataclasses.replace(config, front_end="lfcc").feature_config()

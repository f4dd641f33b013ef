"""Waveform augmentations: seeded, length-keeping, finite; codec round trips; chains; the variant cache; training."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import training.train as train_module
from model.audio import SAMPLE_RATE, decode_audio
from model.features import FeatureConfig
from model.signals import speech_like
from training.augment import (
    CODECS,
    AdditiveNoise,
    BandLimit,
    Codec,
    CodecRoundTrip,
    ConvolutiveNoise,
    Gain,
    ImpulsiveNoise,
    SpeedChange,
    StationaryNoise,
    align,
    augmented_copies,
    available_codecs,
    codec_round_trip,
    default_settings,
    draw_chain,
    ffmpeg_encoders,
    fit_length,
)
from training.dataset import AudioDataset, FeatureCache, LengthBucketSampler
from training.embedded.channel import PEAK_CEILING
from training.manifest import read_manifest
from training.train import TrainConfig, train

CLIP_SAMPLES = 24_001  # an odd length: 1.5 s and a sample, so nothing lines up with a codec frame by luck
AUGMENTATIONS = {
    "convolutive": ConvolutiveNoise(orders=1),
    "nonlinear": ConvolutiveNoise(),
    "impulsive": ImpulsiveNoise(),
    "stationary": StationaryNoise(),
    "noise": AdditiveNoise(),
    "band": BandLimit(),
    "gain": Gain(),
    "speed": SpeedChange(),
    "codec": CodecRoundTrip(available_codecs()),
}


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return 0.5 * speech_like(CLIP_SAMPLES / SAMPLE_RATE, seed=3)[:CLIP_SAMPLES]


def relative_difference(out: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(out - reference) / np.linalg.norm(reference))


def level_db(samples: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(samples.astype(np.float64) ** 2)))


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_each_augmentation_is_seeded_keeps_length_and_changes_the_signal(name: str, clip: np.ndarray) -> None:
    augmentation = AUGMENTATIONS[name]
    first = augmentation(clip, np.random.default_rng(1))
    assert first.shape == clip.shape and first.dtype == np.float32 and np.isfinite(first).all()
    assert np.array_equal(first, augmentation(clip, np.random.default_rng(1)))
    assert not np.allclose(first, augmentation(clip, np.random.default_rng(2)), atol=1e-4)
    assert relative_difference(first, clip) > 1e-3
    assert np.array_equal(clip, 0.5 * speech_like(CLIP_SAMPLES / SAMPLE_RATE, seed=3)[:CLIP_SAMPLES])  # untouched


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_silence_and_tiny_clips_stay_finite(name: str) -> None:
    for samples in (np.zeros(SAMPLE_RATE // 2, dtype=np.float32), np.full(1_601, 1e-7, dtype=np.float32)):
        out = AUGMENTATIONS[name](samples, np.random.default_rng(0))
        assert out.shape == samples.shape and np.isfinite(out).all()


def test_gain_stays_within_six_db_and_never_clips(clip: np.ndarray) -> None:
    loud = clip * (0.95 / np.max(np.abs(clip)))
    changes = []
    for seed in range(40):
        for source in (clip, loud):
            out = Gain()(source, np.random.default_rng(seed))
            change = level_db(out) - level_db(source)
            assert -6.0 - 1e-6 <= change <= 6.0 + 1e-6
            assert np.max(np.abs(out)) <= PEAK_CEILING + 1e-6
            changes.append(change)
    assert min(changes) < -3 and max(changes) > 3  # the whole range is drawn


def test_noise_lands_at_the_drawn_snr_range(clip: np.ndarray) -> None:
    for seed in range(10):
        out = AdditiveNoise(snr_db=(20.0, 20.0))(clip, np.random.default_rng(seed))
        snr = level_db(clip) - level_db(out - clip)
        assert snr == pytest.approx(20.0, abs=0.01)


def test_band_limit_removes_the_top_band(clip: np.ndarray) -> None:
    noisy = clip + 0.05 * np.random.default_rng(0).standard_normal(clip.size).astype(np.float32)
    out = BandLimit(lowpass_hz=(3400.0, 3400.0), highpass_probability=0.0)(noisy, np.random.default_rng(0))
    spectrum_in, spectrum_out = np.abs(np.fft.rfft(noisy)), np.abs(np.fft.rfft(out))
    top = np.fft.rfftfreq(noisy.size, 1 / SAMPLE_RATE) > 5_000
    assert np.sum(spectrum_out[top] ** 2) < 3e-3 * np.sum(spectrum_in[top] ** 2)  # -25 dB above 5 kHz


def test_speed_change_moves_the_pitch_by_five_to_ten_percent() -> None:
    tone = np.sin(2 * np.pi * 500 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32) * 0.5
    for seed in range(6):
        out = SpeedChange()(tone, np.random.default_rng(seed))
        window = slice(0, SAMPLE_RATE // 2)  # before any mirrored padding
        peak_hz = np.argmax(np.abs(np.fft.rfft(out[window]))) * 2
        assert 0.045 <= abs(peak_hz / 500 - 1) <= 0.105


@pytest.mark.parametrize("codec", available_codecs(), ids=[c.name for c in available_codecs()])
def test_codec_round_trips_return_the_input_length_at_16_khz(codec: Codec, clip: np.ndarray) -> None:
    for rate in codec.rates:
        out = codec_round_trip(clip, codec, rate, codec.options[0])  # the lowest bitrate or quality
        assert out.shape == clip.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert abs(level_db(out) - level_db(clip)) < 6.0
        assert relative_difference(out, clip) > 1e-3
        assert np.array_equal(out, codec_round_trip(clip, codec, rate, codec.options[0]))  # bit-exact


def test_missing_encoders_are_left_out_of_the_chain() -> None:
    names = {codec.name for codec in available_codecs()}
    assert {"mp3", "mulaw"} <= names
    assert names == {codec.name for codec in CODECS if codec.encoder in ffmpeg_encoders()}
    fake = Codec("none", "no-such-encoder", "null", "null", (8_000,))
    assert available_codecs((*CODECS, fake)) == available_codecs()


def test_align_undoes_a_codec_delay_and_restores_the_length(clip: np.ndarray) -> None:
    delayed = np.concatenate([np.zeros(529, dtype=np.float32), clip, np.zeros(77, dtype=np.float32)])
    np.testing.assert_array_equal(align(delayed, clip, 4_000), clip)
    short = clip[: clip.size - 100]
    assert fit_length(short, clip.size).shape == clip.shape
    np.testing.assert_array_equal(fit_length(short, clip.size)[-100:], short[-2:-102:-1])  # mirrored, no step


def test_chains_are_deterministic_and_varied(clip: np.ndarray) -> None:
    settings = default_settings()
    order = [name for name, _, _ in settings.steps]
    labels = set()
    for seed in range(60):
        chain = draw_chain(np.random.default_rng(seed))
        assert chain == draw_chain(np.random.default_rng(seed))
        names = [name for name, _ in chain.steps]
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
        assert names == sorted(names, key=order.index)  # applied in signal order (codec last)
        labels.add(chain.label)
    assert len(labels) > 20 and {len(label.split("+")) for label in labels} == {1, 2, 3}

    def augmented(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return draw_chain(rng)(clip, rng)

    outputs = [augmented(seed) for seed in (5, 5, 6)]
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    assert all(out.shape == clip.shape and np.max(np.abs(out)) <= PEAK_CEILING + 1e-6 for out in outputs)


@pytest.fixture(scope="module")
def train_rows(toy_manifest: Path) -> list:
    rows = [row for row in read_manifest(toy_manifest) if row.split == "train"]
    return [next(r for r in rows if r.is_real), next(r for r in rows if not r.is_real)]


def test_variants_are_made_once_for_both_classes_and_reused(train_rows: list, tmp_path: Path) -> None:
    variants = augmented_copies(train_rows, 2, tmp_path / "a")
    assert [len(paths) for paths in variants] == [2, 2]
    made = [path for paths in variants for path in paths]
    assert len(set(made)) == 4 and sorted(made) == sorted((tmp_path / "a").glob("*.flac"))
    for row, paths in zip(train_rows, variants, strict=True):
        source = decode_audio(row.path)
        for path in paths:
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, source.size)
            assert not np.allclose(decode_audio(path), source, atol=1e-3)
    stamps = [path.stat().st_mtime_ns for path in made]
    assert augmented_copies(train_rows, 2, tmp_path / "a") == variants
    assert [path.stat().st_mtime_ns for path in made] == stamps
    again = augmented_copies(train_rows, 1, tmp_path / "b")  # same content, copy and seed: same variant
    assert [p.name for p in again[0]] == [variants[0][0].name]
    assert np.array_equal(sf.read(again[0][0])[0], sf.read(variants[0][0])[0])
    other_seed = augmented_copies(train_rows, 1, tmp_path / "c", seed=1)
    other_settings = augmented_copies(
        train_rows, 1, tmp_path / "d", settings=dataclasses.replace(default_settings(), lengths=(1.0,))
    )
    assert other_seed[0][0].name != variants[0][0].name != other_settings[0][0].name


def test_dataset_reads_one_version_per_access_with_the_generator(toy_manifest: Path, tmp_path: Path) -> None:
    rows = [row for row in read_manifest(toy_manifest) if row.split == "train"][:4]
    versions = [[row.path, *paths] for row, paths in zip(rows, augmented_copies(rows, 2, tmp_path), strict=True)]
    cache = FeatureCache(None, FeatureConfig())

    def picks(seed: int) -> list[Path]:
        dataset = AudioDataset(rows, cache, versions=versions, generator=torch.Generator().manual_seed(seed))
        return [dataset.pick(i) for _ in range(20) for i in range(len(rows))]

    assert picks(0) == picks(0) != picks(1)
    assert set(picks(0)) == {path for paths in versions for path in paths}
    dataset = AudioDataset(rows, cache, versions=versions)
    assert dataset.frames() == [cache.get(path).shape[-1] for path in (v[1] for v in versions)]  # same length
    with pytest.raises(ValueError, match="version lists"):
        AudioDataset(rows, cache, versions=versions[:2])


def test_training_reads_variants_and_keeps_the_epoch_length(
    toy_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_picks: list[Path] = []
    other_picks: list[Path] = []
    batches: list[int] = []

    class SpyDataset(AudioDataset):
        def pick(self, index: int) -> Path:
            path = super().pick(index)
            (train_picks if self.random_crop else other_picks).append(path)
            return path

    class SpySampler(LengthBucketSampler):
        def __iter__(self):
            for batch in super().__iter__():
                if self.shuffle:
                    batches.append(len(batch))
                yield batch

    monkeypatch.setattr(train_module, "AudioDataset", SpyDataset)
    monkeypatch.setattr(train_module, "LengthBucketSampler", SpySampler)
    epochs, batch_size = 2, 8
    config = TrainConfig(
        manifest=str(toy_manifest), out=str(tmp_path / "run"), epochs=epochs, patience=epochs, batch_size=batch_size,
        cache_dir=str(tmp_path / "cache"), augmented_dir=str(tmp_path / "augmented"), augmented_copies=1,
        vocoded_copies=0, threads=2, members=1, evaluate=False,
    )  # fmt: skip
    assert TrainConfig().augmented_copies == 0  # off by default
    metadata = train(config)
    rows = read_manifest(toy_manifest)
    train_paths = {row.path for row in rows if row.split == "train"}
    made = set((tmp_path / "augmented").glob("*.flac"))
    assert len(made) == len(train_paths)  # one variant per training clip, real and fake
    assert len(train_picks) == epochs * len(train_paths)  # every clip once per epoch, in one of its versions
    assert made & set(train_picks) and train_paths & set(train_picks)
    assert set(train_picks) <= made | train_paths
    assert other_picks and set(other_picks) <= {row.path for row in rows if row.split == "dev"}  # dev: never
    assert len(batches) == epochs * math.ceil(len(train_paths) / batch_size) and sum(batches) == len(train_picks)
    assert metadata["train_config"]["augmented_copies"] == 1

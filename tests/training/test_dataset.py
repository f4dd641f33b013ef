"""AudioDataset and collate_fn: dynamic padding, true lengths, and a cache that is never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.features import FeatureConfig
from tests.model.conftest import voiced
from training.dataset import (
    WHISPER_UNITS_PER_DB,
    AudioDataset,
    FeatureCache,
    LengthBucketSampler,
    Mixup,
    RandomEQ,
    RandomFrequencyWarp,
    RandomShortCrop,
    SpecAugment,
    collate_fn,
)
from training.manifest import ManifestError, ManifestRow, read_manifest


def test_collate_pads_to_the_longest_clip_of_the_batch_only() -> None:
    batch = [(torch.ones(80, 7), 1.0), (torch.full((80, 3), 2.0), 0.0)]
    features, lengths, labels = collate_fn(batch)
    assert features.shape == (2, 80, 7)
    assert lengths.tolist() == [7, 3]
    assert labels.tolist() == [1.0, 0.0]
    assert torch.count_nonzero(features[1, :, 3:]) == 0
    assert torch.equal(features[1, :, :3], torch.full((80, 3), 2.0))


def test_dataset_labels_and_features(toy_manifest: Path, tmp_path: Path) -> None:
    rows = read_manifest(toy_manifest)[:4]
    dataset = AudioDataset(rows, FeatureCache(tmp_path, FeatureConfig()))
    features, label = dataset[0]
    assert features.shape[0] == 80
    assert label == (1.0 if rows[0].is_real else 0.0)


def test_long_clips_are_cropped_at_random_in_training_and_centred_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, voiced(3.0, 16_000)[:, 0], 16_000)
    cache = FeatureCache(None, FeatureConfig())
    full = cache.get(path)
    rows = [ManifestRow(path, "real")]
    centred = AudioDataset(rows, cache, max_frames=100)[0][0]
    assert torch.equal(centred, full[:, 100:200])
    crops = {
        AudioDataset(rows, cache, 100, True, torch.Generator().manual_seed(s))[0][0][0, 0].item() for s in range(5)
    }
    assert len(crops) > 1


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, voiced(1.0, 16_000)[:, 0], 16_000)
    first = FeatureCache(tmp_path / "cache", FeatureConfig()).get(path)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = FeatureCache(tmp_path / "cache", FeatureConfig()).get(path)
    assert torch.equal(first, again) and len(list((tmp_path / "cache").glob("*.pt"))) == 1
    sf.write(path, voiced(1.0, 16_000, seed=9)[:, 0] * 0.1 + np.float32(0.01), 16_000)
    changed = FeatureCache(tmp_path / "cache", FeatureConfig()).get(path)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    assert not torch.equal(first, changed)


def test_cache_key_depends_on_the_feature_config(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, voiced(1.0, 16_000)[:, 0], 16_000)
    FeatureCache(tmp_path / "cache", FeatureConfig()).get(path)
    wide = FeatureCache(tmp_path / "cache", FeatureConfig(n_mels=128)).get(path)
    assert wide.shape[0] == 128
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


@pytest.mark.parametrize("bad", ["path,label\nx.wav,maybe\n", "path,split\nx.wav,train\n", "path,label,split\n"])
def test_malformed_manifests_are_refused_with_the_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(bad)
    with pytest.raises(ManifestError, match=r"m\.csv"):
        read_manifest(path)


def test_length_buckets_cover_every_clip_once_and_cut_padding() -> None:
    lengths = torch.randint(10, 600, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = LengthBucketSampler(lengths, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) <= 16 for batch in batches)

    def padded_frames(batch_list: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batch_list)

    plain = [list(range(i, min(i + 16, 1000))) for i in range(0, 1000, 16)]
    assert padded_frames(batches) < 0.75 * padded_frames(plain)
    again = list(LengthBucketSampler(lengths, 16, True, torch.Generator().manual_seed(1)))
    assert again == batches


def test_unshuffled_buckets_follow_length() -> None:
    batches = list(LengthBucketSampler([5, 1, 4, 2, 3], batch_size=2, shuffle=False))
    assert batches == [[1, 3], [4, 2], [0]]


def test_spec_augment_masks_bands_and_spans_with_the_clip_mean() -> None:
    features = torch.arange(80 * 200, dtype=torch.float32).reshape(80, 200)
    masked = SpecAugment(freq_masks=1, max_freq_width=8, time_masks=1, max_time_fraction=0.1)(
        features, torch.Generator().manual_seed(3)
    )
    changed = masked != features
    assert changed.any() and not torch.equal(features, masked)
    assert torch.allclose(masked[changed], features.mean())
    assert changed.all(dim=1).sum() <= 8  # whole masked bands: at most one mask of 8
    assert torch.equal(features, torch.arange(80 * 200, dtype=torch.float32).reshape(80, 200))  # input untouched


def test_random_eq_adds_one_smooth_bounded_curve_per_clip() -> None:
    features = torch.randn(80, 120)
    generator = torch.Generator().manual_seed(5)
    curves = [RandomEQ(max_db=6.0)(features, generator) - features for _ in range(20)]
    for curve in curves:
        assert torch.allclose(curve, curve[:, :1].expand_as(curve), atol=1e-6)  # same gain in every frame
        assert curve.abs().max() <= 6.0 * WHISPER_UNITS_PER_DB + 1e-6
        assert curve[:, 0].diff().abs().max() < 0.05  # smooth across neighbouring bands
    spread = torch.stack([c[:, 0] for c in curves]).std(dim=0)
    assert spread.min() > 0  # clips get different curves


def test_frequency_warp_moves_a_formant_by_the_drawn_factor_and_nothing_else() -> None:
    features = torch.zeros(80, 50)
    features[40] = 1.0  # one bright band
    generator = torch.Generator().manual_seed(0)
    peaks = set()
    for _ in range(30):
        warped = RandomFrequencyWarp(max_warp=0.1)(features, generator)
        assert warped.shape == features.shape
        assert torch.allclose(warped, warped[:, :1].expand_as(warped))  # same warp in every frame
        peak = int(warped[:, 0].argmax())
        assert 36 <= peak <= 44  # 40 x (1 ± 0.1)
        peaks.add(peak)
    assert len(peaks) > 3  # different clips, different voices
    assert torch.equal(RandomFrequencyWarp(max_warp=0.0)(features, generator), features)


def test_short_crop_keeps_a_contiguous_span_of_at_least_the_minimum_for_its_share_of_clips() -> None:
    features = torch.arange(300, dtype=torch.float32).expand(80, 300)  # each frame holds its index
    generator = torch.Generator().manual_seed(0)
    crop = RandomShortCrop(probability=0.5, min_frames=50)
    lengths = []
    for _ in range(400):
        cropped = crop(features, generator)
        frames = cropped.shape[-1]
        start = int(cropped[0, 0])
        assert 50 <= frames <= 300
        assert torch.equal(cropped, features[:, start : start + frames])  # one contiguous span, all bands
        lengths.append(frames)
    shortened = sum(n < 300 for n in lengths) / len(lengths)
    assert 0.4 < shortened < 0.6
    assert min(lengths) < 100  # spans near the minimum occur
    short_clip = features[:, :40]
    assert torch.equal(crop(short_clip, generator), short_clip)  # never cut below the minimum
    assert torch.equal(RandomShortCrop(probability=0.0)(features, generator), features)


def test_mixup_blends_features_and_labels_in_the_same_proportion() -> None:
    # Each clip's features are its label everywhere, so a correct blend keeps them equal.
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    lengths = torch.tensor([120, 100, 110, 90, 120, 100, 105, 95])
    features = targets[:, None, None].expand(8, 80, 120).clone()
    mixed, mixed_lengths, mixed_targets = Mixup(alpha=0.4)(features, lengths, targets, np.random.default_rng(0))
    assert mixed.shape == features.shape
    assert torch.allclose(mixed, mixed_targets[:, None, None].expand_as(mixed))
    assert ((mixed_targets > 0) & (mixed_targets < 1)).any()  # some clips really are blends of both classes
    assert torch.all(mixed_lengths >= lengths) and set(mixed_lengths.tolist()) <= set(lengths.tolist())
    again = Mixup(alpha=0.4)(features, lengths, targets, np.random.default_rng(0))
    assert torch.equal(again[0], mixed) and torch.equal(again[2], mixed_targets)  # seeded

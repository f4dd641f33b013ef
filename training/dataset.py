"""The seed's AudioDataset and collate_fn, over a manifest, with an on-disk feature cache.

Features come from model.features (the extractor serving uses). Each clip's full log-mel is
cached under a key made of the file's identity and the feature config, so changing either
recomputes it and nothing stale is ever read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm

from model.audio import decode_audio
from model.features import AudioFeatureExtractor, FeatureConfig, pad_batch
from training import distributed
from training.manifest import ManifestRow

FRAMES_PER_SECOND = 100  # whisper hop: 160 samples at 16 kHz
BUCKET_BATCHES = 50  # batches per sorted pool: similar lengths together, order still random
WHISPER_UNITS_PER_DB = 1 / 40  # whisper's log-mel is log10(power) / 4: 10 dB is one log10 step

Augmentation = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


@dataclass(frozen=True)
class SpecAugment:
    """Training-only masking of random mel bands and time spans (SpecAugment), filled with the
    clip's mean, so the detector cannot lean on any single band or moment."""

    freq_masks: int = 2
    max_freq_width: int = 8
    time_masks: int = 2
    max_time_fraction: float = 0.1

    def __call__(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        features = features.clone()
        fill = features.mean()
        bins, frames = features.shape

        def draw(limit: int) -> int:
            return int(torch.randint(max(1, limit) + 1, (1,), generator=generator))

        for _ in range(self.freq_masks):
            width = draw(self.max_freq_width)
            start = draw(bins - width)
            features[start : start + width, :] = fill
        for _ in range(self.time_masks):
            width = draw(int(self.max_time_fraction * frames))
            start = draw(frames - width)
            features[:, start : start + width] = fill
        return features


@dataclass(frozen=True)
class RandomEQ:
    """Training-only random equaliser: a smooth gain curve over the mel bands, up to ±max_db.

    Every real speaker in the embedded set is one microphone and room; a new speaker brings a
    new frequency response. Colouring each clip differently keeps the detector from learning
    "this microphone is human" and pushes it toward cues that survive a change of microphone.
    """

    max_db: float = 6.0
    components: int = 3  # cosine shapes over the band axis: tilt, bowl, wave

    def __call__(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        bins = features.shape[0]
        position = torch.linspace(0.0, math.pi, bins)
        amplitudes = torch.rand(self.components, generator=generator) * 2 - 1
        curve = sum(a * torch.cos((k + 1) * position) for k, a in enumerate(amplitudes))
        curve = curve / max(float(curve.abs().max()), 1e-6) * float(torch.rand(1, generator=generator))
        return features + (curve * self.max_db * WHISPER_UNITS_PER_DB)[:, None]


@dataclass(frozen=True)
class RandomFrequencyWarp:
    """Training-only vocal-tract-length perturbation: stretch the mel axis by up to ±max_warp.

    A new speaker's formants sit a little higher or lower than any training voice; stretching
    each clip's spectrum by a random factor shows the detector more voices than the data has.
    """

    max_warp: float = 0.1

    def __call__(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        bins = features.shape[0]
        factor = 1.0 + (float(torch.rand(1, generator=generator)) * 2 - 1) * self.max_warp
        source = (torch.arange(bins, dtype=features.dtype) / factor).clamp(max=bins - 1)
        low = source.floor().long()
        high = (low + 1).clamp(max=bins - 1)
        weight = (source - low)[:, None]
        return features[low] * (1 - weight) + features[high] * weight


@dataclass(frozen=True)
class RandomShortCrop:
    """Training-only: now and then keep only a random stretch of a clip, down to min_frames.

    Held-out errors gather in clips of one or two seconds (single syllables and words from
    unseen speakers), while most training speech comes in longer lines. Cutting random short
    spans out of clips of every source and both classes shows the detector little evidence
    from every speaker, not only from those who happened to record short clips.
    """

    probability: float = 0.3
    min_frames: int = 50

    def __call__(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        frames = features.shape[-1]
        if float(torch.rand(1, generator=generator)) >= self.probability or frames <= self.min_frames:
            return features
        length = int(torch.randint(self.min_frames, frames + 1, (1,), generator=generator))
        start = int(torch.randint(frames - length + 1, (1,), generator=generator))
        return features[:, start : start + length]


@dataclass(frozen=True)
class Mixup:
    """Training-only: blend each clip of a batch with another one, labels in the same proportion.

    The members reach a training loss near 0.04 while dev loss stays near 0.1: they memorise
    the training voices. Mixup (Zhang et al., ICLR 2018) asks for scores that vary smoothly
    between clips, which may leave less room for keying on one voice; on the embedded dataset
    it did not pay (README). Batches hold clips of similar length, so the blend mostly meets
    valid frames; the longer length is kept.
    """

    alpha: float = 0.2

    def __call__(
        self, features: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        partner = torch.from_numpy(rng.permutation(len(targets)))
        weight = torch.from_numpy(rng.beta(self.alpha, self.alpha, len(targets))).to(features.dtype)
        mixed = features * weight[:, None, None] + features[partner] * (1 - weight[:, None, None])
        mixed_targets = targets * weight + targets[partner] * (1 - weight)
        return mixed, torch.maximum(lengths, lengths[partner]), mixed_targets


class FeatureCache:
    """Full-clip log-mel features on disk (and in memory once read), keyed by file and config."""

    def __init__(self, directory: Path | None, config: FeatureConfig) -> None:
        self.directory = Path(directory) if directory else None
        self.extractor = AudioFeatureExtractor(config)
        settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "reference_bin_means"}
        if not config.vad_trim:  # off, it changes nothing: entries cached before the option stay valid
            del settings["vad_trim"]
        self.config_key = json.dumps(settings, sort_keys=True)
        self.memory: dict[Path, torch.Tensor] = {}

    def key(self, path: Path) -> str:
        """The cache entry's name: the file's identity (path, size, mtime) and the feature config."""
        stat = path.stat()
        identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.config_key}"
        return hashlib.sha1(identity.encode()).hexdigest()

    def get(self, path: Path) -> torch.Tensor:
        path = Path(path)
        if path in self.memory:
            return self.memory[path]
        cached = self.directory / f"{self.key(path)}.pt" if self.directory else None
        if cached is not None and cached.is_file():
            features = torch.load(cached, weights_only=True)
        else:
            features = self.extractor(self.extractor.trim(decode_audio(path)))  # trim: as model.inference does
            if cached is not None:  # under a temporary name, then renamed: another process never reads half a file
                cached.parent.mkdir(parents=True, exist_ok=True)
                temporary = cached.with_name(f".{cached.name}.{os.getpid()}.part")
                torch.save(features.clone(), temporary)
                temporary.replace(cached)
        self.memory[path] = features
        return features

    def fill(self, paths: Sequence[Path], description: str = "features") -> None:
        """Every path's features in memory; distributed, each process first computes its own share
        and then reads what the others wrote (atomic writes make a clip met twice harmless)."""
        distributed.share_first(partial(self._fill, description=description), paths)

    def _fill(self, paths: Sequence[Path], description: str) -> None:
        for path in tqdm(paths, desc=description, unit="clip", leave=False, disable=not distributed.is_main()):
            self.get(path)


class AudioDataset(Dataset):
    """(log-mel (n_mels, frames), label 1.0=real/0.0=fake) per manifest row.

    With `max_frames`, longer clips are cropped to a window: at random when `random_crop`
    (training), centred otherwise, so training sees what serving's windows see. With `versions`
    (training), item i reads one of versions[i] (the clip and its augmented variants, all of the
    clip's length), drawn with the generator on every access: one version per clip and epoch.
    """

    def __init__(
        self,
        rows: Sequence[ManifestRow],
        cache: FeatureCache,
        max_frames: int | None = None,
        random_crop: bool = False,
        generator: torch.Generator | None = None,
        augment: Sequence[Augmentation] = (),
        versions: Sequence[Sequence[Path]] = (),
    ) -> None:
        if versions and len(versions) != len(rows):
            raise ValueError(f"{len(versions)} version lists for {len(rows)} rows")
        self.rows = list(rows)
        self.cache = cache
        self.max_frames = max_frames
        self.random_crop = random_crop
        self.generator = generator
        self.augment = list(augment)
        self.versions = [list(paths) for paths in versions]

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self) -> list[int]:
        """Each item's frame count after cropping (for length bucketing)."""
        lengths = [self.cache.get(row.path).shape[-1] for row in self.rows]
        return [min(n, self.max_frames) if self.max_frames else n for n in lengths]

    def pick(self, index: int) -> Path:
        """The file item `index` reads this time: the row's own, or one of its versions at random."""
        if not self.versions:
            return self.rows[index].path
        choices = self.versions[index]
        return choices[int(torch.randint(len(choices), (1,), generator=self.generator))]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        row = self.rows[index]
        features = self.cache.get(self.pick(index))
        frames = features.shape[-1]
        if self.max_frames and frames > self.max_frames:
            spare = frames - self.max_frames
            start = int(torch.randint(spare + 1, (1,), generator=self.generator)) if self.random_crop else spare // 2
            features = features[:, start : start + self.max_frames]
        for augmentation in self.augment:
            features = augmentation(features, self.generator)
        return features, 1.0 if row.is_real else 0.0


def collate_fn(batch: Sequence[tuple[torch.Tensor, float]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad to the longest clip in this batch only; return (features, lengths, labels)."""
    features, labels = zip(*batch, strict=True)
    padded, lengths = pad_batch(list(features))
    return padded, lengths, torch.tensor(labels, dtype=torch.float32)


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length clips, so padding (and wasted compute) stays small.

    Indices are shuffled, cut into pools of BUCKET_BATCHES batches, sorted by length within a
    pool and batched; the batch order is shuffled again. Without `shuffle`, batches simply
    follow sorted length (for evaluation, where order does not matter).

    With `replicas` above 1 (distributed training), process `rank` gets every replicas-th
    batch of that order; every process must draw the same shuffle (the same generator seed,
    used for nothing else). Shuffled, the last few batches of an epoch that would leave the
    processes with unequal counts are dropped (each step waits for every process); in order,
    every batch is kept.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        rank: int = 0,
        replicas: int = 1,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.rank = rank
        self.replicas = replicas

    def __iter__(self):
        batches = self._batches()
        if self.shuffle:
            batches = batches[: len(batches) - len(batches) % self.replicas]
        yield from batches[self.rank :: self.replicas]

    def _batches(self) -> list[list[int]]:
        """One epoch's batches, for all processes together."""
        if not self.shuffle:
            order = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        pool_size = self.batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        return [batches[index] for index in torch.randperm(len(batches), generator=self.generator).tolist()]

    def __len__(self) -> int:
        total = -(-len(self.lengths) // self.batch_size)
        if self.shuffle:
            return total // self.replicas
        return len(range(self.rank, total, self.replicas))

"""Train a detector on a manifest: `python -m training.train --manifest data/embedded/manifest.csv`.

Reads top to bottom: config → data → model → loop with early stopping on dev EER → Platt
calibration of the best epoch's dev logits → best checkpoint + history + plots → evaluation of
the test split (clean and MP3 re-encoded). With `--members N`, that loop runs once per seed and
the runs are saved as one averaged model, calibrated again on dev for the averaged logits.
Under `torchrun --nproc_per_node=N` every run is data-parallel over N processes (training.distributed).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.calibration import CALIBRATED_THRESHOLD, fit_platt, sigmoid
from model.checkpoint import (
    CALIBRATION_KEY,
    METADATA_FILE,
    MODEL_CONFIG_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    save_checkpoint,
)
from model.detectors import (
    ARCHITECTURES,
    FROZEN_TRUNK_ARCHITECTURES,
    REQUIRED_FRONT_ENDS,
    Detector,
    ModelConfig,
    build_detector,
)
from model.features import EXTRACTOR_NAME, FRONT_ENDS, FeatureConfig
from training import distributed
from training.augment import augmented_copies
from training.dataset import (
    FRAMES_PER_SECOND,
    AudioDataset,
    Augmentation,
    FeatureCache,
    LengthBucketSampler,
    Mixup,
    RandomEQ,
    RandomFrequencyWarp,
    RandomShortCrop,
    SpecAugment,
    collate_fn,
)
from training.evaluate import evaluate_checkpoint
from training.manifest import read_manifest
from training.metrics import equal_error_rate, expected_calibration_error
from training.plots import plot_history
from training.vocoded import vocoded_copies

MEMBERS_DIR = "members"
SHORT_CROP_MIN_SECONDS = 0.5
# Where and how fast, not what: options a finished run may differ in and still be the same recipe.
RECIPE_INDEPENDENT = ("out", "threads", "device", "cache_dir", "vocoded_dir", "augmented_dir")
# What a run recorded before an option existed used, where that is not the option's default.
PRE_OPTION_VALUES = {"vocoded_copies": 0, "vocoded_per_seed": False, "mixed_precision": False}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic


@dataclass
class TrainConfig:
    manifest: str = "data/embedded/manifest.csv"
    out: str = "artifacts/latest"
    architecture: str = "cnn"
    front_end: str = EXTRACTOR_NAME
    vad_trim: bool = False
    channels: str = ",".join(str(c) for c in ModelConfig.channels)
    epochs: int = 40
    patience: int = 15
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    seed: int = 0
    device: str = "auto"
    cache_dir: str = "data/cache/features"
    version: str = "1.0"
    evaluate: bool = True
    threads: int = 0
    spec_augment: bool = True
    eq_augment_db: float = 0.0
    warp_augment: float = 0.0
    short_crop: float = 0.0
    normalize_bands: bool = False
    ema_decay: float = 0.0
    mixup_alpha: float = 0.0
    members: int = 8
    vocoded_copies: int = 1
    vocoded_per_seed: bool = True
    vocoded_dir: str = "data/cache/vocoded"
    augmented_copies: int = 0
    augmented_dir: str = "data/cache/augmented"
    mixed_precision: bool = True
    pitch_hop_frames: int = ModelConfig.pitch_hop_frames

    def feature_config(self) -> FeatureConfig:
        """The run's front end: --front-end, or the one its architecture reads (REQUIRED_FRONT_ENDS)."""
        front_end = REQUIRED_FRONT_ENDS.get(self.architecture, self.front_end)
        if self.front_end not in (EXTRACTOR_NAME, front_end):
            raise SystemExit(
                f"--architecture {self.architecture} reads the {front_end} front end, not {self.front_end}"
            )
        return FeatureConfig.for_front_end(front_end, self.vad_trim)


HELP = {
    "manifest": "manifest CSV (path,label[,split,...]) with train/dev/test splits",
    "out": "run folder for the checkpoint, metrics and plots",
    "architecture": f"detector: {' or '.join(ARCHITECTURES)} (improved = the seed's baseline; whisper_probe = a head "
    "on Whisper tiny.en's frozen encoder, trained on cached embeddings in minutes: use --members 1 --epochs 30; "
    "whisper_pitch_probe = the same with CREPE tiny's pitch embedding beside it)",
    "front_end": f"input features: {' or '.join(FRONT_ENDS)} (model.features; its default row count); "
    "whisper_pitch_probe brings its own (whisper_log_mel_samples)",
    "vad_trim": "cut every clip to its speech (Silero VAD, model.vad) in training and serving",
    "channels": "CNN block widths, comma-separated (one 2x2 pooling per block)",
    "epochs": "most epochs to train",
    "patience": "stop after this many epochs without a better dev EER",
    "batch_size": "clips per batch",
    "learning_rate": "AdamW learning rate (cosine-decayed to zero)",
    "weight_decay": "AdamW weight decay",
    "seed": "seed for python, numpy and torch",
    "device": "auto (CUDA if available), cpu or cuda",
    "cache_dir": "on-disk log-mel cache, keyed by file and feature config ('' disables)",
    "version": "model version recorded in the checkpoint (used by the archive)",
    "evaluate": "evaluate the best checkpoint on the test split afterwards",
    "threads": "torch CPU threads (0 = torch's default)",
    "spec_augment": "mask random mel bands and time spans of training clips (SpecAugment)",
    "eq_augment_db": "colour training clips with a random smooth EQ of up to ± this many dB (0 = off)",
    "warp_augment": "stretch each training clip's mel axis by a random factor within ± this (e.g. 0.1; 0 = off)",
    "short_crop": f"share of training clips cut to a random span of at least {SHORT_CROP_MIN_SECONDS} s (0 = off)",
    "normalize_bands": "model subtracts each mel band's mean over the clip (cepstral mean normalisation)",
    "ema_decay": "keep an exponential moving average of the weights per step and select/ship it (0 = off)",
    "mixup_alpha": "blend training clips and their labels in pairs, weights ~ Beta(a, a) (e.g. 0.2; 0 = off)",
    "members": "train this many seeds (seed, seed+1, ...) into out/members/ and ship their averaged logits",
    "vocoded_copies": "add this many Griffin-Lim vocoded copies of every real training clip as fakes (0 = off)",
    "vocoded_per_seed": "each seed draws its own vocoded copies (vocoder settings, channel); off: all share seed 0's",
    "vocoded_dir": "folder for the vocoded copies, made once and reused",
    "augmented_copies": "make this many augmented variants (codecs, noise, RawBoost...) of every training clip, "
    "both classes; each epoch reads one of a clip's versions, a frozen trunk's head all of them (0 = off)",
    "augmented_dir": "folder for the augmented variants, made once and reused",
    "mixed_precision": "train the forward pass in bfloat16 autocast where the device has native bfloat16 "
    "(CUDA, or a CPU with AVX512-BF16/AMX: about 2x faster there); fp32 elsewhere. Dev scoring and serving stay fp32",
    "pitch_hop_frames": "whisper_pitch_probe: 10 ms frames between CREPE frames (4 = 40 ms; larger is cheaper)",
}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a real-vs-fake speech detector on whisper log-mel features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=field.default, help=HELP[field.name]
            )
        else:
            kind = {"int": int, "float": float}.get(field.type, str)
            parser.add_argument(flag, type=kind, default=field.default, help=HELP[field.name])
    return TrainConfig(**vars(parser.parse_args(argv)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def has_native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast speeds this device up (emulated bfloat16 on older CPUs is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


@torch.no_grad()
def loader_logits(model: Detector, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray, float]:
    """Raw logits and labels for a loader, plus its mean BCE loss (logits, so calibration can be fit on them).

    Distributed, each process scores its share of the batches and all of them get every score.
    """
    model.eval()
    all_logits, labels, losses = [], [], []
    for features, lengths, targets in loader:
        logits = model.logits(features.to(device), lengths.to(device))
        losses.append(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.to(device)).item())
        all_logits.append(logits.float().cpu().numpy())
        labels.append(targets.numpy())
    all_logits, labels, losses = (distributed.gathered(part) for part in (all_logits, labels, losses))
    return np.concatenate(all_logits), np.concatenate(labels), float(np.mean(losses))


def calibrate_on_dev(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Platt-scale the dev logits: the metadata entries of a calibrated checkpoint.

    The threshold becomes 0.5 (calibrated P(real) means "real" when real is likelier); the dev
    EER threshold, now on the calibrated scale, and the raw one are kept for reference.
    """
    is_real = labels.astype(bool)
    calibration = fit_platt(logits, is_real)
    raw, calibrated = sigmoid(logits.astype(np.float64)), calibration.probabilities(logits)
    before, after = expected_calibration_error(raw, is_real), expected_calibration_error(calibrated, is_real)
    print(
        f"calibration on dev: P(real) = sigmoid({calibration.scale:.4f} * logit {calibration.bias:+.4f}); "
        f"dev ECE {before:.4f} -> {after:.4f}"
    )
    return {
        "threshold": CALIBRATED_THRESHOLD,
        CALIBRATION_KEY: calibration.to_dict(),
        "eer_threshold": equal_error_rate(calibrated, is_real)[1],
        "uncalibrated_threshold": equal_error_rate(raw, is_real)[1],
        "dev_ece": {"uncalibrated": before, "calibrated": after},
    }


class WeightEMA:
    """Exponential moving average of every weight and BatchNorm statistic, updated each step.

    Late-epoch dev EER swings by about a point from one epoch to the next; the average of the
    recent trajectory is smoother than any single snapshot. When enabled it is the model that
    is evaluated, selected and shipped (on the embedded set it lost to the best epoch on dev,
    so it is off by default). The decay ramps up over the first steps so the average does not
    remember the random initialisation.
    """

    def __init__(self, model: Detector, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, live: Detector) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.state_dict().values(), live.state_dict().values(), strict=True):
            if average.is_floating_point():
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)


def read_splits(
    config: TrainConfig, feature_config: FeatureConfig, names: tuple[str, ...] = ("train", "dev")
) -> tuple[dict[str, list], FeatureCache]:
    """The manifest's rows of the named splits, with every clip's features in the cache."""
    rows = read_manifest(Path(config.manifest))
    splits = {name: [r for r in rows if r.split == name] for name in names}
    if not all(splits.values()):
        raise SystemExit(f"{config.manifest}: training needs rows with " + " and ".join(f"split={n}" for n in names))
    cache = FeatureCache(Path(config.cache_dir) if config.cache_dir else None, feature_config)
    cache.fill([r.path for name in names for r in splits[name]], description="log-mel features")
    return splits, cache


def read_training_splits(config: TrainConfig, feature_config: FeatureConfig) -> tuple[dict[str, list], FeatureCache]:
    """Train and dev rows with their features cached; the train split gains the recipe's vocoded copies."""
    splits, cache = read_splits(config, feature_config)
    if config.vocoded_copies:
        draw = config.seed if config.vocoded_per_seed else 0
        make = partial(vocoded_copies, copies=config.vocoded_copies, directory=Path(config.vocoded_dir), seed=draw)
        copies = distributed.share_first(make, splits["train"])
        cache.fill([r.path for r in copies], description="log-mel features of the copies")
        splits["train"] += copies
    return splits, cache


def balanced_real_weight(real_fraction: float) -> torch.Tensor:
    """BCE `pos_weight` for the real class: both classes weigh the same however many fakes the vocoded copies add."""
    return torch.tensor((1.0 - real_fraction) / real_fraction if 0 < real_fraction < 1 else 1.0)


def window_frames(feature_config: FeatureConfig) -> int:
    """Frames in one scoring window: training crops to what serving's windows see."""
    return int(feature_config.window_seconds * FRAMES_PER_SECOND)


def make_dev_loader(rows: list, cache: FeatureCache, max_frames: int, batch_size: int) -> DataLoader:
    dev_set = AudioDataset(rows, cache, max_frames)
    sampler = LengthBucketSampler(
        dev_set.frames(), batch_size, shuffle=False, rank=distributed.rank(), replicas=distributed.world_size()
    )
    return DataLoader(dev_set, batch_sampler=sampler, collate_fn=collate_fn)


def train(config: TrainConfig) -> dict:
    """One detector; with `members` above 1, that many seeds averaged into one checkpoint."""
    return train_ensemble(config) if config.members > 1 else train_one(config)


def train_one(config: TrainConfig) -> dict:
    if config.architecture in FROZEN_TRUNK_ARCHITECTURES:
        from training.probe import train_probe  # builds on this module's data and calibration steps

        return train_probe(config)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.local_device(pick_device(config.device))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    # Data: the manifest's splits, features through the shared extractor, cached on disk.
    feature_config = config.feature_config()
    splits, cache = read_training_splits(config, feature_config)
    versions: list[list[Path]] = []
    if config.augmented_copies:  # one set of variants for every seed; each draws its own version per epoch
        make = partial(augmented_copies, copies=config.augmented_copies, directory=Path(config.augmented_dir))
        variants = distributed.share_first(make, splits["train"])
        cache.fill([path for paths in variants for path in paths], description="log-mel features of the variants")
        versions = [[row.path, *paths] for row, paths in zip(splits["train"], variants, strict=True)]
    max_frames = window_frames(feature_config)
    # Crops and augmentations: each process draws its own (rank 0 alone: the seed's draws).
    generator = torch.Generator().manual_seed(config.seed + distributed.rank())
    augment: list[Augmentation] = []
    if config.short_crop > 0:
        min_frames = int(SHORT_CROP_MIN_SECONDS * FRAMES_PER_SECOND)
        augment.append(RandomShortCrop(probability=config.short_crop, min_frames=min_frames))
    if config.spec_augment:
        augment.append(SpecAugment())
    if config.eq_augment_db > 0:
        augment.append(RandomEQ(max_db=config.eq_augment_db))
    if config.warp_augment > 0:
        augment.append(RandomFrequencyWarp(max_warp=config.warp_augment))
    train_set = AudioDataset(
        splits["train"], cache, max_frames, random_crop=True, generator=generator, augment=augment, versions=versions
    )
    # Batch order: alone, from the same generator; distributed, one every process draws alike.
    order = torch.Generator().manual_seed(config.seed) if distributed.active() else generator
    train_sampler = LengthBucketSampler(
        train_set.frames(), config.batch_size, True, order, rank=distributed.rank(), replicas=distributed.world_size()
    )
    train_loader = DataLoader(train_set, batch_sampler=train_sampler, collate_fn=collate_fn)
    mixup = Mixup(config.mixup_alpha) if config.mixup_alpha > 0 else None
    mixup_rng = np.random.default_rng(config.seed + distributed.rank())
    dev_loader = make_dev_loader(splits["dev"], cache, max_frames, config.batch_size)

    # Model and optimiser.
    channels = tuple(int(width) for width in config.channels.split(","))
    model_config = ModelConfig(
        architecture=config.architecture,
        n_mels=feature_config.n_mels,
        channels=channels,
        normalize_bands=config.normalize_bands,
    )
    model = build_detector(model_config).to(device)
    forward = distributed.training_logits(model, device)  # model.logits, or its DDP wrapper
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(train_loader))
    real_fraction = float(np.mean([r.is_real for r in splits["train"]]))
    real_weight = balanced_real_weight(real_fraction).to(device)
    bf16 = config.mixed_precision and has_native_bf16(device)
    print(
        f"training {config.architecture} ({sum(p.numel() for p in model.parameters()):,} parameters) on {device}"
        f"{' in bfloat16 autocast' if bf16 else ''}: "
        f"{len(train_set)} train / {len(splits['dev'])} dev clips, {real_fraction:.0%} real"
    )

    # Loop: early stopping on dev EER, ties broken by dev loss.
    history: list[dict] = []
    best: dict = {"dev_eer": float("inf"), "dev_loss": float("inf")}
    best_state, best_dev, stale, started = None, None, 0, time.time()
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    candidate = ema.model if ema else model
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        progress = tqdm(
            train_loader,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=not distributed.is_main(),
        )
        for features, lengths, targets in progress:
            if mixup:
                features, lengths, targets = mixup(features, lengths, targets, mixup_rng)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = forward(features.to(device), lengths.to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), targets.to(device), pos_weight=real_weight
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema:
                ema.update(model)
            losses.append(loss.item())
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        distributed.sync_buffers(candidate)  # every process scores (and keeps) process 0's model
        dev_logits, labels, dev_loss = loader_logits(candidate, dev_loader, device)
        dev_eer, _ = equal_error_rate(sigmoid(dev_logits.astype(np.float64)), labels.astype(bool))
        train_loss = float(np.mean(distributed.gathered(losses)))
        record = {"epoch": epoch, "train_loss": train_loss, "dev_loss": dev_loss, "dev_eer": dev_eer}
        history.append(record)
        improved = (dev_eer, dev_loss) < (best["dev_eer"], best["dev_loss"])
        print(
            f"epoch {epoch:2d}  train loss {record['train_loss']:.4f}  dev loss {dev_loss:.4f}  "
            f"dev EER {dev_eer:.2%}{'  *' if improved else ''}"
        )
        if improved:
            best, best_dev = record, (dev_logits, labels)
            best_state, stale = copy.deepcopy(candidate.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                print(f"early stop: no better dev EER for {config.patience} epochs")
                break

    model.load_state_dict(best_state)
    replicas = distributed.replica_record(model)  # {} alone; raises if the processes' models differ
    if not distributed.is_main():
        distributed.barrier()  # the one below: process 0 has written the checkpoint
        return {}
    weights = f"{'weight EMA' if ema else 'weights'} after epoch {best['epoch']}"
    calibrated = calibrate_on_dev(*best_dev)

    # Artifacts: best weights + configs + calibration + history + plots.
    metadata = {
        **calibrated,
        "version": config.version,
        "architecture": config.architecture,
        "run": out.name,
        "best_epoch": best["epoch"],
        "weights": weights,
        "dev_eer": best["dev_eer"],
        "train_seconds": round(time.time() - started, 1),
        "precision": "bfloat16 autocast" if bf16 else "float32",
        "manifest": str(config.manifest),
        "train_config": dataclasses.asdict(config),
        **replicas,
    }
    save_checkpoint(out, model, model_config, feature_config, metadata)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    plot_history({out.name: history}, out / "training_curves.png")
    print(f"kept {weights}: dev EER {best['dev_eer']:.2%}; checkpoint in {out}")
    distributed.barrier()  # the others go on (next member, ensemble, exit) once the checkpoint is on disk
    if config.evaluate:
        return evaluate_checkpoint(out, Path(config.manifest), out_dir=out)
    return metadata


def already_trained(directory: Path, config: TrainConfig) -> bool:
    """A finished run of this exact recipe (thread count and device aside) is in `directory`."""
    metadata_file = directory / METADATA_FILE
    if not (directory / WEIGHTS_FILE).is_file() or not metadata_file.is_file():
        return False
    # An option newer than the run is absent from its record: the run had its old behaviour.
    record = json.loads(metadata_file.read_text()).get("train_config", {})
    recorded = {**dataclasses.asdict(TrainConfig()), **PRE_OPTION_VALUES, **record}
    wanted = dataclasses.asdict(config)
    return all(recorded[k] == v for k, v in wanted.items() if k not in RECIPE_INDEPENDENT)


def train_ensemble(config: TrainConfig) -> dict:
    """Train each seed as its own run under out/members/, then save their mean logit as one model.

    The calibration (and with it the threshold) is fit again on dev for the combined logits;
    members never see the test split.
    """
    started = time.time()
    out = Path(config.out)
    member_dirs = []
    for index in range(config.members):
        seed = config.seed + index
        member_dir = out / MEMBERS_DIR / f"seed-{seed}"
        member_config = dataclasses.replace(config, members=1, seed=seed, out=str(member_dir), evaluate=False)
        if already_trained(member_dir, member_config):
            print(f"member {index + 1}/{config.members}: seed {seed} already trained in {member_dir}, reused")
        else:
            print(f"member {index + 1}/{config.members}: seed {seed}")
            train_one(member_config)
        member_dirs.append(member_dir)

    members = [load_checkpoint(d) for d in member_dirs]
    feature_config = config.feature_config()
    model_config = dataclasses.replace(ModelConfig.load(member_dirs[0] / MODEL_CONFIG_FILE), members=len(members))
    ensemble = build_detector(model_config)
    for target, (member, _, _) in zip(ensemble.members, members, strict=True):
        target.load_state_dict(member.state_dict())
    device = distributed.local_device(pick_device(config.device))
    splits, cache = read_splits(config, feature_config, names=("dev",))
    dev_loader = make_dev_loader(splits["dev"], cache, window_frames(feature_config), config.batch_size)
    logits, labels, _ = loader_logits(ensemble.to(device), dev_loader, device)
    if not distributed.is_main():
        return {}
    dev_eer, _ = equal_error_rate(sigmoid(logits.astype(np.float64)), labels.astype(bool))
    calibrated = calibrate_on_dev(logits, labels)
    member_summaries = [
        {"seed": config.seed + i, "best_epoch": m["best_epoch"], "dev_eer": m["dev_eer"], "weights": m["weights"]}
        for i, (_, _, m) in enumerate(members)
    ]
    metadata = {
        **calibrated,
        "version": config.version,
        "architecture": config.architecture,
        "run": out.name,
        "weights": f"mean logit of {len(members)} seeds",
        "members": member_summaries,
        "dev_eer": dev_eer,
        "train_seconds": round(time.time() - started, 1),
        "manifest": str(config.manifest),
        "train_config": dataclasses.asdict(config),
    }
    save_checkpoint(out, ensemble, model_config, feature_config, metadata)
    histories = {d.name: json.loads((d / "history.json").read_text()) for d in member_dirs}
    (out / "history.json").write_text(json.dumps(histories, indent=2) + "\n")
    plot_history(histories, out / "training_curves.png")
    singles = ", ".join(f"{m['dev_eer']:.2%}" for m in member_summaries)
    print(f"ensemble of {len(members)}: dev EER {dev_eer:.2%} (members {singles}); checkpoint in {out}")
    if config.evaluate:
        return evaluate_checkpoint(out, Path(config.manifest), out_dir=out)
    return metadata


def main(argv: list[str] | None = None) -> None:
    """Under `torchrun --nproc_per_node=N` (N > 1), one of N data-parallel processes."""
    config = parse_args(argv)
    with distributed.session(pick_device(config.device)):
        train(config)


if __name__ == "__main__":
    main()

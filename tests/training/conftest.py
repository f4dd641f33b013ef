"""A toy real/fake set: 'real' is clean voiced sound, 'fake' the same with a buzz; separable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.model.conftest import voiced
from training.manifest import ManifestRow, write_manifest

TOY_CLIPS = 60
SPLIT_CYCLE = ("train", "train", "train", "dev", "test")


def toy_clip(index: int, real: bool) -> np.ndarray:
    rng = np.random.default_rng(index)
    clip = voiced(rng.uniform(0.4, 1.5), 16_000, seed=index)[:, 0]
    if not real:
        t = np.arange(len(clip)) / 16_000
        clip = 0.6 * clip + 0.3 * np.sign(np.sin(2 * np.pi * 3000 * t))
    return clip.astype(np.float32)


@pytest.fixture(scope="session")
def toy_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    rows = []
    for index in range(TOY_CLIPS):
        real = index % 2 == 0
        path = root / "clips" / f"{index:03d}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, toy_clip(index, real), 16_000)
        split = SPLIT_CYCLE[(index // 2) % len(SPLIT_CYCLE)]
        attack = "bonafide" if real else "buzz"
        rows.append(ManifestRow(path, "real" if real else "fake", split, attack, f"spk{index % 4}", "toy"))
    write_manifest(rows, root / "manifest.csv")
    return root / "manifest.csv"

"""Vocoded copies: one Griffin-Lim fake per real training clip and copy, deterministic, made once."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import SAMPLE_RATE, decode_audio
from training.manifest import read_manifest
from training.train import TrainConfig, train
from training.vocoded import VOCODED_ATTACK, copy_key, vocoded_copies


@pytest.fixture(scope="module")
def train_rows(toy_manifest: Path) -> list:
    return [row for row in read_manifest(toy_manifest) if row.split == "train"][:6]


def test_every_real_row_gets_its_copies_as_fakes_of_the_same_split(train_rows: list, tmp_path: Path) -> None:
    reals = [row for row in train_rows if row.is_real]
    copies = vocoded_copies(train_rows, 2, tmp_path)
    assert len(copies) == 2 * len(reals)
    assert {(c.label, c.attack, c.split) for c in copies} == {("fake", VOCODED_ATTACK, "train")}
    assert [c.speaker for c in copies] == [r.speaker for r in reals for _ in range(2)]
    assert len({c.path for c in copies}) == len(copies)
    for copy, real in zip(copies[::2], reals, strict=True):
        info = sf.info(str(copy.path))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        source, vocoded = decode_audio(real.path), decode_audio(copy.path)
        assert abs(len(vocoded) - len(source)) <= SAMPLE_RATE // 10  # lossy codecs pad up to ~90 ms
        assert np.max(np.abs(vocoded)) <= 1.0 and np.std(vocoded) > 1e-3
        shared = min(len(source), len(vocoded))
        assert not np.allclose(source[:shared], vocoded[:shared], atol=1e-2)


def test_copies_are_deterministic_and_made_once(train_rows: list, tmp_path: Path) -> None:
    first = vocoded_copies(train_rows, 1, tmp_path / "a")
    again = vocoded_copies(train_rows, 1, tmp_path / "b")
    for one, other in zip(first, again, strict=True):
        assert np.array_equal(sf.read(one.path)[0], sf.read(other.path)[0])
    stamps = [c.path.stat().st_mtime_ns for c in first]
    assert [c.path for c in vocoded_copies(train_rows, 1, tmp_path / "a")] == [c.path for c in first]
    assert [c.path.stat().st_mtime_ns for c in first] == stamps
    real = next(row for row in train_rows if row.is_real)
    assert copy_key(real.path, 0, seed=0) != copy_key(real.path, 0, seed=1) != copy_key(real.path, 1, seed=1)


def test_a_moved_clip_keeps_its_copy_and_a_changed_one_gets_a_new_one(train_rows: list, tmp_path: Path) -> None:
    real = next(row for row in train_rows if row.is_real)
    moved = tmp_path / "elsewhere" / "renamed.flac"
    moved.parent.mkdir()
    shutil.copyfile(real.path, moved)
    assert copy_key(moved, 0, seed=0) == copy_key(real.path, 0, seed=0)
    samples, rate = sf.read(real.path)
    sf.write(moved, samples * 0.5, rate)
    assert copy_key(moved, 0, seed=0) != copy_key(real.path, 0, seed=0)


def test_training_with_copies_adds_them_to_train_only(toy_manifest: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        manifest=str(toy_manifest), out=str(tmp_path / "run"), epochs=2, patience=2, batch_size=8,
        cache_dir=str(tmp_path / "cache"), vocoded_dir=str(tmp_path / "vocoded"), vocoded_copies=1,
        threads=2, members=1, evaluate=False,
    )  # fmt: skip
    metadata = train(config)
    reals = [row for row in read_manifest(toy_manifest) if row.split == "train" and row.is_real]
    assert len(list((tmp_path / "vocoded").glob("*.flac"))) == len(reals)
    assert metadata["train_config"]["vocoded_copies"] == 1
    assert 0 <= metadata["threshold"] <= 1


@pytest.mark.parametrize("per_seed", [True, False])
def test_each_member_draws_copies_of_its_own_unless_told_to_share(
    per_seed: bool, toy_manifest: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        manifest=str(toy_manifest), out=str(tmp_path / "run"), epochs=1, patience=1, batch_size=8,
        cache_dir=str(tmp_path / "cache"), vocoded_dir=str(tmp_path / "vocoded"), vocoded_copies=1,
        threads=2, members=2, seed=0, evaluate=False,
    )  # fmt: skip
    assert TrainConfig().vocoded_per_seed  # the default
    train(dataclasses.replace(config, vocoded_per_seed=per_seed))
    reals = [row for row in read_manifest(toy_manifest) if row.split == "train" and row.is_real]
    made = {path.name for path in (tmp_path / "vocoded").glob("*.flac")}
    shared = {c.path.name for c in vocoded_copies(reals, 1, tmp_path / "vocoded", seed=0)}
    assert shared <= made and len(made) == (2 if per_seed else 1) * len(reals)  # seed 1 adds a draw, or reuses 0's

"""The neural vocoder: any length in, the same length out; it learns; trained once per set of reals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.audio import SAMPLE_RATE, decode_audio
from training import neural_vocoder
from training.embedded.tts import NEURAL_VOCODER_FAMILY, family_of
from training.folds import NO_VOCODED_COPIES
from training.manifest import read_manifest
from training.neural_vocoder import Vocoder, VocoderConfig, load_or_train, train_vocoder, vocode, vocoder_folder
from training.vocoded import NEURAL_VOCODER, VOCODER_ATTACKS, vocoded_copies

TINY = VocoderConfig(width=32, blocks=1, steps=60, batch_size=4, learning_rate=3e-3)


def voiced(seconds: float, pitch: float) -> np.ndarray:
    """A buzzy harmonic tone with a slow amplitude swell: something a vocoder can learn fast."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    return (0.1 * tone * (1.2 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def mel_distance(vocoder: Vocoder, clip: np.ndarray) -> float:
    mel = neural_vocoder.mel_analysis()
    source, copy = (neural_vocoder.log_mel(mel, torch.from_numpy(a)) for a in (clip, vocode(vocoder, clip)))
    return float((source - copy).abs().mean())


@pytest.mark.parametrize("samples", [1, 159, 160, 16_000, 23_457])
def test_a_copy_has_the_length_of_its_source_and_is_finite(samples: int) -> None:
    copy = vocode(Vocoder(TINY).eval(), voiced(samples / SAMPLE_RATE, 150.0))
    assert copy.shape == (samples,) and copy.dtype == np.float32 and np.isfinite(copy).all()


def test_training_brings_the_copy_closer_to_its_source() -> None:
    clips = [voiced(2.0, pitch) for pitch in (110.0, 150.0, 210.0)]
    torch.manual_seed(TINY.seed)
    untrained = Vocoder(TINY).eval()
    trained = train_vocoder(clips, TINY)
    unseen = voiced(1.5, 180.0)
    assert mel_distance(trained, unseen) < 0.8 * mel_distance(untrained, unseen)


def test_training_is_seeded() -> None:
    clips = [voiced(1.2, 130.0)]
    config = VocoderConfig(width=16, blocks=1, steps=3, batch_size=2)
    first, again = train_vocoder(clips, config), train_vocoder(clips, config)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True))


def test_a_vocoder_is_trained_once_per_set_of_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for index, pitch in enumerate((120.0, 190.0, 240.0)):
        paths.append(tmp_path / f"clip{index}.flac")
        sf.write(paths[-1], voiced(1.1, pitch), SAMPLE_RATE)
    folder = vocoder_folder(paths[:2], tmp_path / "vocoders", TINY)
    assert folder == vocoder_folder(list(reversed(paths[:2])), tmp_path / "vocoders", TINY)  # order does not matter
    assert folder != vocoder_folder(paths, tmp_path / "vocoders", TINY)  # another set of reals, another vocoder
    first = load_or_train(paths[:2], folder, TINY)

    def no_training(*_: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(neural_vocoder, "train_vocoder", no_training)
    loaded = load_or_train(paths[:2], folder, TINY)
    clip = voiced(0.7, 160.0)
    assert np.array_equal(vocode(first, clip), vocode(loaded, clip))


def test_neural_copies_are_fakes_of_their_own_family_next_to_their_vocoder(
    toy_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_tiny = train_vocoder
    monkeypatch.setattr(neural_vocoder, "train_vocoder", lambda clips, _config: train_tiny(clips, TINY))
    rows = [row for row in read_manifest(toy_manifest) if row.split == "train"][:6]
    reals = [row for row in rows if row.is_real]
    copies = vocoded_copies(rows, 1, tmp_path, vocoder=NEURAL_VOCODER)
    attack = VOCODER_ATTACKS[NEURAL_VOCODER]
    assert {(c.label, c.attack, c.split) for c in copies} == {("fake", attack, "train")}
    assert family_of(attack) == NEURAL_VOCODER_FAMILY and NEURAL_VOCODER_FAMILY not in NO_VOCODED_COPIES
    folder = {c.path.parent for c in copies}
    assert len(folder) == 1 and (folder.pop() / neural_vocoder.WEIGHTS_NAME).is_file()
    for copy, real in zip(copies, reals, strict=True):
        source, vocoded = decode_audio(real.path), decode_audio(copy.path)
        assert abs(len(vocoded) - len(source)) <= SAMPLE_RATE // 10  # lossy codecs pad up to ~90 ms
        shared = min(len(source), len(vocoded))
        assert np.max(np.abs(vocoded)) <= 1.0 and not np.allclose(source[:shared], vocoded[:shared], atol=1e-2)


def test_an_unknown_vocoder_is_refused(toy_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown vocoder 'wavenet'"):
        vocoded_copies(read_manifest(toy_manifest), 1, tmp_path, vocoder="wavenet")

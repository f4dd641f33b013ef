"""Damaged MP3s: libmpg123's notes stay off stderr unless DETECTOR_DECODER_DEBUG=1 asks for them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model.audio import DECODER_DEBUG_ENV, STDERR_FD, UnsupportedAudioError, decode_audio
from tests.audio_fixtures import encode, speech_wav

MPEG_NOISE = "Illegal Audio-MPEG-Header"
"""What libmpg123 prints for a frame whose header is garbage."""
THREADS = 4


@pytest.fixture(scope="module")
def damaged_mp3() -> bytes:
    """A 3 s MP3 with garbage over a stretch of frames and its last part cut off."""
    mp3 = bytearray(encode(speech_wav(3.0, seed=5), "mp3"))
    third = len(mp3) // 3
    mp3[third : third + 200] = bytes(range(200))
    return bytes(mp3[: len(mp3) * 3 // 4])


def test_a_damaged_mp3_still_decodes_and_writes_nothing_to_stderr(
    damaged_mp3: bytes, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DECODER_DEBUG_ENV, raising=False)

    samples = decode_audio(damaged_mp3)

    assert samples.size > 16_000  # most of the clip survives the damage
    assert np.isfinite(samples).all()
    assert capfd.readouterr().err == ""


def test_the_debug_switch_lets_the_decoder_speak(
    damaged_mp3: bytes, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DECODER_DEBUG_ENV, "1")

    decode_audio(damaged_mp3)

    assert MPEG_NOISE in capfd.readouterr().err


def test_an_undecodable_mp3_fails_as_usual_in_silence(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DECODER_DEBUG_ENV, raising=False)
    header_only = encode(speech_wav(1.0), "mp3")[:300]

    with pytest.raises(UnsupportedAudioError, match="not a supported audio format or is corrupt"):
        decode_audio(header_only)

    assert capfd.readouterr().err == ""


def test_stderr_works_again_after_decodes_in_parallel_threads(
    damaged_mp3: bytes, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DECODER_DEBUG_ENV, raising=False)

    with ThreadPoolExecutor(THREADS) as pool:
        decoded = list(pool.map(decode_audio, [damaged_mp3] * THREADS * 4))
    os.write(STDERR_FD, b"after the decodes\n")

    assert len({len(samples) for samples in decoded}) == 1
    assert capfd.readouterr().err == "after the decodes\n"

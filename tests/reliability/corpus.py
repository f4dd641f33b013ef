"""The bad-input corpus, generated on demand: files that are not audio, broken audio and odd audio.

Nothing here is committed as a binary: every payload is built from a few lines of code (and
ffmpeg for MP3), deterministically, so a failure reproduces exactly. Each case says what the
service must answer: a prediction (200) or one precise refusal with words its message contains.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from tests.audio_fixtures import SAMPLE_RATE, encode, speech_like, speech_wav, wav_bytes

SECONDS = 3.0
RANDOM_BYTES = 64 * 1024
TINY_SECONDS = 0.02
MANY_CHANNELS = 8
TELEPHONE_RATE = 8_000
STUDIO_RATE = 192_000
ODD_RATE = 8_001  # coprime with 16 kHz: an exact sinc kernel would be 8001 x 16000 taps
TOO_LOW_RATE = 2_000
TOO_HIGH_RATE = 384_000
HOUR_SECONDS = 3600.0
BOMB_SECONDS = 60.0
PCM8_RATE = 8_000
PCM8_SILENCE = 0x80  # unsigned 8-bit PCM is centred on 128
TONE_HZ = 440.0
TONE_LEVEL = 40
WAV_HEADER_BYTES = 44
CLAIMED_DATA_BYTES = 0xFFFF_FFF0  # ~4 GiB: 37 hours of 16 kHz 16-bit mono

OK = 200
EMPTY = 422
UNSUPPORTED = 415
TOO_LONG = 413
NOT_AUDIO = "not a supported audio format"


@dataclass(frozen=True)
class Case:
    """One file as a client would upload it, and the answer the service owes it."""

    name: str
    filename: str
    build: Callable[[], bytes]
    status: int
    detail: str = ""  # words the refusal's message must contain
    seconds: float | None = None  # the duration a prediction must report, when it is known exactly


def png_image() -> bytes:
    """A valid 1x1 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")
    )


def pdf_document() -> bytes:
    """A minimal one-page PDF."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 99 99]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def random_bytes() -> bytes:
    return np.random.default_rng(0).bytes(RANDOM_BYTES)


def truncated(audio: bytes) -> bytes:
    """The first half of a file, as an interrupted upload or download leaves it."""
    return audio[: len(audio) // 2]


def giant_header_wav() -> bytes:
    """A short 16-bit WAV whose RIFF and data sizes claim about 4 GiB (as streamed WAVs often do)."""
    audio = bytearray(speech_wav(SECONDS))
    assert audio[36:40] == b"data", "soundfile wrote an unexpected WAV layout"
    audio[4:8] = struct.pack("<I", 0xFFFF_FFFF)
    audio[40:44] = struct.pack("<I", CLAIMED_DATA_BYTES)
    return bytes(audio)


def float_wav_with(value: float) -> bytes:
    samples = speech_like(SECONDS)
    samples[1000:1100] = value
    return wav_bytes(samples, subtype="FLOAT")


def silence_wav(seconds: float = SECONDS, subtype: str = "PCM_16") -> bytes:
    return wav_bytes(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32), subtype=subtype)


def pcm8_wav(seconds: float) -> bytes:
    """8 kHz unsigned 8-bit mono WAV of silence with a quiet tone every other second: 8 kB per second.

    Built from bytes directly, so an hour costs a 29 MB buffer and no encoding time.
    """
    second = np.full(PCM8_RATE, PCM8_SILENCE, dtype=np.uint8)
    tone = PCM8_SILENCE + TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * np.arange(PCM8_RATE) / PCM8_RATE)
    pattern = np.concatenate([second, tone.astype(np.uint8)]).tobytes()
    frames = round(seconds * PCM8_RATE)
    data = (pattern * (frames // len(pattern) + 1))[:frames]
    header = (
        b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, PCM8_RATE, PCM8_RATE, 1, 8)
        + b"data" + struct.pack("<I", frames)
    )  # fmt: skip
    assert len(header) == WAV_HEADER_BYTES
    return header + data


def multichannel_wav() -> bytes:
    mono = speech_like(SECONDS)
    return wav_bytes(np.stack([mono * (1 - 0.1 * channel) for channel in range(MANY_CHANNELS)], axis=1))


def rate_wav(rate: int) -> bytes:
    return wav_bytes(speech_like(SECONDS, rate), rate)


def mu_law_wav() -> bytes:
    return wav_bytes(speech_like(SECONDS, TELEPHONE_RATE), TELEPHONE_RATE, subtype="ULAW")


def silent_surround_flac(seconds: float = BOMB_SECONDS) -> bytes:
    """8-channel 192 kHz FLAC of silence: ~100 kB that decode to 370 MB of float samples."""
    buffer = io.BytesIO()
    second = np.zeros((STUDIO_RATE, MANY_CHANNELS), dtype=np.int16)
    with sf.SoundFile(buffer, "w", STUDIO_RATE, MANY_CHANNELS, format="FLAC", subtype="PCM_16") as f:
        for _ in range(round(seconds)):
            f.write(second)
    return buffer.getvalue()


CORPUS = (
    Case("empty", "empty.wav", bytes, EMPTY, "empty"),
    Case("zero-length-wav", "zero.wav", lambda: silence_wav(0.0), EMPTY, "no audio samples"),
    Case(
        "text-as-wav", "notes.wav", lambda: b"this is not audio, it is a shopping list\n" * 50, UNSUPPORTED, NOT_AUDIO
    ),
    Case("png-as-wav", "image.wav", png_image, UNSUPPORTED, NOT_AUDIO),
    Case("pdf-as-wav", "paper.wav", pdf_document, UNSUPPORTED, NOT_AUDIO),
    Case("random-as-wav", "noise.wav", random_bytes, UNSUPPORTED, NOT_AUDIO),
    Case("truncated-wav", "cut.wav", lambda: truncated(speech_wav(SECONDS)), OK),
    Case("truncated-mp3", "cut.mp3", lambda: truncated(encode(speech_wav(SECONDS), "mp3")), OK),
    Case("truncated-flac", "cut.flac", lambda: truncated(encode(speech_wav(SECONDS), "flac")), OK),
    Case("giant-header-wav", "giant.wav", giant_header_wav, OK, seconds=SECONDS),
    Case("nan-float-wav", "nan.wav", lambda: float_wav_with(np.nan), EMPTY, "NaN or infinite"),
    Case("inf-float-wav", "inf.wav", lambda: float_wav_with(np.inf), EMPTY, "NaN or infinite"),
    Case("silence", "silence.wav", silence_wav, OK, seconds=SECONDS),
    Case("20ms", "blip.wav", lambda: speech_wav(TINY_SECONDS), EMPTY, "at least 100 ms"),
    Case("one-hour", "hour.wav", lambda: pcm8_wav(HOUR_SECONDS), TOO_LONG, "more than the limit of 600 s"),
    Case("8-channel", "surround.wav", multichannel_wav, OK, seconds=SECONDS),
    Case("8khz-mu-law", "phone.wav", mu_law_wav, OK, seconds=SECONDS),
    Case("192khz", "studio.wav", lambda: rate_wav(STUDIO_RATE), OK, seconds=SECONDS),
    Case("8001hz", "odd.wav", lambda: rate_wav(ODD_RATE), OK),
    Case("2khz", "low.wav", lambda: rate_wav(TOO_LOW_RATE), UNSUPPORTED, "sample rate of 2000 Hz"),
    Case("384khz", "high.wav", lambda: rate_wav(TOO_HIGH_RATE), UNSUPPORTED, "sample rate of 384000 Hz"),
    Case("8ch-192khz-flac-of-silence", "bomb.flac", silent_surround_flac, OK, seconds=BOMB_SECONDS),
)

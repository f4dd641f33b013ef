"""The post-processing every clip goes through, real or fake, with parameters from one distribution.

Raw, the classes differ in ways that have nothing to do with synthesis: the recordings are Vorbis
with room noise and long, varied silences at their ends; TTS output is PCM with digital silence,
its own loudness and its own sample rate. A detector would learn those. So both classes are
decoded to 16 kHz mono, trimmed by the same energy rule, cropped to the same maximum, set to a
random loudness, padded with a random amount of silence, given a random noise floor, and sent
through a random "channel" (none, MP3, Vorbis, Opus, GSM or a telephone-band limit): every draw
comes from the same distribution for both classes, so none of these properties carries the label.

Some real sources were recorded through a telephone channel (8 kHz WAV, GSM). The fake paired with
such a clip first goes through that same channel (`Treatment.source_channel`), then through its own
random draw like every clip, so a narrow band or a GSM trace says nothing about the class.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from model.audio import SAMPLE_RATE, decode_audio, resample

# Silence trimming: 20 ms frames; a frame is speech when within TRIM_TOP_DB of the loudest frame.
FRAME_SECONDS = 0.02
TRIM_TOP_DB = 35.0
TRIM_MARGIN_SECONDS = 0.03
SILENCE_FLOOR_DB = -120.0

# Duration: speech longer than this is cropped (with a short fade) for both classes.
MAX_SPEECH_SECONDS = 5.0
MIN_SPEECH_SECONDS = 0.15
FADE_SECONDS = 0.02

# Random draws, identical for real and fake clips.
LEVEL_DBFS_RANGE = (-32.0, -18.0)
PAD_SECONDS_RANGE = (0.05, 0.45)
NOISE_DBFS_RANGE = (-80.0, -55.0)
PEAK_CEILING = 0.97

CHANNEL_WEIGHTS = {"none": 0.2, "mp3": 0.25, "vorbis": 0.2, "opus": 0.1, "band8k": 0.15, "gsm": 0.1}
# Channels without a setting to draw; a source channel is one of these or "none".
FIXED_CHANNELS = frozenset({"none", "band8k", "gsm"})
MP3_BITRATES_KBPS = (32, 48, 64, 96, 128)
VORBIS_QUALITIES = (1, 2, 3, 5)
OPUS_BITRATES_KBPS = (16, 24, 32)
NARROWBAND_RATE = 8_000
CODEC_TIMEOUT_SECONDS = 60.0

_CODEC_ARGS = {
    "mp3": ("-c:a", "libmp3lame", "-f", "mp3"),
    "vorbis": ("-c:a", "libvorbis", "-f", "ogg"),
    "opus": ("-c:a", "libopus", "-f", "ogg"),
    # GSM 06.10 full rate (13 kbit/s at 8 kHz), in WAV so that libsndfile decodes it.
    "gsm": ("-c:a", "libgsm_ms", "-ar", str(NARROWBAND_RATE), "-f", "wav"),
}


@dataclass(frozen=True)
class Treatment:
    """All random post-processing choices for one clip (drawn before building, so they are known)."""

    level_dbfs: float
    pad_start: float
    pad_end: float
    noise_dbfs: float
    channel: str
    channel_setting: int
    source_channel: str = "none"  # the telephone channel of the real clip a fake mimics, applied first

    @property
    def channel_label(self) -> str:
        drawn = self.channel if self.channel in FIXED_CHANNELS else f"{self.channel}-{self.channel_setting}"
        return drawn if self.source_channel == "none" else f"{self.source_channel}+{drawn}"


class ClipRejected(ValueError):
    """The clip holds too little speech to be used (after trimming)."""


def draw_treatment(rng: np.random.Generator) -> Treatment:
    """Draw one clip's post-processing from the distribution shared by both classes."""
    names = sorted(CHANNEL_WEIGHTS)
    weights = np.array([CHANNEL_WEIGHTS[n] for n in names])
    channel = str(rng.choice(names, p=weights / weights.sum()))
    settings = {"mp3": MP3_BITRATES_KBPS, "vorbis": VORBIS_QUALITIES, "opus": OPUS_BITRATES_KBPS}
    setting = int(rng.choice(settings[channel])) if channel in settings else 0
    return Treatment(
        level_dbfs=float(rng.uniform(*LEVEL_DBFS_RANGE)),
        pad_start=float(rng.uniform(*PAD_SECONDS_RANGE)),
        pad_end=float(rng.uniform(*PAD_SECONDS_RANGE)),
        noise_dbfs=float(rng.uniform(*NOISE_DBFS_RANGE)),
        channel=channel,
        channel_setting=setting,
    )


def frame_db(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS level of consecutive frames in dBFS (the last partial frame included)."""
    size = max(1, round(FRAME_SECONDS * rate))
    count = max(1, -(-samples.size // size))
    padded = np.zeros(count * size, dtype=np.float64)
    padded[: samples.size] = samples
    rms = np.sqrt(np.mean(padded.reshape(count, size) ** 2, axis=1))
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), SILENCE_FLOOR_DB)


def trim_silence(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading and trailing frames quieter than TRIM_TOP_DB below the loudest frame."""
    levels = frame_db(samples, rate)
    active = np.flatnonzero(levels >= levels.max() - TRIM_TOP_DB)
    if levels.max() <= SILENCE_FLOOR_DB or active.size == 0:
        return samples[:0]
    size = round(FRAME_SECONDS * rate)
    margin = round(TRIM_MARGIN_SECONDS * rate)
    start = max(0, active[0] * size - margin)
    end = min(samples.size, (active[-1] + 1) * size + margin)
    return samples[start:end]


def crop(samples: np.ndarray, max_seconds: float = MAX_SPEECH_SECONDS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Keep at most `max_seconds`, fading out the cut so it leaves no click."""
    limit = round(max_seconds * rate)
    if samples.size <= limit:
        return samples
    cropped = samples[:limit].copy()
    fade = min(limit, round(FADE_SECONDS * rate))
    cropped[limit - fade :] *= np.linspace(1.0, 0.0, fade, dtype=cropped.dtype)
    return cropped


def normalise_level(samples: np.ndarray, level_dbfs: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Scale so the speech frames' RMS is `level_dbfs`; pull down if the peak would pass PEAK_CEILING."""
    levels = frame_db(samples, rate)
    size = round(FRAME_SECONDS * rate)
    speech = levels >= levels.max() - TRIM_TOP_DB
    frames = np.zeros(speech.size * size, dtype=np.float64)
    frames[: samples.size] = samples
    active_rms = np.sqrt(np.mean(frames.reshape(-1, size)[speech] ** 2))
    if active_rms <= 0:
        return samples
    gain = 10 ** (level_dbfs / 20) / active_rms
    peak = float(np.max(np.abs(samples))) * gain
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    return (samples * gain).astype(np.float32)


def pad_and_add_noise(
    samples: np.ndarray, treatment: Treatment, rng: np.random.Generator, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Surround with silence and lay a white noise floor over everything (TTS silence is digital zero)."""
    start = np.zeros(round(treatment.pad_start * rate), dtype=np.float32)
    end = np.zeros(round(treatment.pad_end * rate), dtype=np.float32)
    padded = np.concatenate([start, samples.astype(np.float32), end])
    noise = rng.standard_normal(padded.size).astype(np.float32) * 10 ** (treatment.noise_dbfs / 20)
    return padded + noise


def apply_channel(samples: np.ndarray, channel: str, setting: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Pass the clip through a codec round trip (ffmpeg) or a telephone-band limit; `none` is identity."""
    if channel == "none":
        return samples
    if channel == "band8k":
        return resample(resample(samples, rate, NARROWBAND_RATE), NARROWBAND_RATE, rate)
    if channel not in _CODEC_ARGS:
        raise ValueError(f"unknown channel {channel!r}")
    if channel == "gsm":
        samples = resample(samples, rate, NARROWBAND_RATE)
        rate = NARROWBAND_RATE
    encoded = _ffmpeg_encode(samples, rate, channel, setting)
    return decode_audio(encoded)


def _ffmpeg_encode(samples: np.ndarray, rate: int, channel: str, setting: int) -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed for the codec channels")
    wav = io.BytesIO()
    sf.write(wav, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="FLOAT")
    quality = {"vorbis": ("-q:a", str(setting)), "gsm": ()}.get(channel, ("-b:a", f"{setting}k"))
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
        "-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1",
        *_CODEC_ARGS[channel][:2], *quality, *_CODEC_ARGS[channel][2:], "pipe:1",
    ]  # fmt: skip
    result = subprocess.run(command, input=wav.getvalue(), capture_output=True, timeout=CODEC_TIMEOUT_SECONDS)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"ffmpeg {channel} failed: {result.stderr.decode(errors='replace')[-300:]}")
    return result.stdout


def process(samples: np.ndarray, treatment: Treatment, rng: np.random.Generator) -> np.ndarray:
    """The whole shared chain: trim → crop → level → pad + noise floor → channel → clip to [-1, 1]."""
    speech = trim_silence(samples)
    if speech.size < MIN_SPEECH_SECONDS * SAMPLE_RATE:
        raise ClipRejected(f"only {speech.size / SAMPLE_RATE:.2f} s of speech after trimming")
    speech = normalise_level(crop(speech), treatment.level_dbfs)
    return pass_channel(pad_and_add_noise(speech, treatment, rng), treatment)


def pass_channel(samples: np.ndarray, treatment: Treatment) -> np.ndarray:
    """The source channel (if any), the treatment's channel, then clipped to [-1, 1]: what a 16-bit file holds."""
    samples = apply_channel(samples, treatment.source_channel, 0)
    return np.clip(apply_channel(samples, treatment.channel, treatment.channel_setting), -1.0, 1.0)

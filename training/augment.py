"""Waveform augmentations of training clips of both classes, and K cached variants per clip.

The detector should not rely on what a channel does to a clip: a real voice through a phone, a
cheap microphone, a codec or a noisy room is still real, and a fake one is still fake. Training
variants of every clip, real and fake alike, drawn from one distribution, show it such channels
without tying any of them to a label. Every augmentation takes (16 kHz mono float32 samples, a
numpy Generator) and returns finite samples of the same length; all randomness comes from the
Generator, so a seed fixes the result.

- RawBoost (Tak et al., "RawBoost: a raw data boosting and augmentation method applied to automatic
  speaker verification anti-spoofing", ICASSP 2022): linear and non-linear convolutive noise,
  impulsive signal-dependent noise, stationary signal-independent coloured additive noise. The
  filters are RawBoost's: cascades of random band-stop ("notch") FIR filters, scaled to a drawn
  gain; the higher-order terms x², x³, ... pass filters of their own at 5-20 dB less gain.
- additive white, pink or brown noise at a random SNR (generated here, no noise files);
- codec round trips through ffmpeg (MP3, Opus, AAC, Vorbis, GSM, Speex, AMR-NB where this ffmpeg
  can encode it, 8 kHz mu-law telephone) at low bitrates and sample rates, resampled back to 16 kHz
  and re-aligned to the input (encoder delay removed, length restored exactly);
- band limiting, gain and a resample-based speed change (pitch and tempo together).

`draw_chain` composes one to three of these; `augmented_copies` makes K variants of each clip,
written once as 16 kHz FLAC under a key of the clip's content, the copy number, the seed and the
chain settings, and reused by later runs (like training.vocoded). The CNN reads one of a clip's
versions per epoch; a frozen trunk's head takes the variants as more rows (`augmented_rows`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as taf
from tqdm import tqdm

from model.audio import SAMPLE_RATE, decode_audio, resample
from training.embedded.build import write_flac
from training.embedded.channel import PEAK_CEILING
from training.manifest import ManifestRow
from training.vocoded import KEY_CHARS, SEED_CHARS, copy_key, without_channel

RECIPE_VERSION = 1  # bump when the code changes what a draw makes, so cached variants are made again
NYQUIST = SAMPLE_RATE / 2

# RawBoost's defaults (the reference implementation's command-line defaults).
RAWBOOST_BANDS = 5
RAWBOOST_FREQ_HZ = (20.0, 8000.0)
RAWBOOST_BANDWIDTH_HZ = (100.0, 1000.0)
RAWBOOST_TAPS = (10, 100)
RAWBOOST_GAIN_DB = (0.0, 0.0)
RAWBOOST_HIGHER_ORDER_CUT_DB = (5.0, 20.0)  # higher-order terms pass 5-20 dB below the linear one
RAWBOOST_ORDERS = 5
RAWBOOST_IMPULSE_PERCENT = 10.0  # at most this share of samples get an impulse
RAWBOOST_IMPULSE_GAIN = 2.0
RAWBOOST_SNR_DB = (10.0, 40.0)
RESPONSE_POINTS = 1024  # FFT size for the peak of a filter's magnitude response

NOISE_SNR_DB = (10.0, 35.0)
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power falls as 1 / f^exponent
NOISE_LOWEST_HZ = 20.0  # pink and brown noise stop rising below this (no DC drift)

LOWPASS_HZ = (3400.0, 7600.0)  # 3.4 kHz telephone to just under the 8 kHz Nyquist limit
HIGHPASS_HZ = (50.0, 300.0)
HIGHPASS_PROBABILITY = 0.5
BUTTERWORTH_Q = (0.5412, 1.3066)  # two biquads make a 4th-order Butterworth (24 dB/octave)

GAIN_DB = 6.0
SPEED_CHANGE = (0.05, 0.10)  # ± 5-10 % faster or slower, pitch moving with it
SPEED_RATE_STEP = 100  # the assumed source rate is snapped to this, so the resampling kernel stays small

MAX_CODEC_DELAY_SECONDS = 0.25  # encoder delay searched for when re-aligning a round trip
CODEC_TIMEOUT_SECONDS = 60.0

CHAIN_LENGTHS = (0.5, 0.35, 0.15)  # P(one augmentation), P(two), P(three)


@dataclass(frozen=True)
class Codec:
    """One ffmpeg codec a round trip can use, with the sample rates and settings to draw from."""

    name: str
    encoder: str
    muxer: str  # what ffmpeg writes to the pipe
    demuxer: str  # ... and reads back
    rates: tuple[int, ...]
    options: tuple[tuple[str, ...], ...] = ((),)  # one drawn: rate control ("-b:a", "16k"), quality, ...
    raw: bool = False  # headerless stream: the decoder has to be told the rate and channel count
    weight: float = 1.0


CODECS = (
    Codec("mp3", "libmp3lame", "mp3", "mp3", (8_000, 11_025, 16_000),
          (("-b:a", "16k"), ("-b:a", "24k"), ("-b:a", "32k"), ("-b:a", "48k"), ("-b:a", "64k")), weight=0.25),
    Codec("opus", "libopus", "ogg", "ogg", (8_000, 12_000, 16_000),
          (("-b:a", "16k"), ("-b:a", "24k"), ("-b:a", "32k")), weight=0.15),
    Codec("aac", "aac", "adts", "aac", (8_000, 11_025, 16_000),
          (("-b:a", "16k"), ("-b:a", "24k"), ("-b:a", "32k")), weight=0.15),
    Codec("vorbis", "libvorbis", "ogg", "ogg", (11_025, 16_000),
          (("-q:a", "0"), ("-q:a", "1"), ("-q:a", "2"), ("-q:a", "4")), weight=0.1),
    Codec("gsm", "libgsm", "gsm", "gsm", (8_000,), raw=True, weight=0.1),  # GSM 06.10 full rate, 13 kbit/s
    Codec("amr-nb", "libopencore_amrnb", "amr", "amr", (8_000,),
          (("-b:a", "12.2k"), ("-b:a", "7.95k"), ("-b:a", "5.9k")), weight=0.1),
    Codec("speex", "libspeex", "ogg", "ogg", (8_000, 16_000), (("-b:a", "16k"), ("-b:a", "24k")), weight=0.05),
    Codec("mulaw", "pcm_mulaw", "mulaw", "mulaw", (8_000,), raw=True, weight=0.1),  # G.711 telephone
)  # fmt: skip

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# --- small signal tools -------------------------------------------------------------------------------------


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Cropped or padded to exactly `length`; padding mirrors the end, so no digital silence or step appears."""
    if samples.size >= length:
        return samples[:length]
    mode = "reflect" if samples.size > 1 else "constant"
    return np.pad(samples, (0, length - samples.size), mode=mode)


def limit_peak(samples: np.ndarray, ceiling: float = PEAK_CEILING) -> np.ndarray:
    """Scaled down (never up) so the peak stays at or below `ceiling`: what a 16-bit file holds unclipped."""
    peak = float(np.max(np.abs(samples), initial=0.0))
    return samples * np.float32(ceiling / peak) if peak > ceiling else samples


def rescale_peak(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scaled to the peak of `reference`. RawBoost normalises every output to peak 1; keeping the clip's
    own level instead leaves level to the other augmentations and to the dataset's own spread."""
    peak = float(np.max(np.abs(samples), initial=0.0))
    target = float(np.max(np.abs(reference), initial=0.0))
    return samples * (target / peak) if peak > 0 else samples


def fast_size(size: int) -> int:
    """The power of two at or above `size`: numpy's FFT is slow for lengths with large prime factors."""
    return 1 << max(0, size - 1).bit_length()


def fft_filter(samples: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Linear-phase FIR filtering, delay removed (the centre tap lines up with the input), via the FFT."""
    size = fast_size(samples.size + taps.size - 1)
    full = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(taps, size), size)
    start = (taps.size - 1) // 2
    return full[start : start + samples.size]


def lowpass_taps(cutoff_hz: float, taps: int) -> np.ndarray:
    centre = np.arange(taps) - (taps - 1) / 2
    return 2 * cutoff_hz / SAMPLE_RATE * np.sinc(2 * cutoff_hz / SAMPLE_RATE * centre)


def band_stop_taps(low_hz: float, high_hz: float, taps: int) -> np.ndarray:
    """Hamming-windowed sinc band-stop of odd length, unit gain at DC (scipy's firwin with pass_zero)."""
    stop = lowpass_taps(low_hz, taps) - lowpass_taps(high_hz, taps)  # all-pass minus the band
    stop[(taps - 1) // 2] += 1.0
    stop *= np.hamming(taps)
    return stop / stop.sum()


def notch_filter(rng: np.random.Generator, gain_db: tuple[float, float], bands: int = RAWBOOST_BANDS) -> np.ndarray:
    """RawBoost's random filter: `bands` band-stops of random centre, width and length in cascade,
    scaled so the peak of the magnitude response is a drawn gain."""
    taps = np.ones(1)
    for _ in range(bands):
        centre = rng.uniform(*RAWBOOST_FREQ_HZ)
        width = rng.uniform(*RAWBOOST_BANDWIDTH_HZ)
        length = int(rng.integers(RAWBOOST_TAPS[0], RAWBOOST_TAPS[1] + 1)) | 1  # odd: a centre tap
        low, high = max(centre - width / 2, 1e-3), min(centre + width / 2, NYQUIST - 1e-3)
        taps = np.convolve(taps, band_stop_taps(low, high, length))
    gain = 10 ** (rng.uniform(*gain_db) / 20)
    return gain * taps / np.max(np.abs(np.fft.rfft(taps, max(RESPONSE_POINTS, taps.size))))


def coloured_noise(size: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1 / f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(size))
    frequencies = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), NOISE_LOWEST_HZ)
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), size)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def add_at_snr(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`samples` plus `noise` scaled to `snr_db` below the clip's mean power (silent clips get none)."""
    power = float(np.mean(samples.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise**2)), 1e-20)
    return samples + noise * np.sqrt(power / noise_power / 10 ** (snr_db / 10))


def butterworth(samples: np.ndarray, cutoff_hz: float, kind: str) -> np.ndarray:
    """4th-order Butterworth low- or high-pass (two RBJ biquads): a steep, analog-like slope, cheap in C++."""
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    omega = 2 * np.pi * cutoff_hz / SAMPLE_RATE
    for q in BUTTERWORTH_Q:
        alpha, cos = np.sin(omega) / (2 * q), np.cos(omega)
        edge = (1 - cos) / 2 if kind == "lowpass" else (1 + cos) / 2
        b = [edge, 1 - cos if kind == "lowpass" else -(1 + cos), edge]
        a = [1 + alpha, -2 * cos, 1 - alpha]
        waveform = taf.lfilter(waveform, torch.tensor(a, dtype=torch.float32),
                               torch.tensor(b, dtype=torch.float32), clamp=False)  # fmt: skip
    return waveform.numpy()


def finite(samples: np.ndarray) -> np.ndarray:
    return np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


# --- RawBoost -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvolutiveNoise:
    """RawBoost 1: the clip through a random filter, plus its powers x², ..., x^orders through filters of
    their own at a lower gain: the colouring and the harmonic distortion of microphones, amplifiers and
    loudspeakers. orders=1 is the linear case. The clip is taken at unit peak for the powers, so the
    distortion does not depend on how loud the clip happens to be, and returned at its own peak."""

    orders: int = RAWBOOST_ORDERS
    gain_db: tuple[float, float] = RAWBOOST_GAIN_DB
    higher_order_cut_db: tuple[float, float] = RAWBOOST_HIGHER_ORDER_CUT_DB

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        peak = float(np.max(np.abs(samples), initial=0.0))
        if peak == 0:
            return samples
        unit = samples.astype(np.float64) / peak
        out = np.zeros_like(unit)
        for order in range(1, self.orders + 1):
            cut = (0.0, 0.0) if order == 1 else self.higher_order_cut_db
            gain_db = (self.gain_db[0] - cut[1], self.gain_db[1] - cut[0])
            out += fft_filter(unit**order, notch_filter(rng, gain_db))
        return finite(rescale_peak(out - out.mean(), samples))


@dataclass(frozen=True)
class ImpulsiveNoise:
    """RawBoost 2: up to `max_percent` % of the samples, at random, get an impulse proportional to
    themselves (x + g·x·u₁u₂, u uniform in [-1, 1]): clicks and overload of a faulty channel. Unlike
    RawBoost the clip is not renormalised, so the samples between impulses keep their level."""

    max_percent: float = RAWBOOST_IMPULSE_PERCENT
    gain: float = RAWBOOST_IMPULSE_GAIN

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        count = int(samples.size * rng.uniform(0.0, self.max_percent) / 100)
        where = rng.permutation(samples.size)[:count]
        factor = (2 * rng.random(count) - 1) * (2 * rng.random(count) - 1)
        out = samples.astype(np.float64)
        out[where] += self.gain * out[where] * factor
        return finite(out)


@dataclass(frozen=True)
class StationaryNoise:
    """RawBoost 3: Gaussian noise through a random notch filter, added at an SNR of 10-40 dB:
    coloured background noise that does not depend on the signal."""

    snr_db: tuple[float, float] = RAWBOOST_SNR_DB

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = fft_filter(rng.standard_normal(samples.size), notch_filter(rng, RAWBOOST_GAIN_DB))
        return finite(add_at_snr(samples, noise, rng.uniform(*self.snr_db)))


# --- noise, band, gain, speed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdditiveNoise:
    """White, pink or brown noise at a random SNR: hiss, fans, rumble."""

    snr_db: tuple[float, float] = NOISE_SNR_DB
    colours: tuple[str, ...] = tuple(NOISE_COLOURS)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        colour = self.colours[int(rng.integers(len(self.colours)))]
        noise = coloured_noise(samples.size, NOISE_COLOURS[colour], rng)
        return finite(add_at_snr(samples, noise, rng.uniform(*self.snr_db)))


@dataclass(frozen=True)
class BandLimit:
    """A random low-pass between telephone and full band, and now and then a high-pass against rumble:
    the frequency range of phones, headsets and cheap microphones."""

    lowpass_hz: tuple[float, float] = LOWPASS_HZ
    highpass_hz: tuple[float, float] = HIGHPASS_HZ
    highpass_probability: float = HIGHPASS_PROBABILITY

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = butterworth(samples, rng.uniform(*self.lowpass_hz), "lowpass")
        if rng.random() < self.highpass_probability:
            out = butterworth(out, rng.uniform(*self.highpass_hz), "highpass")
        return finite(out)


@dataclass(frozen=True)
class Gain:
    """A random level change within ±max_db, reduced where it would push the peak past PEAK_CEILING."""

    max_db: float = GAIN_DB

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gain = 10 ** (rng.uniform(-self.max_db, self.max_db) / 20)
        peak = float(np.max(np.abs(samples), initial=0.0))
        if peak * gain > PEAK_CEILING:
            gain = max(PEAK_CEILING / peak, 10 ** (-self.max_db / 20))
        return finite(samples * gain)


@dataclass(frozen=True)
class SpeedChange:
    """Play the clip 5-10 % faster or slower (pitch and tempo together, like a tape), by resampling it
    as if it had been recorded at another rate; then cropped or mirror-padded to its length."""

    change: tuple[float, float] = SPEED_CHANGE

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = 1 + (1 if rng.random() < 0.5 else -1) * rng.uniform(*self.change)
        rate = round(SAMPLE_RATE * factor / SPEED_RATE_STEP) * SPEED_RATE_STEP
        return finite(fit_length(resample(samples, rate, SAMPLE_RATE), samples.size))


# --- codecs -------------------------------------------------------------------------------------------------


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """The encoder names this ffmpeg lists (empty without ffmpeg)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return frozenset()
    listing = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=CODEC_TIMEOUT_SECONDS).stdout  # fmt: skip
    names = [line.split()[1] for line in listing.splitlines() if len(line.split()) > 1 and line.startswith(" A")]
    return frozenset(names)


def available_codecs(codecs: Sequence[Codec] = CODECS) -> tuple[Codec, ...]:
    """The codecs this ffmpeg can encode (AMR-NB needs an ffmpeg built with libopencore-amrnb)."""
    return tuple(codec for codec in codecs if codec.encoder in ffmpeg_encoders())


def codec_round_trip(samples: np.ndarray, codec: Codec, rate: int, options: Sequence[str] = ()) -> np.ndarray:
    """16 kHz samples encoded with `codec` at `rate` and decoded again: resampled back to 16 kHz,
    the encoder's delay cut off and the length restored exactly."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed for the codec augmentations; run `make setup`")
    narrow = np.clip(resample(samples, SAMPLE_RATE, rate), -1.0, 1.0).astype("<f4")
    quiet = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    pcm = ["-f", "f32le", "-ar", str(rate), "-ac", "1"]
    encode = [*quiet, *pcm, "-i", "pipe:0", "-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1",
              "-c:a", codec.encoder, *options, "-f", codec.muxer, "pipe:1"]  # fmt: skip
    decode = [*quiet, *(["-ar", str(rate), "-ac", "1"] if codec.raw else []), "-f", codec.demuxer, "-i", "pipe:0",
              *pcm, "pipe:1"]  # fmt: skip
    encoded = _run(encode, narrow.tobytes(), codec.name)
    decoded = np.frombuffer(_run(decode, encoded, codec.name), dtype="<f4").copy()
    wide = resample(decoded, rate, SAMPLE_RATE)
    return finite(align(wide, samples, round(MAX_CODEC_DELAY_SECONDS * SAMPLE_RATE)))


def _run(command: list[str], data: bytes, name: str) -> bytes:
    result = subprocess.run(command, input=data, capture_output=True, timeout=CODEC_TIMEOUT_SECONDS)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"ffmpeg {name} round trip failed: {result.stderr.decode(errors='replace')[-300:]}")
    return result.stdout


def align(decoded: np.ndarray, reference: np.ndarray, max_delay: int) -> np.ndarray:
    """`decoded` shifted by the delay (0..max_delay samples) that best matches `reference`, at its length.

    Codecs delay and pad the signal (MP3 and AAC priming, frame padding); without the shift a variant
    would be a few tens of milliseconds late against its original, with the tail cut.
    """
    size = fast_size(decoded.size + reference.size)
    correlation = np.fft.irfft(np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size)), size)
    delay = int(np.argmax(correlation[: min(max_delay, decoded.size - 1) + 1]))
    return fit_length(decoded[delay:], reference.size)


@dataclass(frozen=True)
class CodecRoundTrip:
    """A codec, sample rate and bitrate drawn from `codecs` (weighted), and the clip passed through them."""

    codecs: tuple[Codec, ...]

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        weights = np.array([codec.weight for codec in self.codecs])
        codec = self.codecs[int(rng.choice(len(self.codecs), p=weights / weights.sum()))]
        rate = codec.rates[int(rng.integers(len(codec.rates)))]
        options = codec.options[int(rng.integers(len(codec.options)))]
        return codec_round_trip(samples, codec, rate, options)


# --- chains and cached variants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainSettings:
    """What `draw_chain` draws from: named augmentations in signal order, each with a weight, and the
    probabilities of a chain of one, two, three... of them. Its repr is the variants' cache key."""

    steps: tuple[tuple[str, float, Augmentation], ...]
    lengths: tuple[float, ...] = CHAIN_LENGTHS

    def key(self) -> str:
        return hashlib.sha256(f"{RECIPE_VERSION}|{self!r}".encode()).hexdigest()


@functools.cache
def default_settings() -> ChainSettings:
    """The chain this project trains with: codecs most often (the channel a detector meets most in the
    field), then noise, RawBoost and band limits; gain and speed now and then. Codecs this ffmpeg cannot
    encode are left out (and, through the key, so are the variants of an ffmpeg that could)."""
    steps: list[tuple[str, float, Augmentation]] = [
        ("speed", 0.07, SpeedChange()),
        ("convolutive", 0.10, ConvolutiveNoise(orders=1)),
        ("nonlinear", 0.08, ConvolutiveNoise()),
        ("band", 0.10, BandLimit()),
        ("gain", 0.07, Gain()),
        ("impulsive", 0.08, ImpulsiveNoise()),
        ("stationary", 0.10, StationaryNoise()),
        ("noise", 0.12, AdditiveNoise()),
    ]
    codecs = available_codecs()
    if codecs:
        steps.append(("codec", 0.28, CodecRoundTrip(codecs)))
    return ChainSettings(tuple(steps))


@dataclass(frozen=True)
class Chain:
    """Augmentations applied in order, the peak kept under PEAK_CEILING after each step."""

    steps: tuple[tuple[str, Augmentation], ...]

    @property
    def label(self) -> str:
        return "+".join(name for name, _ in self.steps)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.asarray(samples, dtype=np.float32)
        for _, augmentation in self.steps:
            out = limit_peak(augmentation(out, rng).astype(np.float32))
        return out


def draw_chain(rng: np.random.Generator, settings: ChainSettings | None = None) -> Chain:
    """One to three distinct augmentations, drawn by weight, applied in the settings' signal order."""
    settings = settings or default_settings()
    lengths = np.array(settings.lengths)
    count = min(1 + int(rng.choice(len(lengths), p=lengths / lengths.sum())), len(settings.steps))
    weights = np.array([weight for _, weight, _ in settings.steps])
    chosen = sorted(rng.choice(len(weights), size=count, replace=False, p=weights / weights.sum()).tolist())
    return Chain(tuple((settings.steps[i][0], settings.steps[i][2]) for i in chosen))


def variant_key(source: Path, index: int, seed: int, settings: ChainSettings) -> str:
    """Hex digest of the clip's bytes, the copy number, the seed and the chain settings: a moved clip keeps
    its variants; a changed clip or a changed recipe gets new ones."""
    return hashlib.sha256(f"{copy_key(source, index, seed)}:{settings.key()}".encode()).hexdigest()


def make_variant(source: Path, target: Path, seed: int, settings: ChainSettings | None = None) -> Chain:
    """Decode → a drawn chain → 16 kHz FLAC of the same length; returns the chain that made it."""
    rng = np.random.default_rng(seed)
    chain = draw_chain(rng, settings)
    samples = decode_audio(source)
    augmented = chain(samples, rng)
    if augmented.size != samples.size:
        raise RuntimeError(f"{chain.label} changed the length of {source}: {samples.size} -> {augmented.size}")
    write_flac(limit_peak(augmented), target)
    return chain


def augmented_copies(
    rows: Sequence[ManifestRow], copies: int, directory: Path, seed: int = 0, settings: ChainSettings | None = None
) -> list[list[Path]]:
    """`copies` augmented variants of every row (either class), made where missing: one list per row."""
    settings = settings or default_settings()
    variants: list[list[Path]] = [[] for _ in rows]
    jobs = [(position, row, index) for position, row in enumerate(rows) for index in range(copies)]
    for position, row, index in tqdm(jobs, desc="augmented variants", unit="clip", leave=False):
        key = variant_key(row.path, index, seed, settings)
        target = Path(directory) / f"{Path(row.path).stem}-{key[:KEY_CHARS]}.flac"
        if not target.is_file():
            make_variant(row.path, target, int(key[:SEED_CHARS], 16) >> 1, settings)
        variants[position].append(target)
    return variants


def augmented_rows(rows: Sequence[ManifestRow], copies: int, directory: Path) -> list[ManifestRow]:
    """The variants of `augmented_copies` as rows of their clip's label and split, without its channel."""
    made = []
    for row, paths in zip(rows, augmented_copies(rows, copies, directory), strict=True):
        made += [dataclasses.replace(row, path=path, extras=without_channel(row)) for path in paths]
    return made

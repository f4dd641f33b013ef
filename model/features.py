"""Front ends (Whisper log-mel by default) and the config that pins them to a trained model.

A FeatureConfig is saved beside every checkpoint. Serving rebuilds the extractor from it,
and `check_compatible` refuses a checkpoint whose features this code would compute
differently (other parameters, or a changed extractor: a reference signal's features are
stored at training time and recomputed at load time).

`extractor` names the front end. Each frames the audio as Whisper does (400-sample Hann
window, 160-sample hop: 100 frames per second, `samples // 160` of them) after the same level
normalisation, and its spectral rows keep the clip's top 80 dB on Whisper's (log10 + 4) / 4
scale, so a front end changes only the frequency axis the detector sees (or adds the samples):

- whisper_log_mel: Whisper's log-mel, 80 (or 128) mel bands; what every checkpoint so far uses.
- linear_log_spec: the same power spectrum pooled into 80 (or 128) equal-width bands up to 8 kHz.
- lfcc: 20 LFCCs over 20 linear filters plus deltas and double deltas (60 rows), as in the
  ASVspoof baselines.
- whisper_log_mel_samples: Whisper's 80-band log-mel with the (level-normalised) audio itself
  below it, each frame's 160 samples as 160 more rows, for a detector that also reads the raw
  waveform (whisper_pitch_probe). Windows, padding, batching and the timeline then cut both
  alike, through the one path every detector uses.

Müller et al. (2022, "Does audio deepfake detection generalize?") found linear-frequency front
ends generalised to in-the-wild audio much better than mel ones: the mel scale spends its
resolution below 1 kHz and blurs the upper band, where vocoder artefacts sit.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio
import whisper

from model.audio import SAMPLE_RATE
from model.vad import MIN_SPEECH_SECONDS, SpeechSpan, find_speech, speech_seconds

WHISPER_LOG_MEL = "whisper_log_mel"
LINEAR_LOG_SPEC = "linear_log_spec"
LFCC = "lfcc"
WHISPER_LOG_MEL_SAMPLES = "whisper_log_mel_samples"
EXTRACTOR_NAME = WHISPER_LOG_MEL  # the default front end
WHISPER_N_FFT = whisper.audio.N_FFT
WHISPER_HOP_LENGTH = whisper.audio.HOP_LENGTH
SUPPORTED_N_MELS = (80, 128)  # whisper ships mel filterbanks of these sizes
# 80 bands of 100 Hz: the mel default's input height (same detector size, same SpecAugment band
# widths, so a comparison measures the frequency axis), still 3x finer than mel's top bands (about
# 300 Hz apart) and near the 400-point Hann window's own resolution; 128 (62.5 Hz) keeps nearly all.
LINEAR_BANDS = (80, 128)
LINEAR_MAX_HZ = SAMPLE_RATE / 2
FFT_BIN_HZ = SAMPLE_RATE / WHISPER_N_FFT  # 40 Hz between STFT bins
# Whisper's scale: log10 power floored at 1e-10, at most 8 log10 units (80 dB) below the clip's
# loudest value, then (x + 4) / 4, so speech lies roughly in -1..1.5.
LOG_FLOOR = 1e-10
LOG_RANGE = 8.0
LOG_OFFSET = 4.0
LOG_SCALE = 4.0
DB_PER_LOG10 = 10.0
# ASVspoof 2019/2021 LFCC baselines: 20 linear filters, 20 coefficients, + deltas + double deltas.
LFCC_FILTERS = 20
LFCC_COEFFICIENTS = 20
LFCC_DELTA_WINDOW = 5  # frames (±2), torchaudio's default and the usual HTK regression window
LFCC_ROWS = 3 * LFCC_COEFFICIENTS
SAMPLE_ROWS_MELS = 80  # whisper_log_mel_samples: its log-mel rows, then hop_length rows of samples
DEFAULT_WINDOW_SECONDS = 6.0
REFERENCE_SEED = 1234
REFERENCE_SECONDS = 1.0
REFERENCE_TOLERANCE = 1e-3
DEFAULT_TARGET_LEVEL_DBFS = -25.0
LEVEL_FRAME_SAMPLES = 320  # 20 ms at 16 kHz
LEVEL_ACTIVE_RANGE_DB = 40.0  # frames this far below the loudest one count as silence
SILENCE_RMS = 1e-6  # below this nothing is audible: leave the clip alone rather than boost noise
VAD_LEVEL_DBFS = DEFAULT_TARGET_LEVEL_DBFS  # the level the VAD hears every clip at


class FeatureConfigMismatch(ValueError):
    """A checkpoint was trained on features this code does not reproduce."""


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the numbers a detector sees."""

    extractor: str = EXTRACTOR_NAME
    sample_rate: int = SAMPLE_RATE
    # Rows of the feature matrix, the detector's input height (ModelConfig.n_mels): mel or
    # linear bands, or LFCC rows (coefficients, deltas, double deltas). Named from the mel era.
    n_mels: int = 80
    n_fft: int = WHISPER_N_FFT
    hop_length: int = WHISPER_HOP_LENGTH
    # Longer audio is scored in windows of at most this length (training crops to it).
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    # Each window is scaled so its active-speech RMS is this level before the front end: every
    # front end is absolute in level, so without this the recording level would be a cue (None disables).
    target_level_dbfs: float | None = DEFAULT_TARGET_LEVEL_DBFS
    # Cut each clip to its speech (model.vad, Silero) before windowing, so the length of the
    # non-speech around it is no cue. Off in every checkpoint made before the option existed.
    vad_trim: bool = False
    # Per-bin means of the features of a fixed reference signal, filled in at save time.
    reference_bin_means: tuple[float, ...] = field(default=(), compare=False)

    @classmethod
    def for_front_end(cls, extractor: str = EXTRACTOR_NAME, vad_trim: bool = False) -> FeatureConfig:
        """The default config of a front end (its default row count), e.g. for `--front-end lfcc`."""
        if extractor not in FRONT_ENDS:
            raise FeatureConfigMismatch(f"unknown front end {extractor!r}; choose one of {', '.join(FRONT_ENDS)}")
        return cls(extractor=extractor, n_mels=FRONT_ENDS[extractor].bins[0], vad_trim=vad_trim)

    def validate(self) -> None:
        """Refuse parameters the front ends cannot honour."""
        problems = []
        front_end = FRONT_ENDS.get(self.extractor)
        if front_end is None:
            problems.append(f"extractor {self.extractor!r} (this code has {', '.join(map(repr, FRONT_ENDS))})")
        elif self.n_mels not in front_end.bins:
            problems.append(f"n_mels {self.n_mels} ({self.extractor} supports {front_end.bins})")
        if self.sample_rate != SAMPLE_RATE:
            problems.append(f"sample_rate {self.sample_rate} (the front ends need {SAMPLE_RATE})")
        if self.n_fft != WHISPER_N_FFT or self.hop_length != WHISPER_HOP_LENGTH:
            problems.append(
                f"n_fft/hop {self.n_fft}/{self.hop_length} (whisper has {WHISPER_N_FFT}/{WHISPER_HOP_LENGTH})"
            )
        if problems:
            raise FeatureConfigMismatch("unsupported feature config: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    def with_reference(self) -> FeatureConfig:
        return dataclasses.replace(self, reference_bin_means=tuple(reference_bin_means(self)))

    def check_compatible(self) -> None:
        """Raise FeatureConfigMismatch unless this code reproduces the saved features."""
        self.validate()
        if not self.reference_bin_means:
            raise FeatureConfigMismatch("feature config has no reference_bin_means; re-save it with this code")
        current = np.asarray(reference_bin_means(self))
        saved = np.asarray(self.reference_bin_means)
        if saved.shape != current.shape or np.abs(saved - current).max() > REFERENCE_TOLERANCE:
            raise FeatureConfigMismatch(
                "this code computes different features than the model was trained on "
                "(reference signal check failed); retrain or install the matching versions"
            )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> FeatureConfig:
        values = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FeatureConfigMismatch(f"feature config {path.name} has fields this code does not know: {unknown}")
        values["reference_bin_means"] = tuple(values.get("reference_bin_means", ()))
        return cls(**values)


def normalize_level(waveform: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale so the RMS of the active (non-silent) 20 ms frames is `target_dbfs`.

    Measuring active frames only keeps leading/trailing silence from changing the gain.
    """
    usable = len(waveform) // LEVEL_FRAME_SAMPLES * LEVEL_FRAME_SAMPLES
    frames = waveform[:usable].reshape(-1, LEVEL_FRAME_SAMPLES) if usable else waveform[None, :]
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    active = energy >= energy.max() * 10 ** (-LEVEL_ACTIVE_RANGE_DB / 10)
    rms = float(np.sqrt(energy[active].mean()))
    if rms < SILENCE_RMS:
        return waveform
    return (waveform * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def extract_features(waveform: np.ndarray, config: FeatureConfig) -> torch.Tensor:
    """(n_mels, frames) features of a 16 kHz mono clip by the config's front end; one frame per 10 ms hop."""
    if config.target_level_dbfs is not None:
        waveform = normalize_level(waveform, config.target_level_dbfs)
    audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return FRONT_ENDS[config.extractor].compute(audio, config.n_mels)


def whisper_log_mel(audio: torch.Tensor, bins: int) -> torch.Tensor:
    """Whisper's own log-mel, untouched: the features of every checkpoint trained so far."""
    return whisper.log_mel_spectrogram(audio, n_mels=bins)


def power_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """(n_fft // 2 + 1, samples // hop) |STFT|², framed exactly as whisper frames it (last frame dropped)."""
    window = torch.hann_window(WHISPER_N_FFT)
    stft = torch.stft(audio, WHISPER_N_FFT, WHISPER_HOP_LENGTH, window=window, return_complex=True)
    return stft[..., :-1].abs() ** 2


def whisper_scale(log10_power: torch.Tensor) -> torch.Tensor:
    """Whisper's normalisation: keep the top 80 dB of the clip, then (x + 4) / 4 (roughly unit range)."""
    clipped = torch.maximum(log10_power, log10_power.max() - LOG_RANGE)
    return (clipped + LOG_OFFSET) / LOG_SCALE


@functools.cache
def linear_band_weights(bins: int) -> torch.Tensor:
    """(bins, n_fft // 2 + 1) weights giving each equal-width band's power per Hz.

    STFT bin k stands for the 40 Hz around k * 40 Hz (DC and Nyquist half that); a band takes
    each bin by the share of it inside the band. Per Hz, like whisper's Slaney-normalised mel
    filters (each sums to 1/40), so the same log scale puts both on the same footing.
    """
    centres = np.arange(WHISPER_N_FFT // 2 + 1) * FFT_BIN_HZ
    cell_low = np.clip(centres - FFT_BIN_HZ / 2, 0.0, LINEAR_MAX_HZ)
    cell_high = np.clip(centres + FFT_BIN_HZ / 2, 0.0, LINEAR_MAX_HZ)
    edges = np.linspace(0.0, LINEAR_MAX_HZ, bins + 1)
    overlap = np.minimum(cell_high[None, :], edges[1:, None]) - np.maximum(cell_low[None, :], edges[:-1, None])
    width = LINEAR_MAX_HZ / bins
    return torch.from_numpy(np.clip(overlap, 0.0, None) / (width * FFT_BIN_HZ)).float()


def linear_log_spec(audio: torch.Tensor, bins: int) -> torch.Tensor:
    """Log power in `bins` equal-width bands from 0 to 8 kHz, on whisper's scale."""
    bands = linear_band_weights(bins) @ power_spectrogram(audio)
    return whisper_scale(torch.clamp(bands, min=LOG_FLOOR).log10())


@functools.cache
def lfcc_transform() -> torchaudio.transforms.LFCC:
    """torchaudio's LFCC with whisper's framing (built once: it holds the filterbank and DCT matrices)."""
    framing = {"n_fft": WHISPER_N_FFT, "hop_length": WHISPER_HOP_LENGTH}
    return torchaudio.transforms.LFCC(
        sample_rate=SAMPLE_RATE, n_filter=LFCC_FILTERS, n_lfcc=LFCC_COEFFICIENTS, speckwargs=framing
    )


def lfcc(audio: torch.Tensor, bins: int) -> torch.Tensor:
    """(60, frames): 20 LFCCs, their deltas and double deltas, on whisper's scale.

    torchaudio gives the orthonormal DCT of the filter energies in dB, floored 80 dB below the
    clip's loudest (whisper's range). Dividing by 40 and adding sqrt(20) to c0 (the DCT of a
    constant 1) makes it the DCT of whisper's (log10 + 4) / 4 energies; c0 is then divided by
    sqrt(20) into their mean, so no row is four times the others (a CNN shares its kernels
    across rows). Its filters are peak-1 triangles about 380 Hz wide, not per Hz, so its levels sit
    about 0.65 above the other front ends': a constant offset. Deltas see every frame before the
    last is dropped to match whisper's count.
    """
    cepstra = lfcc_transform()(audio) / (DB_PER_LOG10 * LOG_SCALE)
    cepstra[0] = cepstra[0] / math.sqrt(LFCC_FILTERS) + LOG_OFFSET / LOG_SCALE
    deltas = torchaudio.functional.compute_deltas(cepstra, win_length=LFCC_DELTA_WINDOW)
    double_deltas = torchaudio.functional.compute_deltas(deltas, win_length=LFCC_DELTA_WINDOW)
    return torch.cat([cepstra, deltas, double_deltas])[:, :-1]  # validate pins bins to LFCC_ROWS


def whisper_log_mel_samples(audio: torch.Tensor, bins: int) -> torch.Tensor:
    """(80 + 160, frames): the log-mel, then frame t's samples 160t..160t+159 as column t of 160 rows."""
    mel = whisper_log_mel(audio, SAMPLE_ROWS_MELS)
    frames = mel.shape[-1]
    samples = audio[: frames * WHISPER_HOP_LENGTH].reshape(frames, WHISPER_HOP_LENGTH).T
    return torch.cat([mel, samples])


@dataclass(frozen=True)
class FrontEnd:
    """A feature extractor: (samples,) float32 audio and a row count → (rows, samples // hop)."""

    compute: Callable[[torch.Tensor, int], torch.Tensor]
    bins: tuple[int, ...]  # row counts it supports; the first is its default


FRONT_ENDS = {
    WHISPER_LOG_MEL: FrontEnd(whisper_log_mel, SUPPORTED_N_MELS),
    LINEAR_LOG_SPEC: FrontEnd(linear_log_spec, LINEAR_BANDS),
    LFCC: FrontEnd(lfcc, (LFCC_ROWS,)),
    WHISPER_LOG_MEL_SAMPLES: FrontEnd(whisper_log_mel_samples, (SAMPLE_ROWS_MELS + WHISPER_HOP_LENGTH,)),
}


def split_windows(waveform: np.ndarray, config: FeatureConfig) -> list[np.ndarray]:
    """Cut long audio into equal windows no longer than window_seconds; nothing is dropped."""
    count = max(1, int(np.ceil(len(waveform) / config.window_samples)))
    return np.array_split(waveform, count)


def reference_signal(config: FeatureConfig) -> np.ndarray:
    """A fixed chirp plus seeded noise: a deterministic probe of the extractor."""
    t = np.arange(int(REFERENCE_SECONDS * config.sample_rate)) / config.sample_rate
    chirp = 0.5 * np.sin(2 * np.pi * (100 + 3000 * t) * t)
    noise = 0.05 * np.random.default_rng(REFERENCE_SEED).standard_normal(t.shape)
    return (chirp + noise).astype(np.float32)


def reference_bin_means(config: FeatureConfig) -> list[float]:
    features = extract_features(reference_signal(config), config)
    return [round(float(v), 6) for v in features.mean(dim=1)]


class AudioFeatureExtractor:
    """The one extractor, built from a FeatureConfig (any front end), used by training and serving."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.config.validate()

    def __call__(self, waveform: np.ndarray) -> torch.Tensor:
        return extract_features(waveform, self.config)

    def speech_span(self, waveform: np.ndarray) -> SpeechSpan:
        """The part of a whole clip the detector sees: its speech with vad_trim, else all of it.

        Training (the feature cache) and scoring (model.inference) both cut clips here, so they cut
        alike. The VAD hears the clip at the target level, so a quiet recording is not taken for silence.
        """
        if not self.config.vad_trim:
            return SpeechSpan(0, len(waveform))
        return find_speech(normalize_level(waveform, VAD_LEVEL_DBFS))

    def speech_spans(self, waveforms: Sequence[np.ndarray], check_speech: bool = False) -> list[SpeechSpan]:
        """speech_span of each clip; with `check_speech` every span says how much speech the VAD found
        (at least MIN_SPEECH_SECONDS, or all of it), for all clips in one batch where vad_trim has not."""
        spans = [self.speech_span(w) for w in waveforms]
        if not check_speech or self.config.vad_trim or not spans:
            return spans
        found = speech_seconds([normalize_level(w, VAD_LEVEL_DBFS) for w in waveforms], MIN_SPEECH_SECONDS)
        return [dataclasses.replace(span, speech_seconds=seconds) for span, seconds in zip(spans, found, strict=True)]

    def trim(self, waveform: np.ndarray) -> np.ndarray:
        span = self.speech_span(waveform)
        return waveform[span.start : span.end]

    def split(self, waveform: np.ndarray) -> list[np.ndarray]:
        return split_windows(waveform, self.config)


def pad_batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (rows, frames) tensors into (batch, n_mels, max_frames), zero-padded, plus lengths."""
    lengths = torch.tensor([f.shape[-1] for f in features], dtype=torch.long)
    batch = torch.zeros(len(features), features[0].shape[0], int(lengths.max()))
    for i, f in enumerate(features):
        batch[i, :, : f.shape[-1]] = f
    return batch, lengths

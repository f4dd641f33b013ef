"""Copy-synthesis vocoders: resynthesise a real clip through a classic parametric or STFT bottleneck.

Each is a pure function of 16 kHz float32 samples, its parameters and a seed, and returns float32
samples of the same length: same speaker and words as the real clip, only the vocoder's trace differs.

- `lpc_vocoder`: an LPC-10-style source-filter vocoder. Frame-wise all-pole envelope (Levinson-Durbin
  on windowed autocorrelation), an F0 track and a voicing decision; the excitation is rebuilt as a
  jittered pulse train in voiced frames and white noise in unvoiced ones, filtered frame by frame,
  gain-matched and overlap-added. Buzzy, robotic, no natural glottal source or phase.
- `phase_vocoder`: a time-stretch and back by the classic phase vocoder (torchaudio's, no phase
  locking) from random initial phases: the vertical phase coherence between bins is lost, which is
  the phasiness ("reverberant", "behind glass") of STFT time-scale modification.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as taf

from model.audio import SAMPLE_RATE

# LPC vocoder
PRE_EMPHASIS = 0.9375  # LPC-10's
LAG_WINDOW_HZ = 60.0  # Gaussian lag window: widens formant bandwidths a little, keeps the filters tame
WHITE_NOISE_CORRECTION = 1.0001  # r[0] scaled up: a -40 dB noise floor, so Levinson-Durbin never stalls
F0_RANGE_HZ = (60.0, 400.0)
VOICING_THRESHOLD = 0.45  # normalised autocorrelation peak above which a frame is voiced
SILENCE_DB = -45.0  # frames this far below the loudest are unvoiced whatever their periodicity
PITCH_JITTER = 0.01  # relative period jitter of the pulse train
VOICED_NOISE = 0.05  # amplitude of the noise added to the pulses in voiced frames (mixed excitation)

# phase vocoder
PHASE_VOCODER_HOP_DIVISOR = 4


def lpc_vocoder(samples: np.ndarray, order: int, frame_size: int, seed: int) -> np.ndarray:
    """Resynthesise `samples` from an order-`order` LPC envelope, F0 and voicing per `frame_size` frame."""
    x = np.asarray(samples, dtype=np.float64)
    length = x.size
    if length == 0:
        return np.zeros(0, dtype=np.float32)
    hop = frame_size // 2
    rng = np.random.default_rng(seed)
    padded = np.concatenate([np.zeros(frame_size), x, np.zeros(frame_size + hop)])
    emphasised = np.concatenate([padded[:1], padded[1:] - PRE_EMPHASIS * padded[:-1]])
    starts = np.arange(0, padded.size - frame_size + 1, hop)
    window = np.hanning(frame_size + 1)[:-1]  # periodic Hann: overlap-adds to a constant at half overlap
    frames = emphasised[starts[:, None] + np.arange(frame_size)] * window
    coefficients = _lpc(frames, order)
    f0 = _f0_track(padded, starts, frame_size)
    excitation = _excitation(f0, starts, hop, padded.size, rng)
    # Each frame's filter runs over the frame and one frame before it, so its start-up transient is gone.
    warm = np.concatenate([np.zeros(frame_size), excitation])
    segments = warm[starts[:, None] + np.arange(2 * frame_size)]
    numerator = np.zeros_like(coefficients)
    numerator[:, 0] = 1.0
    segments, coefficients, numerator = (torch.from_numpy(a) for a in (segments, coefficients, numerator))
    filtered = taf.lfilter(segments, coefficients, numerator, clamp=False, batching=True).numpy()[:, frame_size:]
    synthetic = filtered * window
    target = np.sqrt(np.mean(frames**2, axis=1))
    actual = np.sqrt(np.mean(synthetic**2, axis=1))
    synthetic *= (target / np.maximum(actual, 1e-12))[:, None]
    out = np.zeros(padded.size)
    np.add.at(out, starts[:, None] + np.arange(frame_size), synthetic)
    de_emphasis = torch.tensor([1.0, -PRE_EMPHASIS], dtype=torch.float64)
    out = taf.lfilter(torch.from_numpy(out), de_emphasis, torch.tensor([1.0, 0.0], dtype=torch.float64), clamp=False)
    out = out.numpy()
    return np.nan_to_num(out[frame_size : frame_size + length]).astype(np.float32)


def _lpc(frames: np.ndarray, order: int) -> np.ndarray:
    """Prediction polynomials [1, a1..ap] per frame: Levinson-Durbin on lag-windowed autocorrelation."""
    size = 1 << int(np.ceil(np.log2(2 * frames.shape[1])))
    spectrum = np.fft.rfft(frames, n=size, axis=1)
    r = np.fft.irfft(np.abs(spectrum) ** 2, n=size, axis=1)[:, : order + 1]
    lags = np.arange(order + 1)
    r = r * np.exp(-0.5 * (2 * np.pi * LAG_WINDOW_HZ * lags / SAMPLE_RATE) ** 2)
    r[:, 0] = r[:, 0] * WHITE_NOISE_CORRECTION + 1e-9
    a = np.zeros((frames.shape[0], order + 1))
    a[:, 0] = 1.0
    error = r[:, 0].copy()
    for i in range(1, order + 1):
        reflection = -(r[:, i] + np.sum(a[:, 1:i] * r[:, i - 1 : 0 : -1], axis=1)) / error
        a[:, 1:i] = a[:, 1:i] + reflection[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = reflection
        error = error * (1.0 - reflection**2)
    return a


def _f0_track(padded: np.ndarray, starts: np.ndarray, frame_size: int) -> np.ndarray:
    """F0 in Hz per frame (0 where unvoiced), from the normalised autocorrelation over two frames."""
    span = 2 * frame_size
    centred = np.concatenate([np.zeros(frame_size // 2), padded, np.zeros(span)])
    frames = centred[starts[:, None] + np.arange(span)]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(span)
    size = 1 << int(np.ceil(np.log2(2 * span)))
    r = np.fft.irfft(np.abs(np.fft.rfft(frames, n=size, axis=1)) ** 2, n=size, axis=1)[:, :span]
    r = r / (span - np.arange(span))  # unbiased
    energy = r[:, 0]
    low, high = int(SAMPLE_RATE / F0_RANGE_HZ[1]), int(SAMPLE_RATE / F0_RANGE_HZ[0])
    high = min(high, span - 1)
    lag = low + np.argmax(r[:, low : high + 1], axis=1)
    peak = r[np.arange(len(lag)), lag] / np.maximum(energy, 1e-12)
    loud = energy > energy.max(initial=0.0) * 10 ** (SILENCE_DB / 10)
    voiced = (peak > VOICING_THRESHOLD) & loud
    return np.where(voiced, SAMPLE_RATE / lag, 0.0)


def _excitation(f0: np.ndarray, starts: np.ndarray, hop: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Jittered unit pulses where voiced (one per period of the interpolated F0), noise where not."""
    centres = starts + hop  # frame centres
    per_sample = np.interp(np.arange(length), centres, f0)
    voiced = np.interp(np.arange(length), centres, (f0 > 0).astype(float)) > 0.5
    noise = rng.standard_normal(length)
    pulses = np.zeros(length)
    position = 0.0
    while position < length:
        index = int(position)
        if voiced[index] and per_sample[index] > 0:
            pulses[index] = 1.0
            period = SAMPLE_RATE / per_sample[index]
            position += period * (1.0 + PITCH_JITTER * rng.standard_normal())
        else:
            position += hop / 4
    # Pulses carry ~1/period power per sample; scale noise to match so voicing changes are not level jumps.
    pulse_power = np.where(voiced, per_sample / SAMPLE_RATE, 0.0)
    voiced_noise = VOICED_NOISE * np.sqrt(pulse_power) * noise
    return np.where(voiced, pulses + voiced_noise, noise)


def phase_vocoder(samples: np.ndarray, fft_size: int, rate: float, seed: int) -> np.ndarray:
    """Time-stretch by `rate` with a phase vocoder, then back by 1/rate, from seeded random phases."""
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    length = x.numel()
    if length == 0:
        return np.zeros(0, dtype=np.float32)
    hop = fft_size // PHASE_VOCODER_HOP_DIVISOR
    window = torch.hann_window(fft_size)
    bins = fft_size // 2 + 1
    advance = torch.linspace(0, np.pi * hop, bins)[..., None]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        signal = x
        for step, target in ((rate, None), (1.0 / rate, length)):
            spectrum = torch.stft(signal, fft_size, hop, window=window, return_complex=True)
            offsets = torch.rand(bins, 1, generator=generator) * (2 * np.pi)
            spectrum = spectrum * torch.polar(torch.ones_like(offsets), offsets)
            stretched = taf.phase_vocoder(spectrum, step, advance)
            signal = torch.istft(stretched, fft_size, hop, window=window, length=target)
    out = np.nan_to_num(signal.numpy().astype(np.float64))
    # Random phases cancel part of the overlap-added energy: restore the clip's level.
    out *= np.sqrt(np.mean(np.square(x.numpy(), dtype=np.float64)) / max(float(np.mean(out**2)), 1e-20))
    return out.astype(np.float32)

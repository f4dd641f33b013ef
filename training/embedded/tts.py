"""Local speech synthesisers: espeak-ng, festival (kal diphone), flite (kal, awb, rms) and Griffin-Lim.

Each wrapper runs its engine as a subprocess (argument list, no shell, timeout) into a temporary
WAV file and returns the result decoded by `model.audio.decode_audio`, the same decoder the real
clips go through. Voice, speed and pitch vary per clip (drawn by the planner) so each attack is a
spread of voices rather than one fixed timbre. Griffin-Lim instead resynthesises a real clip from
its magnitude spectrogram: same speaker, same words, synthetic phase.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.transforms as tat

from model.audio import SAMPLE_RATE, decode_audio

TTS_TIMEOUT_SECONDS = 60.0
GRIFFIN_LIM_MOMENTUM = 0.99

ESPEAK = "espeak-ng"
FESTIVAL = "festival-kal"
FLITE_VOICES = ("kal", "awb", "rms")
FLITE_ATTACKS = tuple(f"flite-{voice}" for voice in FLITE_VOICES)
GRIFFIN_LIM = "griffin-lim"
ENGLISH_ENGINES = (FESTIVAL, *FLITE_ATTACKS)
ATTACKS = (ESPEAK, FESTIVAL, *FLITE_ATTACKS, GRIFFIN_LIM)

# espeak-ng voice per language code of the real data; languages without a voice get only Griffin-Lim.
ESPEAK_VOICES = {
    "ar": "ar", "ca": "ca", "cs": "cs", "da": "da", "de": "de", "el": "el", "en": "en-us", "es": "es",
    "fi": "fi", "fr": "fr-fr", "ga": "ga", "he": "he", "hu": "hu", "id": "id", "it": "it", "lt": "lt",
    "ml": "ml", "nb": "nb", "nl": "nl", "nn": "nb", "pt": "pt-br", "ro": "ro", "ru": "ru", "sl": "sl",
    "sr": "sr", "sv": "sv", "tn": "tn", "uk": "uk",
}  # fmt: skip
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
ESPEAK_WPM_RANGE = (130, 190)
ESPEAK_PITCH_RANGE = (25, 75)
STRETCH_RANGE = (0.85, 1.25)
GRIFFIN_LIM_FFT_SIZES = (512, 1024)
GRIFFIN_LIM_MEL_BANDS = 80  # the TTS vocoder bottleneck: text-to-speech models predict mel frames
GRIFFIN_LIM_ITERATIONS = (8, 16, 32)


@dataclass(frozen=True)
class Voice:
    """How one fake clip is synthesised: the attack plus the per-clip voice settings."""

    attack: str
    name: str
    speed: float = 1.0
    pitch: int = 0
    fft_size: int = 0
    iterations: int = 0


class SynthesisError(RuntimeError):
    """An engine failed or produced no audio."""


def espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a real clip's language, or None when espeak-ng has none."""
    return ESPEAK_VOICES.get(language)


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """Speak `text` with a TTS engine and return 16 kHz mono float32 samples."""
    with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
        output = Path(tmp) / "speech.wav"
        command, stdin = _command(voice, text, output)
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, timeout=TTS_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise SynthesisError(f"{voice.attack} took longer than {TTS_TIMEOUT_SECONDS:g} s") from error
        if result.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
            raise SynthesisError(f"{voice.attack} failed: {result.stderr.decode(errors='replace')[-300:]}")
        return decode_audio(output)


def _command(voice: Voice, text: str, output: Path) -> tuple[list[str], bytes | None]:
    """The engine's argument list and what it reads on stdin (text on stdin cannot be taken for an option)."""
    if voice.attack == ESPEAK:
        speed, pitch = str(round(voice.speed)), str(voice.pitch)
        return [_tool("espeak-ng"), "-v", voice.name, "-s", speed, "-p", pitch, "-w", str(output)], text.encode()
    if voice.attack == FESTIVAL:
        setup = f"(begin (voice_kal_diphone) (Parameter.set 'Duration_Stretch {voice.speed:.3f}))"
        return [_tool("text2wave"), "-o", str(output), "-eval", setup], text.encode()
    if voice.attack in FLITE_ATTACKS:
        stretch = f"duration_stretch={voice.speed:.3f}"
        return [_tool("flite"), "-voice", voice.name, "-t", text, "-o", str(output), "--setf", stretch], None
    raise ValueError(f"{voice.attack!r} is not a text-to-speech attack")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SynthesisError(f"{name} is not installed (see scripts/setup.sh)")
    return path


def griffin_lim(samples: np.ndarray, voice: Voice, seed: int) -> np.ndarray:
    """Vocode a clip as a Tacotron-style TTS would: 80-band mel → linear magnitude → Griffin-Lim.

    The mel bottleneck is what a TTS acoustic model predicts; inverting it (least squares, then
    Griffin-Lim phase estimation from a seeded random start) gives the classic vocoder artefacts.
    Inverting the exact linear magnitude instead would only re-estimate phase, which is not an
    attack any TTS system produces.
    """
    hop = voice.fft_size // 4
    n_stft = voice.fft_size // 2 + 1
    spectrogram = tat.Spectrogram(n_fft=voice.fft_size, hop_length=hop, power=1.0)
    to_mel = tat.MelScale(n_mels=GRIFFIN_LIM_MEL_BANDS, sample_rate=SAMPLE_RATE, n_stft=n_stft)
    # gelsd (SVD) tolerates the rank-deficient filterbank that short FFTs give.
    from_mel = tat.InverseMelScale(n_stft=n_stft, n_mels=GRIFFIN_LIM_MEL_BANDS, sample_rate=SAMPLE_RATE, driver="gelsd")
    inverse = tat.GriffinLim(
        n_fft=voice.fft_size,
        hop_length=hop,
        power=1.0,
        n_iter=voice.iterations,
        momentum=GRIFFIN_LIM_MOMENTUM,
        length=samples.size,
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        magnitude = spectrogram(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
        audio = inverse(from_mel(to_mel(magnitude)).clamp(min=0.0))
    return audio.numpy().astype(np.float32)


def draw_voice(attack: str, language: str, rng: np.random.Generator) -> Voice:
    """Per-clip voice settings for an attack, so each attack covers several voices and speeds."""
    if attack == ESPEAK:
        base = espeak_voice(language) or espeak_voice("en")
        variant = str(rng.choice(ESPEAK_VARIANTS))
        return Voice(
            attack,
            f"{base}+{variant}",
            speed=float(rng.integers(*ESPEAK_WPM_RANGE, endpoint=True)),
            pitch=int(rng.integers(*ESPEAK_PITCH_RANGE, endpoint=True)),
        )
    if attack == GRIFFIN_LIM:
        return Voice(
            attack,
            attack,
            fft_size=int(rng.choice(GRIFFIN_LIM_FFT_SIZES)),
            iterations=int(rng.choice(GRIFFIN_LIM_ITERATIONS)),
        )
    speed = round(float(rng.uniform(*STRETCH_RANGE)), 3)
    if attack == FESTIVAL:
        return Voice(attack, "kal_diphone", speed=speed)
    if attack in FLITE_ATTACKS:
        return Voice(attack, attack.removeprefix("flite-"), speed=speed)
    raise ValueError(f"unknown attack {attack!r}")

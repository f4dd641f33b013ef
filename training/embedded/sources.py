"""Find the real recordings shipped by Debian data packages, with the words each one speaks.

Three packages hold human speech: klettres-data (letters and syllables read by native speakers,
with the letter or syllable named in each language's sounds.xml), ktuberling-data (spoken
object names; the words are knowable where the file name or theme name is the word itself) and
fillets-ng-data-nl (Dutch voice-acted dialogue, its Dutch and English text in the game's
dialogs_nl.lua). Each clip gets a split group: the language for klettres and ktuberling (one
speaker per language, possibly the same person in both packages) and the game level for fillets
(two voice actors read every level, so levels are the finest disjoint unit the data allows).

A fourth source only ever feeds the training split: the asterisk-core-sounds prompts (G.722, 16
kHz), read by four professional voices in five languages (the same person reads English and
Spanish). Their words are knowable only for digits and single letters. Dev and test are drawn
from the first three packages alone, so adding these voices widens the real class's speakers
without touching the held-out material.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

KLETTRES_ROOT = Path("/usr/share/klettres")
KTUBERLING_ROOT = Path("/usr/share/ktuberling/sounds")
FILLETS_ROOT = Path("/usr/share/games/fillets-ng")
ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")

KLETTRES_PACKAGE = "klettres-data"
KTUBERLING_PACKAGE = "ktuberling-data"
FILLETS_PACKAGE = "fillets-ng-data-nl"
ASTERISK_PACKAGE = "asterisk-core-sounds"
FILLETS_LANGUAGE = "nl"
ENGLISH = "en"

# ktuberling names every sound with an English id ("egypt_camel"); only these languages speak a
# word we can read off the id (English) or off the file name ("fr/egypte_chameau.wav").
KTUBERLING_WORD_FROM_ID = frozenset({ENGLISH})
KTUBERLING_WORD_FROM_FILE = frozenset({"fr", "es"})

AUDIO_SUFFIXES = frozenset({".ogg", ".wav", ".opus", ".flac", ".mp3"})
MIN_SOURCE_SECONDS = 0.2
MAX_SOURCE_SECONDS = 9.0

# Raw G.722 is 64 kbit/s, so a prompt's length follows from its size (libsndfile cannot open it).
G722_BYTES_PER_SECOND = 8000
# Prompts that are tones, not speech; the silence/ folder holds only silence.
ASTERISK_NON_SPEECH = frozenset({"beep", "beeperr", "ascending-2tone", "descending-2tone"})
ASTERISK_SKIPPED_FOLDERS = frozenset({"silence"})
# Voice folders are named language_REGION_gender_name, e.g. it_IT_m_Carlo.
_ASTERISK_VOICE = re.compile(r"(?P<language>[a-z]+)_[A-Z]+_[fm]_(?P<name>\w+)")
_SINGLE_LETTER = re.compile(r"[a-z]")

_XML_LANGUAGE = re.compile(r'<language\s+code="([^"]+)"')
_XML_SOUND = re.compile(r'<sound\s+name="([^"]*)"\s+file="([^"]+)"')
_LUA_STRING = r'"((?:[^"\\]|\\.)*)"'
_LUA_DIALOG = re.compile(
    rf"dialogId\(\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*\)\s*dialogStr\(\s*{_LUA_STRING}\s*\)"
)
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class RealClip:
    """One human recording and what is known about it."""

    clip_id: str
    path: Path
    source: str
    language: str
    speaker: str
    group: str
    text: str | None
    text_en: str | None
    duration: float


def find_real_clips() -> list[RealClip]:
    """Every usable real clip of the packages that feed all splits, sorted by id, duplicates dropped."""
    return _usable([*_klettres_clips(), *_ktuberling_clips(), *_fillets_clips()])


def find_train_only_clips() -> list[RealClip]:
    """Every usable prompt of the asterisk voices, which only ever feed the training split."""
    return _usable(list(_asterisk_clips()))


def _usable(candidates: list[RealClip]) -> list[RealClip]:
    """Sorted by id, in the length range, identical files kept once (first id wins)."""
    clips, seen_content = [], set()
    for clip in sorted(candidates, key=lambda c: c.clip_id):
        digest = hashlib.sha1(clip.path.read_bytes()).hexdigest()
        if digest in seen_content or not MIN_SOURCE_SECONDS <= clip.duration <= MAX_SOURCE_SECONDS:
            continue
        seen_content.add(digest)
        clips.append(clip)
    return clips


def base_language(code: str) -> str:
    """`pt_BR` → `pt`, `sr@latin` → `sr`: regional variants may share a speaker, so they share a group."""
    return re.split(r"[_@-]", code, maxsplit=1)[0].lower()


def safe_id(*parts: str) -> str:
    """A file-name-safe, stable clip id built from its parts."""
    return "-".join(_UNSAFE_ID.sub("_", part).strip("_") for part in parts)


def _duration(path: Path) -> float:
    try:
        return sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError):
        return 0.0


def _klettres_clips() -> Iterator[RealClip]:
    for xml_path in sorted(KLETTRES_ROOT.glob("*/sounds.xml")):
        text = xml_path.read_text(encoding="utf-8", errors="replace")
        code_match = _XML_LANGUAGE.search(text)
        code = code_match.group(1) if code_match else xml_path.parent.name
        language = base_language(code)
        for name, relative in _XML_SOUND.findall(text):
            path = KLETTRES_ROOT / relative
            if not path.is_file():
                continue
            word = html.unescape(name).strip() or None
            yield RealClip(
                clip_id=safe_id("klettres", code, path.parent.name, path.stem),
                path=path,
                source=KLETTRES_PACKAGE,
                language=language,
                speaker=f"klettres:{code}",
                group=f"lang:{language}",
                text=word,
                text_en=word if language == ENGLISH else None,
                duration=_duration(path),
            )


def _ktuberling_clips() -> Iterator[RealClip]:
    for theme in sorted(KTUBERLING_ROOT.glob("*.soundtheme")):
        text = theme.read_text(encoding="utf-8", errors="replace")
        code_match = _XML_LANGUAGE.search(text)
        code = code_match.group(1) if code_match else theme.stem
        language = base_language(code)
        for name, relative in _XML_SOUND.findall(text):
            path = KTUBERLING_ROOT / relative
            if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            word = _ktuberling_word(language, name, path)
            yield RealClip(
                clip_id=safe_id("ktuberling", code, path.stem),
                path=path,
                source=KTUBERLING_PACKAGE,
                language=language,
                speaker=f"ktuberling:{code}",
                group=f"lang:{language}",
                text=word,
                text_en=word if language == ENGLISH else None,
                duration=_duration(path),
            )


def _ktuberling_word(language: str, name: str, path: Path) -> str | None:
    """The spoken word where it can be read off the sound id or file name, else None."""
    if language in KTUBERLING_WORD_FROM_ID:
        label = name
    elif language in KTUBERLING_WORD_FROM_FILE:
        label = path.stem
    else:
        return None
    word = label.split("_", 1)[-1].replace("-", " ").strip()
    return word or None


def _fillets_dialogues() -> dict[str, tuple[str, str]]:
    """Dialogue id → (Dutch line, English line), from every dialogs_nl.lua of the game."""
    lines: dict[str, tuple[str, str]] = {}
    for script in sorted(FILLETS_ROOT.glob(f"script/**/*dialogs_{FILLETS_LANGUAGE}.lua")):
        text = script.read_text(encoding="utf-8", errors="replace")
        for dialog_id, _font, english, dutch in _LUA_DIALOG.findall(text):
            lines.setdefault(dialog_id, (_lua_unescape(dutch), _lua_unescape(english)))
    return lines


def _lua_unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).strip()


def _fillets_clips() -> Iterator[RealClip]:
    lines = _fillets_dialogues()
    sound_root = FILLETS_ROOT / "sound"
    for path in sorted(sound_root.glob(f"**/{FILLETS_LANGUAGE}/*.ogg")):
        if path.stem not in lines:
            continue
        dutch, english = lines[path.stem]
        level = path.parent.parent.relative_to(sound_root).as_posix()
        character = path.stem.split("-")[1] if path.stem.count("-") >= 2 else "x"
        yield RealClip(
            clip_id=safe_id("fillets", FILLETS_LANGUAGE, level, path.stem),
            path=path,
            source=FILLETS_PACKAGE,
            language=FILLETS_LANGUAGE,
            speaker=f"fillets:{FILLETS_LANGUAGE}:{character}",
            group=f"fillets:{level}",
            text=dutch or None,
            text_en=english or None,
            duration=_duration(path),
        )


def _asterisk_clips() -> Iterator[RealClip]:
    for voice_dir in sorted(ASTERISK_ROOT.glob("*_*_*_*")):
        voice = _ASTERISK_VOICE.fullmatch(voice_dir.name)
        if voice is None:
            continue
        language = voice["language"]
        for path in sorted(voice_dir.rglob("*.g722")):
            folder = path.parent.relative_to(voice_dir).as_posix()
            if folder in ASTERISK_SKIPPED_FOLDERS or path.stem in ASTERISK_NON_SPEECH:
                continue
            word = _asterisk_word(folder, path.stem)
            yield RealClip(
                clip_id=safe_id("asterisk", voice_dir.name, *path.relative_to(voice_dir).with_suffix("").parts),
                path=path,
                source=ASTERISK_PACKAGE,
                language=language,
                speaker=f"asterisk:{voice['name']}",
                group=f"asterisk:{voice['name']}",
                text=word,
                text_en=word if language == ENGLISH else None,
                duration=path.stat().st_size / G722_BYTES_PER_SECOND,
            )


def _asterisk_word(folder: str, stem: str) -> str | None:
    """The spoken word of a digit or letter prompt (TTS reads "7" as the number), else None."""
    if folder == "digits" and stem.isdigit():
        return stem
    if folder == "letters" and _SINGLE_LETTER.fullmatch(stem):
        return stem
    return None

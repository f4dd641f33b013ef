"""Find the real recordings shipped by Debian data packages, with the words each one speaks.

Eleven packages hold human speech; `find_real_clips` returns them all (the planner picks splits):

- klettres-data: letters and syllables read by native speakers, the letter or syllable named in
  each language's sounds.xml; one speaker per language, group `lang:LL`.
- ktuberling-data: spoken object names; the words are knowable where the file name or theme name
  is the word itself. One speaker per language (possibly the klettres one), group `lang:LL`.
- fillets-ng-data-nl: Dutch voice-acted dialogue, its Dutch and English text in the game's
  dialogs_nl.lua. Two voice actors read every level, so the level is the group.
- tuxpaint-stamps-default: spoken stamp descriptions (`NAME_desc[_LL].ogg`, `_pt_BR.wav`) in 14
  locales, the English text on the first line of `NAME.txt` and each locale's on `LL.utf8=`.
  The speakers are unknown, so the locale is speaker and group; identical files are kept once.
- festvox-ru: the 620 read sentences (16 kHz, up to 18 s) the festival Russian voice was built
  from, with their text in etc/txt.done.data. The voice itself is the same person, so speaker and
  group are `festvox-ru:msu_ru_nsh` for both.
- asterisk-core-sounds (G.722, 16 kHz; four professional voices, five languages, the same person
  reading English and Spanish), asterisk-prompt-it-menardi-wav (8 kHz WAV), asterisk-prompt-fr-armelle
  and asterisk-prompt-es-co (raw GSM 06.10, 8 kHz; es-co cannot be installed beside the others, so
  setup unpacks it under /opt/deepfake-detector). Telephone prompts, one voice each; their words
  are knowable only for digits and single letters.
- gcin-voice: Mandarin syllables read by two voices (files 3.ogg and 5.ogg of each bopomofo
  syllable); no engine reads bopomofo, so their text is unknown.
- pocketsphinx-testdata: five LibriVox sentences and five spoken card names, with transcripts.

Each clip says its band (8 kHz material is `narrow`, so its fake can go through the same
telephone channel) and its recording family (`SOURCE_FAMILIES`), the unit held-out folds leave
out whole.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

KLETTRES_ROOT = Path("/usr/share/klettres")
KTUBERLING_ROOT = Path("/usr/share/ktuberling/sounds")
FILLETS_ROOT = Path("/usr/share/games/fillets-ng")
ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
MENARDI_ROOT = Path("/usr/share/asterisk/sounds/it_IT_f_Menardi")
ARMELLE_ROOT = Path("/usr/share/asterisk/sounds/fr")
# asterisk-prompt-es-co clashes with the other prompt packages; scripts/setup.sh unpacks it here.
ES_CO_ROOT = Path("/opt/deepfake-detector/asterisk-prompt-es-co/usr/share/asterisk/sounds/es")
TUXPAINT_ROOT = Path("/usr/share/tuxpaint/stamps")
FESTVOX_RU_ROOT = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
GCIN_ROOT = Path("/usr/share/gcin-voice/ogg")
POCKETSPHINX_ROOT = Path("/usr/share/pocketsphinx/test/data")

KLETTRES_PACKAGE = "klettres-data"
KTUBERLING_PACKAGE = "ktuberling-data"
FILLETS_PACKAGE = "fillets-ng-data-nl"
ASTERISK_PACKAGE = "asterisk-core-sounds"
MENARDI_PACKAGE = "asterisk-prompt-it-menardi-wav"
ARMELLE_PACKAGE = "asterisk-prompt-fr-armelle"
ES_CO_PACKAGE = "asterisk-prompt-es-co"
TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
FESTVOX_RU_PACKAGE = "festvox-ru"
GCIN_PACKAGE = "gcin-voice"
POCKETSPHINX_PACKAGE = "pocketsphinx-testdata"
FILLETS_LANGUAGE = "nl"
ENGLISH = "en"

# Recording families: groups of sources that share a studio, a cast or a purpose, left out of
# training together by held-out folds.
SOURCE_FAMILIES = {
    KLETTRES_PACKAGE: "kde-edu",
    KTUBERLING_PACKAGE: "kde-edu",
    FILLETS_PACKAGE: "fillets",
    ASTERISK_PACKAGE: "telephone-prompts",
    MENARDI_PACKAGE: "telephone-prompts",
    ARMELLE_PACKAGE: "telephone-prompts",
    ES_CO_PACKAGE: "telephone-prompts",
    TUXPAINT_PACKAGE: "tuxpaint",
    FESTVOX_RU_PACKAGE: "festvox-ru",
    GCIN_PACKAGE: "gcin",
    POCKETSPHINX_PACKAGE: "pocketsphinx",
}

# What a recording's bandwidth allows: 16 kHz and up is wideband; 8 kHz (telephone prompts, and
# the odd 8 kHz file of the other packages) holds nothing above 4 kHz.
WIDEBAND = "wide"
NARROWBAND = "narrow"
WIDEBAND_MIN_RATE = 16000

# ktuberling names every sound with an English id ("egypt_camel"); only these languages speak a
# word we can read off the id (English) or off the file name ("fr/egypte_chameau.wav").
KTUBERLING_WORD_FROM_ID = frozenset({ENGLISH})
KTUBERLING_WORD_FROM_FILE = frozenset({"fr", "es"})

AUDIO_SUFFIXES = frozenset({".ogg", ".wav", ".opus", ".flac", ".mp3"})
MIN_SOURCE_SECONDS = 0.2
MAX_SOURCE_SECONDS = 9.0
# Longer limits for sources whose clips are read sentences (the builder crops speech anyway).
SOURCE_MAX_SECONDS = {FESTVOX_RU_PACKAGE: 20.0}

# Raw G.722 is 64 kbit/s, so a prompt's length follows from its size (libsndfile cannot open it).
G722_BYTES_PER_SECOND = 8000
# Raw GSM 06.10: one 33-byte frame per 20 ms.
GSM_BYTES_PER_SECOND = 1650
# Prompts that are tones or noise, not speech (tt-monkeys: 16 s of screeching monkeys, the same in
# every language); the silence/ folder holds only silence.
ASTERISK_NON_SPEECH = frozenset({"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"})
ASTERISK_SKIPPED_FOLDERS = frozenset({"silence"})
# Voice folders are named language_REGION_gender_name, e.g. it_IT_m_Carlo.
_ASTERISK_VOICE = re.compile(r"(?P<language>[a-z]+)_[A-Z]+_[fm]_(?P<name>\w+)")
_SINGLE_LETTER = re.compile(r"[a-z]")
MENARDI_SPEAKER = "asterisk:Menardi"
ARMELLE_SPEAKER = "asterisk:Armelle"
ES_CO_SPEAKER = "asterisk:es-co"

# Tux Paint: NAME_desc.ogg is English, NAME_desc_LL.ogg (or _pt_BR.wav) locale LL; every other
# sound of a stamp is an effect. One file is named NAME_desc_da.ogg.ogg.
TUXPAINT_ENGLISH_LOCALE = ENGLISH
_TUXPAINT_DESC = re.compile(
    r"(?P<stamp>.+)_desc(?:_(?P<locale>[a-z]{2,3}(?:_[A-Z]{2})?(?:@[a-z]+)?))?(?:\.(?:ogg|wav))+"
)
_TUXPAINT_LINE = re.compile(r"(?P<locale>[^=\s]+)\.utf8=(?P<text>.*)")

FESTVOX_RU_SPEAKER = "festvox-ru:msu_ru_nsh"
FESTVOX_RU_LANGUAGE = "ru"
_FESTVOX_LINE = re.compile(r'\(\s*(?P<id>\S+)\s+"(?P<text>.*)"\s*\)')
# festvox-ru marks the stressed vowel with a "+" after it: "вол+ос".
_STRESS_MARK = "+"

GCIN_LANGUAGE = "zh"

# pocketsphinx-testdata: the sets of WAV files with transcripts (the .raw files and tidigits/ are
# headerless or features only).
POCKETSPHINX_SETS = {"librivox": "transcription", "cards": "cards.transcription"}
_SPHINX_LINE = re.compile(r"\s*(?:<s>)?(?P<text>.*?)(?:</s>)?\s*\((?P<id>[^()]+)\)\s*")

_XML_LANGUAGE = re.compile(r'<language\s+code="([^"]+)"')
_XML_SOUND = re.compile(r'<sound\s+name="([^"]*)"\s+file="([^"]+)"')
_LUA_STRING = r'"((?:[^"\\]|\\.)*)"'
_LUA_DIALOG = re.compile(
    rf"dialogId\(\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*\)\s*dialogStr\(\s*{_LUA_STRING}\s*\)"
)
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
# The packages that fed the dataset first claim shared content first, so adding sources leaves
# their clips as they were.
_FIRST_CLAIM = (KLETTRES_PACKAGE, KTUBERLING_PACKAGE, FILLETS_PACKAGE)


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
    band: str = WIDEBAND
    family: str = ""

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", SOURCE_FAMILIES.get(self.source, self.source))


def find_real_clips() -> list[RealClip]:
    """Every usable real clip of every package, sorted by id, identical files kept once."""
    return _usable(
        [
            *_klettres_clips(),
            *_ktuberling_clips(),
            *_fillets_clips(),
            *_asterisk_clips(),
            *_menardi_clips(),
            *_armelle_clips(),
            *_es_co_clips(),
            *_tuxpaint_clips(),
            *_festvox_ru_clips(),
            *_gcin_clips(),
            *_pocketsphinx_clips(),
        ]
    )


def max_source_seconds(source: str) -> float:
    """The longest clip a source may give (the builder crops speech to a few seconds)."""
    return SOURCE_MAX_SECONDS.get(source, MAX_SOURCE_SECONDS)


def _usable(candidates: list[RealClip]) -> list[RealClip]:
    """Sorted by id, in the length range, identical files kept once.

    Of identical files the original packages (_FIRST_CLAIM) keep theirs, by first id as before;
    among the others a copy whose words are known wins, then the first id.
    """

    def claim_order(clip: RealClip) -> tuple[bool, bool, str]:
        if clip.source in _FIRST_CLAIM:
            return (False, False, clip.clip_id)
        return (True, clip.text is None, clip.clip_id)

    clips, seen_content = [], set()
    for clip in sorted(candidates, key=claim_order):
        if not MIN_SOURCE_SECONDS <= clip.duration <= max_source_seconds(clip.source):
            continue
        digest = hashlib.sha1(clip.path.read_bytes()).hexdigest()
        if digest in seen_content:
            continue
        seen_content.add(digest)
        clips.append(clip)
    return sorted(clips, key=lambda c: c.clip_id)


def base_language(code: str) -> str:
    """`pt_BR` → `pt`, `sr@latin` → `sr`: regional variants may share a speaker, so they share a group."""
    return re.split(r"[_@-]", code, maxsplit=1)[0].lower()


def safe_id(*parts: str) -> str:
    """A file-name-safe, stable clip id built from its parts."""
    return "-".join(_UNSAFE_ID.sub("_", part).strip("_") for part in parts)


def _ascii_name(name: str) -> str:
    """`ㄅㄚ1` → `u3105u311a1`: non-ASCII names spelled by code point, so ids stay distinct."""
    return "".join(char if char.isascii() else f"u{ord(char):04x}" for char in name)


def _probe(path: Path) -> tuple[float, int]:
    """(duration in seconds, sample rate) as libsndfile reads them; (0.0, 0) where it cannot."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return 0.0, 0
    return info.duration, info.samplerate


def _duration(path: Path) -> float:
    return _probe(path)[0]


def _band(sample_rate: int) -> str:
    return NARROWBAND if 0 < sample_rate < WIDEBAND_MIN_RATE else WIDEBAND


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
            duration, rate = _probe(path)
            yield RealClip(
                clip_id=safe_id("klettres", code, path.parent.name, path.stem),
                path=path,
                source=KLETTRES_PACKAGE,
                language=language,
                speaker=f"klettres:{code}",
                group=f"lang:{language}",
                text=word,
                text_en=word if language == ENGLISH else None,
                duration=duration,
                band=_band(rate),
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
            duration, rate = _probe(path)
            yield RealClip(
                clip_id=safe_id("ktuberling", code, path.stem),
                path=path,
                source=KTUBERLING_PACKAGE,
                language=language,
                speaker=f"ktuberling:{code}",
                group=f"lang:{language}",
                text=word,
                text_en=word if language == ENGLISH else None,
                duration=duration,
                band=_band(rate),
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
        duration, rate = _probe(path)
        yield RealClip(
            clip_id=safe_id("fillets", FILLETS_LANGUAGE, level, path.stem),
            path=path,
            source=FILLETS_PACKAGE,
            language=FILLETS_LANGUAGE,
            speaker=f"fillets:{FILLETS_LANGUAGE}:{character}",
            group=f"fillets:{level}",
            text=dutch or None,
            text_en=english or None,
            duration=duration,
            band=_band(rate),
        )


# --- telephone prompts ----------------------------------------------------------------------------


def _asterisk_clips() -> Iterator[RealClip]:
    """asterisk-core-sounds: the G.722 prompts of every language_REGION_gender_name voice folder."""
    for voice_dir in sorted(ASTERISK_ROOT.glob("*_*_*_*")):
        voice = _ASTERISK_VOICE.fullmatch(voice_dir.name)
        # Menardi's folder has the same form but belongs to its own package (see _menardi_clips).
        if voice is None or voice_dir.name == MENARDI_ROOT.name:
            continue
        language = voice["language"]
        speaker = f"asterisk:{voice['name']}"
        for path in _prompt_files(voice_dir, "*.g722"):
            yield _prompt_clip(
                path,
                voice_dir,
                clip_id=safe_id("asterisk", voice_dir.name, *path.relative_to(voice_dir).with_suffix("").parts),
                source=ASTERISK_PACKAGE,
                language=language,
                speaker=speaker,
                duration=path.stat().st_size / G722_BYTES_PER_SECOND,
                band=WIDEBAND,
            )


def _menardi_clips() -> Iterator[RealClip]:
    """asterisk-prompt-it-menardi-wav: one Italian voice, 8 kHz PCM WAV."""
    yield from _package_prompts(MENARDI_ROOT, "*.wav", MENARDI_PACKAGE, "it", MENARDI_SPEAKER, _duration)


def _armelle_clips() -> Iterator[RealClip]:
    """asterisk-prompt-fr-armelle: one French voice, raw GSM (sounds/{digits,letters,...}/fr link here)."""
    yield from _package_prompts(ARMELLE_ROOT, "*.gsm", ARMELLE_PACKAGE, "fr", ARMELLE_SPEAKER, _gsm_duration)


def _es_co_clips() -> Iterator[RealClip]:
    """asterisk-prompt-es-co: one Colombian Spanish voice, raw GSM, unpacked by setup."""
    yield from _package_prompts(ES_CO_ROOT, "*.gsm", ES_CO_PACKAGE, "es", ES_CO_SPEAKER, _gsm_duration)


def _gsm_duration(path: Path) -> float:
    return path.stat().st_size / GSM_BYTES_PER_SECOND


def _package_prompts(
    root: Path, pattern: str, package: str, language: str, speaker: str, duration: Callable[[Path], float]
) -> Iterator[RealClip]:
    for path in _prompt_files(root, pattern):
        yield _prompt_clip(
            path,
            root,
            clip_id=safe_id(package, *path.relative_to(root).with_suffix("").parts),
            source=package,
            language=language,
            speaker=speaker,
            duration=duration(path),
            band=NARROWBAND,
        )


def _prompt_files(voice_dir: Path, pattern: str) -> Iterator[Path]:
    """A voice's prompt files, tones and silence left out (rglob does not enter linked folders)."""
    for path in sorted(voice_dir.rglob(pattern)):
        folder = path.parent.relative_to(voice_dir).as_posix()
        if path.is_file() and folder not in ASTERISK_SKIPPED_FOLDERS and path.stem not in ASTERISK_NON_SPEECH:
            yield path


def _prompt_clip(
    path: Path, voice_dir: Path, *, clip_id: str, source: str, language: str, speaker: str, duration: float, band: str
) -> RealClip:
    word = _asterisk_word(path.parent.relative_to(voice_dir).as_posix(), path.stem)
    return RealClip(
        clip_id=clip_id,
        path=path,
        source=source,
        language=language,
        speaker=speaker,
        group=speaker,
        text=word,
        text_en=word if language == ENGLISH else None,
        duration=duration,
        band=band,
    )


def _asterisk_word(folder: str, stem: str) -> str | None:
    """The spoken word of a digit or letter prompt (TTS reads "7" as the number), else None."""
    if folder == "digits" and stem.isdigit():
        return stem
    if folder == "letters" and _SINGLE_LETTER.fullmatch(stem):
        return stem
    return None


# --- Tux Paint stamp descriptions -----------------------------------------------------------------


def _tuxpaint_clips() -> Iterator[RealClip]:
    transcripts: dict[Path, dict[str, str]] = {}
    for path in sorted(TUXPAINT_ROOT.rglob("*_desc*")):
        match = _TUXPAINT_DESC.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        locale = match["locale"] or TUXPAINT_ENGLISH_LOCALE
        txt = _tuxpaint_transcript_file(path.parent, match["stamp"])
        if txt not in transcripts:
            transcripts[txt] = _tuxpaint_lines(txt)
        lines = transcripts[txt]
        language = base_language(locale)
        duration, rate = _probe(path)
        relative = path.parent.relative_to(TUXPAINT_ROOT).parts
        yield RealClip(
            clip_id=safe_id("tuxpaint", locale, *relative, match["stamp"]),
            path=path,
            source=TUXPAINT_PACKAGE,
            language=language,
            speaker=f"tuxpaint:{locale}",
            group=f"tuxpaint:{locale}",
            text=lines.get(locale),
            # The English line describes the same stamp: an English voice may read it.
            text_en=lines.get(TUXPAINT_ENGLISH_LOCALE),
            duration=duration,
            band=_band(rate),
        )


def _tuxpaint_transcript_file(folder: Path, stamp: str) -> Path:
    """NAME.txt beside the sound; a few differ from the sound's name in case only (Strawberry2)."""
    exact = folder / f"{stamp}.txt"
    if exact.is_file():
        return exact
    wanted = f"{stamp}.txt".lower()
    return next((p for p in sorted(folder.glob("*.txt")) if p.name.lower() == wanted), exact)


def _tuxpaint_lines(txt: Path) -> dict[str, str]:
    """Locale → description: the first line is English, the others `LL.utf8=text`."""
    if not txt.is_file():
        return {}
    rows = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    lines: dict[str, str] = {}
    if rows and rows[0].strip() and _TUXPAINT_LINE.fullmatch(rows[0].strip()) is None:
        lines[TUXPAINT_ENGLISH_LOCALE] = rows[0].strip()
    for row in rows[1:]:
        match = _TUXPAINT_LINE.fullmatch(row.strip())
        if match and match["text"].strip():
            lines.setdefault(match["locale"], match["text"].strip())
    return lines


# --- read sentences, syllables, test data ---------------------------------------------------------


def _festvox_ru_clips() -> Iterator[RealClip]:
    lines = _festvox_ru_lines(FESTVOX_RU_ROOT / "etc" / "txt.done.data")
    for path in sorted((FESTVOX_RU_ROOT / "wav").glob("*.wav")):
        duration, rate = _probe(path)
        yield RealClip(
            clip_id=safe_id("festvox-ru", path.stem),
            path=path,
            source=FESTVOX_RU_PACKAGE,
            language=FESTVOX_RU_LANGUAGE,
            speaker=FESTVOX_RU_SPEAKER,
            group=FESTVOX_RU_SPEAKER,
            text=lines.get(path.stem),
            text_en=None,
            duration=duration,
            band=_band(rate),
        )


def _festvox_ru_lines(path: Path) -> dict[str, str]:
    """Utterance id → its sentence, stress marks dropped: `( ru_0002 "... вол+ос ..." )`."""
    if not path.is_file():
        return {}
    lines = {}
    for row in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _FESTVOX_LINE.fullmatch(row.strip())
        if match:
            text = " ".join(match["text"].replace(_STRESS_MARK, "").split())
            if text:
                lines[match["id"]] = text
    return lines


def _gcin_clips() -> Iterator[RealClip]:
    """One folder per bopomofo syllable, one file per voice (3.ogg, 5.ogg); no engine reads bopomofo."""
    for path in sorted(GCIN_ROOT.glob("*/*.ogg")):
        voice = path.stem
        duration, rate = _probe(path)
        yield RealClip(
            clip_id=safe_id("gcin", voice, _ascii_name(path.parent.name)),
            path=path,
            source=GCIN_PACKAGE,
            language=GCIN_LANGUAGE,
            speaker=f"gcin:{voice}",
            group=f"gcin:{voice}",
            text=None,
            text_en=None,
            duration=duration,
            band=_band(rate),
        )


def _pocketsphinx_clips() -> Iterator[RealClip]:
    for name, transcription in POCKETSPHINX_SETS.items():
        folder = POCKETSPHINX_ROOT / name
        lines = _sphinx_lines(folder / transcription)
        for path in sorted(folder.glob("*.wav")):
            text = lines.get(path.stem)
            duration, rate = _probe(path)
            yield RealClip(
                clip_id=safe_id("pocketsphinx", name, path.stem),
                path=path,
                source=POCKETSPHINX_PACKAGE,
                language=ENGLISH,
                speaker=f"pocketsphinx:{name}",
                group=f"pocketsphinx:{name}",
                text=text,
                text_en=text,
                duration=duration,
                band=_band(rate),
            )


def _sphinx_lines(path: Path) -> dict[str, str]:
    """File id → words, from `<s> words </s> (fileid)` lines."""
    if not path.is_file():
        return {}
    lines = {}
    for row in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SPHINX_LINE.fullmatch(row)
        if match:
            text = " ".join(match["text"].split())
            if text:
                lines[match["id"].strip()] = text
    return lines

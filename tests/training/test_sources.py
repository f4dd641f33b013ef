"""The real-speech sources: tiny fake package trees for each layout, then the installed packages."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.audio import SAMPLE_RATE, decode_audio
from training.embedded import sources

ROOTS = (
    "KLETTRES_ROOT",
    "KTUBERLING_ROOT",
    "FILLETS_ROOT",
    "ASTERISK_ROOT",
    "MENARDI_ROOT",
    "ARMELLE_ROOT",
    "ES_CO_ROOT",
    "TUXPAINT_ROOT",
    "FESTVOX_RU_ROOT",
    "GCIN_ROOT",
    "POCKETSPHINX_ROOT",
)
_counter = iter(range(1, 10_000))


def tone(seconds: float, rate: int) -> np.ndarray:
    """A voiced-ish sound, different on every call, so no two written files are identical."""
    index = next(_counter)
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(index).normal(0, 0.01, t.size)
    return (0.3 * np.sin(2 * np.pi * (110 + 7 * index) * t) + noise).astype(np.float32)


def write(path: Path, seconds: float = 0.5, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".ogg"):
        sf.write(path, tone(seconds, rate), rate, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, tone(seconds, rate), rate, format="WAV", subtype="PCM_16")
    return path


def write_gsm(path: Path, seconds: float = 0.5) -> Path:
    """Raw GSM 06.10 at 8 kHz, as the asterisk prompt packages ship it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".src.wav")
    sf.write(wav, tone(seconds, 8000), 8000, subtype="PCM_16")
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libgsm", "-ar", "8000", "-ac", "1"]
    subprocess.run([*command, "-f", "gsm", str(path)], check=True, timeout=60)
    wav.unlink()
    return path


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every package root pointed at an empty folder of its own, so only what a test writes is found."""
    paths = {name: tmp_path / name.lower() for name in ROOTS}
    for name, path in paths.items():
        monkeypatch.setattr(sources, name, path)
    return paths


def by_id(clips: list[sources.RealClip]) -> dict[str, sources.RealClip]:
    ids = [clip.clip_id for clip in clips]
    assert len(ids) == len(set(ids)), "clip ids are unique"
    return dict(zip(ids, clips, strict=True))


def test_every_root_is_isolated_by_the_fixture(roots) -> None:
    assert {name for name in dir(sources) if name.endswith("_ROOT")} == set(ROOTS)
    assert sources.find_real_clips() == []


def test_the_train_only_split_of_sources_is_gone() -> None:
    assert not hasattr(sources, "find_train_only_clips")


def test_families_and_band_defaults() -> None:
    assert sources.SOURCE_FAMILIES == {
        "klettres-data": "kde-edu",
        "ktuberling-data": "kde-edu",
        "fillets-ng-data-nl": "fillets",
        "asterisk-core-sounds": "telephone-prompts",
        "asterisk-prompt-it-menardi-wav": "telephone-prompts",
        "asterisk-prompt-fr-armelle": "telephone-prompts",
        "asterisk-prompt-es-co": "telephone-prompts",
        "tuxpaint-stamps-default": "tuxpaint",
        "festvox-ru": "festvox-ru",
        "gcin-voice": "gcin",
        "pocketsphinx-testdata": "pocketsphinx",
    }
    assert (sources.WIDEBAND, sources.NARROWBAND) == ("wide", "narrow")
    clip = sources.RealClip("x", Path("x.wav"), sources.KLETTRES_PACKAGE, "fr", "s", "g", None, None, 1.0)
    assert (clip.band, clip.family) == (sources.WIDEBAND, "kde-edu")
    other = sources.RealClip("y", Path("y.wav"), "elsewhere", "fr", "s", "g", None, None, 1.0, sources.NARROWBAND, "f")
    assert (other.band, other.family) == (sources.NARROWBAND, "f")


# --- Tux Paint ------------------------------------------------------------------------------------

CAT_TXT = """A black cat.
ca.utf8=Un gat negre.
ca@valencia.utf8=Un gat negre valencià.
fr.utf8=Un chat noir.
pt.utf8=Um gato preto (pt).
pt_BR.utf8=Um gato preto.
"""


def test_tuxpaint_descriptions_by_locale(roots) -> None:
    stamps = roots["TUXPAINT_ROOT"]
    animals = stamps / "animals" / "pets"
    animals.mkdir(parents=True)
    (animals / "cat.txt").write_text(CAT_TXT, encoding="utf-8")
    write(animals / "cat_desc.ogg", rate=44_100)
    write(animals / "cat_desc_fr.ogg", rate=44_100)
    write(animals / "cat_desc_ca.ogg", rate=44_100)
    write(animals / "cat_desc_pt_BR.wav", rate=44_100)
    write(animals / "cat_desc_ru.ogg", rate=44_100)  # no ru line: words unknown
    write(animals / "cat.ogg", rate=44_100)  # the stamp's sound effect
    write(animals / "cat_fr.ogg", rate=44_100)  # a localised effect, not a description
    write(animals / "cat_desc_el.ogg", rate=8000)  # the odd 8 kHz description
    # A transcript named in another case than its sound, and a sound without any transcript.
    (animals / "Dog.txt").write_text("A dog.\nes.utf8=Un perro.\n", encoding="utf-8")
    write(animals / "dog_desc_es.ogg", rate=44_100)
    write(animals / "wallaby_desc_fr.ogg", rate=44_100)
    write(animals / "inuk_desc_da.ogg.ogg", rate=44_100)

    clips = by_id(sources.find_real_clips())

    assert set(clips) == {
        "tuxpaint-en-animals-pets-cat",
        "tuxpaint-fr-animals-pets-cat",
        "tuxpaint-ca-animals-pets-cat",
        "tuxpaint-pt_BR-animals-pets-cat",
        "tuxpaint-ru-animals-pets-cat",
        "tuxpaint-el-animals-pets-cat",
        "tuxpaint-es-animals-pets-dog",
        "tuxpaint-fr-animals-pets-wallaby",
        "tuxpaint-da-animals-pets-inuk",
    }
    texts = {clip_id: clip.text for clip_id, clip in clips.items()}
    assert texts["tuxpaint-en-animals-pets-cat"] == "A black cat."
    assert texts["tuxpaint-fr-animals-pets-cat"] == "Un chat noir."
    assert texts["tuxpaint-ca-animals-pets-cat"] == "Un gat negre."
    assert texts["tuxpaint-pt_BR-animals-pets-cat"] == "Um gato preto."
    assert texts["tuxpaint-es-animals-pets-dog"] == "Un perro."
    assert texts["tuxpaint-ru-animals-pets-cat"] is None
    assert texts["tuxpaint-fr-animals-pets-wallaby"] is None
    assert clips["tuxpaint-fr-animals-pets-cat"].text_en == "A black cat."

    brazil = clips["tuxpaint-pt_BR-animals-pets-cat"]
    assert (brazil.language, brazil.speaker, brazil.group) == ("pt", "tuxpaint:pt_BR", "tuxpaint:pt_BR")
    assert brazil.path.name == "cat_desc_pt_BR.wav"
    english = clips["tuxpaint-en-animals-pets-cat"]
    assert (english.language, english.speaker, english.text_en) == ("en", "tuxpaint:en", "A black cat.")
    assert {(c.source, c.family) for c in clips.values()} == {("tuxpaint-stamps-default", "tuxpaint")}
    assert {c.band for c in clips.values() if c.language != "el"} == {"wide"}
    assert clips["tuxpaint-el-animals-pets-cat"].band == "narrow"
    assert clips["tuxpaint-fr-animals-pets-cat"].duration == pytest.approx(0.5, abs=0.01)


def test_tuxpaint_identical_files_are_kept_once_with_words_where_known(roots) -> None:
    stamps = roots["TUXPAINT_ROOT"]
    first = write(stamps / "a" / "frog_desc_ro.ogg", rate=44_100)  # no transcript
    (stamps / "b").mkdir()
    shutil.copy(first, stamps / "b" / "frog_desc_ro.ogg")
    (stamps / "b" / "frog.txt").write_text("A frog.\nro.utf8=O broască.\n", encoding="utf-8")
    shutil.copy(first, stamps / "b" / "frog-1_desc_ro.ogg")
    (stamps / "b" / "frog-1.txt").write_text("A frog.\nro.utf8=O broască verde.\n", encoding="utf-8")

    clips = sources.find_real_clips()

    assert [(c.clip_id, c.text) for c in clips] == [("tuxpaint-ro-b-frog", "O broască.")]


# --- festvox-ru -----------------------------------------------------------------------------------


def test_festvox_ru_sentences_with_stress_marks_dropped(roots) -> None:
    voice = roots["FESTVOX_RU_ROOT"]
    write(voice / "wav" / "ru_0001.wav", seconds=12.0)  # longer than most sources allow
    write(voice / "wav" / "ru_0002.wav", seconds=2.0)
    write(voice / "wav" / "ru_0003.wav", seconds=21.0)  # longer than even festvox-ru allows
    write(voice / "wav" / "ru_0004.wav", seconds=1.0)  # no transcript line
    (voice / "etc").mkdir()
    (voice / "etc" / "txt.done.data").write_text(
        '( ru_0001 "Корреспондент, американской газеты, - она читала, шевеля губами." )\n'
        '( ru_0002 "Она завела, прядь волнистых вол+ос за ухо." )\n'
        '( ru_0003 "Слишком длинно." )\n',
        encoding="utf-8",
    )
    # A 12 s clip of another source is too long for it.
    write(roots["POCKETSPHINX_ROOT"] / "cards" / "001.wav", seconds=12.0)

    clips = by_id(sources.find_real_clips())

    assert set(clips) == {"festvox-ru-ru_0001", "festvox-ru-ru_0002", "festvox-ru-ru_0004"}
    assert clips["festvox-ru-ru_0002"].text == "Она завела, прядь волнистых волос за ухо."
    assert clips["festvox-ru-ru_0001"].text == "Корреспондент, американской газеты, - она читала, шевеля губами."
    assert clips["festvox-ru-ru_0004"].text is None
    assert clips["festvox-ru-ru_0001"].duration == pytest.approx(12.0, abs=0.01)
    for clip in clips.values():
        assert (clip.speaker, clip.group) == ("festvox-ru:msu_ru_nsh", "festvox-ru:msu_ru_nsh")
        assert (clip.source, clip.family, clip.language, clip.band) == ("festvox-ru", "festvox-ru", "ru", "wide")
        assert clip.text_en is None
    assert sources.FESTVOX_RU_SPEAKER == "festvox-ru:msu_ru_nsh"


# --- telephone prompts ----------------------------------------------------------------------------


def test_menardi_wav_prompts_apart_from_the_core_g722_voices(roots, monkeypatch: pytest.MonkeyPatch) -> None:
    asterisk = roots["ASTERISK_ROOT"]
    menardi = asterisk / "it_IT_f_Menardi"
    monkeypatch.setattr(sources, "MENARDI_ROOT", menardi)
    write(menardi / "digits" / "7.wav", rate=8000)
    write(menardi / "letters" / "a.wav", rate=8000)
    write(menardi / "letters" / "ascii36.wav", rate=8000)
    write(menardi / "vm-intro.wav", seconds=1.5, rate=8000)
    for tone_or_noise in ("beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"):
        write(menardi / f"{tone_or_noise}.wav", rate=8000)
    write(menardi / "silence" / "1.wav", rate=8000)
    (menardi / "digits" / "8.g722").write_bytes(bytes(range(256)) * 40)  # not Menardi's package format
    carlo = asterisk / "it_IT_m_Carlo" / "digits" / "7.g722"
    carlo.parent.mkdir(parents=True)
    carlo.write_bytes(bytes(range(200)) * 60)  # 12,000 bytes of G.722: 1.5 s

    clips = by_id(sources.find_real_clips())

    assert set(clips) == {
        "asterisk-prompt-it-menardi-wav-digits-7",
        "asterisk-prompt-it-menardi-wav-letters-a",
        "asterisk-prompt-it-menardi-wav-letters-ascii36",
        "asterisk-prompt-it-menardi-wav-vm-intro",
        "asterisk-it_IT_m_Carlo-digits-7",
    }
    assert len({clip.path for clip in clips.values()}) == len(clips)
    words = {clip_id: clip.text for clip_id, clip in clips.items()}
    assert words["asterisk-prompt-it-menardi-wav-digits-7"] == "7"
    assert words["asterisk-prompt-it-menardi-wav-letters-a"] == "a"
    assert words["asterisk-prompt-it-menardi-wav-letters-ascii36"] is None
    assert words["asterisk-prompt-it-menardi-wav-vm-intro"] is None
    for clip_id, clip in clips.items():
        if clip_id.startswith("asterisk-prompt-it-menardi-wav"):
            assert (clip.source, clip.speaker, clip.group) == (
                "asterisk-prompt-it-menardi-wav",
                "asterisk:Menardi",
                "asterisk:Menardi",
            )
            assert (clip.language, clip.band, clip.family, clip.text_en) == ("it", "narrow", "telephone-prompts", None)
    assert clips["asterisk-prompt-it-menardi-wav-vm-intro"].duration == pytest.approx(1.5, abs=0.01)
    core = clips["asterisk-it_IT_m_Carlo-digits-7"]
    assert (core.source, core.speaker, core.band, core.family) == (
        "asterisk-core-sounds",
        "asterisk:Carlo",
        "wide",
        "telephone-prompts",
    )
    assert core.duration == pytest.approx(1.5)


def test_armelle_gsm_prompts(roots) -> None:
    french = roots["ARMELLE_ROOT"]
    seven = write_gsm(french / "digits" / "7.gsm", seconds=0.6)
    write_gsm(french / "letters" / "b.gsm")
    write_gsm(french / "vm-goodbye.gsm", seconds=1.2)
    write_gsm(french / "beep.gsm")
    write_gsm(french / "silence" / "1.gsm")

    clips = by_id(sources.find_real_clips())

    assert set(clips) == {
        "asterisk-prompt-fr-armelle-digits-7",
        "asterisk-prompt-fr-armelle-letters-b",
        "asterisk-prompt-fr-armelle-vm-goodbye",
    }
    assert [clips[i].text for i in sorted(clips)] == ["7", "b", None]
    for clip in clips.values():
        assert (clip.source, clip.speaker, clip.group) == (
            "asterisk-prompt-fr-armelle",
            "asterisk:Armelle",
            "asterisk:Armelle",
        )
        assert (clip.language, clip.band, clip.family) == ("fr", "narrow", "telephone-prompts")
        assert clip.duration == pytest.approx(clip.path.stat().st_size / 1650)
    digit = clips["asterisk-prompt-fr-armelle-digits-7"]
    assert seven.stat().st_size % 33 == 0
    assert digit.duration == pytest.approx(0.6, abs=0.021)
    assert digit.duration == pytest.approx(decode_audio(seven).size / SAMPLE_RATE, abs=0.021)


def test_es_co_gsm_prompts_identical_files_kept_once(roots) -> None:
    spanish = roots["ES_CO_ROOT"]
    one = write_gsm(spanish / "digits" / "1.gsm")
    shutil.copy(one, spanish / "a-uno.gsm")  # the same recording again, its words unknown there
    write_gsm(spanish / "digits" / "day-1.gsm")
    write_gsm(spanish / "hola.gsm", seconds=0.8)
    write_gsm(spanish / "beeperr.gsm")
    write_gsm(spanish / "vm-options.gsm", seconds=10.0)  # too long

    clips = by_id(sources.find_real_clips())

    assert set(clips) == {
        "asterisk-prompt-es-co-digits-1",
        "asterisk-prompt-es-co-digits-day-1",
        "asterisk-prompt-es-co-hola",
    }
    assert clips["asterisk-prompt-es-co-digits-1"].text == "1"
    assert clips["asterisk-prompt-es-co-digits-day-1"].text is None
    assert clips["asterisk-prompt-es-co-hola"].duration == pytest.approx(0.8, abs=0.021)
    assert {(c.source, c.speaker, c.group, c.language, c.band, c.family) for c in clips.values()} == {
        ("asterisk-prompt-es-co", "asterisk:es-co", "asterisk:es-co", "es", "narrow", "telephone-prompts")
    }


# --- gcin, pocketsphinx ---------------------------------------------------------------------------


def test_gcin_syllables_by_voice(roots) -> None:
    ogg = roots["GCIN_ROOT"]
    write(ogg / "ㄅㄚ1" / "3.ogg", seconds=0.4, rate=44_100)
    write(ogg / "ㄅㄚ1" / "5.ogg", seconds=0.4, rate=44_100)
    write(ogg / "ㄅㄚ2" / "3.ogg", seconds=0.4, rate=44_100)
    write(ogg / "ㄆㄚ" / "5.ogg", seconds=0.1, rate=44_100)  # too short

    clips = sources.find_real_clips()

    assert len(clips) == 3 and len({c.clip_id for c in clips}) == 3
    assert Counter(c.speaker for c in clips) == {"gcin:3": 2, "gcin:5": 1}
    assert all(c.group == c.speaker for c in clips)
    assert {(c.source, c.family, c.language, c.band, c.text, c.text_en) for c in clips} == {
        ("gcin-voice", "gcin", "zh", "wide", None, None)
    }
    assert {c.path.parent.name for c in clips} == {"ㄅㄚ1", "ㄅㄚ2"}


def test_pocketsphinx_wav_sets_with_transcripts(roots) -> None:
    data = roots["POCKETSPHINX_ROOT"]
    write(data / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav", seconds=1.0)
    (data / "librivox" / "transcription").write_text(
        "<s> he was not an ill disposed young man </s> (sense_and_sensibility_01_austen_64kb-0880)\n"
        "<s> a line without audio </s> (sense_and_sensibility_01_austen_64kb-0999)\n",
        encoding="utf-8",
    )
    write(data / "cards" / "001.wav", seconds=1.0)
    write(data / "cards" / "002.wav", seconds=1.0)
    (data / "cards" / "cards.transcription").write_text(
        "<s> ten of clubs  </s> (001)\n<s> four queen of clubs  </s> (002)\n", encoding="utf-8"
    )
    (data / "goforward.raw").write_bytes(bytes(32_000))
    (data / "librivox" / "extra.raw").write_bytes(bytes(32_000))
    write(data / "tidigits" / "man.wav", seconds=1.0)

    clips = by_id(sources.find_real_clips())

    assert {i: c.text for i, c in clips.items()} == {
        "pocketsphinx-librivox-sense_and_sensibility_01_austen_64kb-0880": "he was not an ill disposed young man",
        "pocketsphinx-cards-001": "ten of clubs",
        "pocketsphinx-cards-002": "four queen of clubs",
    }
    assert {c.speaker for c in clips.values()} == {"pocketsphinx:librivox", "pocketsphinx:cards"}
    for clip in clips.values():
        assert clip.group == clip.speaker and clip.text_en == clip.text
        assert (clip.source, clip.family, clip.language, clip.band) == (
            "pocketsphinx-testdata",
            "pocketsphinx",
            "en",
            "wide",
        )


# --- the installed packages -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed() -> list[sources.RealClip]:
    return sources.find_real_clips()


def test_installed_packages_give_many_sources_and_speakers(installed) -> None:
    found = {clip.source for clip in installed}
    assert len(found) >= 8
    assert set(sources.SOURCE_FAMILIES) <= found
    assert len({clip.speaker for clip in installed}) >= 80
    assert len({clip.clip_id for clip in installed}) == len(installed)
    assert all(clip.family == sources.SOURCE_FAMILIES[clip.source] for clip in installed)
    narrow_sources = {sources.MENARDI_PACKAGE, sources.ARMELLE_PACKAGE, sources.ES_CO_PACKAGE}
    assert {clip.band for clip in installed if clip.source in narrow_sources} == {sources.NARROWBAND}
    russian = [clip for clip in installed if clip.source == sources.FESTVOX_RU_PACKAGE]
    assert {clip.speaker for clip in russian} == {"festvox-ru:msu_ru_nsh"}
    assert all(clip.text and "+" not in clip.text for clip in russian)
    assert not any(clip.path.stem in sources.ASTERISK_NON_SPEECH for clip in installed)

"""The embedded dataset builder: a small real build, plus unit tests of the shared post-processing.

The build tests run `python -m training.build_dataset` (in-process, 2 worker processes) on a
40-clip subset of the installed Debian packages, so they check the real engines and codecs.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from model.audio import SAMPLE_RATE, decode_audio
from training import build_dataset
from training.embedded import channel, plan, sources, tts
from training.embedded.channel import ClipRejected, Treatment
from training.manifest import LABELS, SPLITS, STANDARD_COLUMNS, read_manifest

LIMIT = 40
EXTRA_COLUMNS = ["channel", "family", "group", "language"]
# Codec round trips add encoder delay (MP3 ~70 ms, Opus ~7 ms), and the last trim frame may be partial.
CODEC_SLACK_SECONDS = 0.15
LEVEL_TOLERANCE_DB = 3.0


def _build(out: Path, *extra: str) -> Path:
    assert build_dataset.main(["--out", str(out), "--limit", str(LIMIT), "--quiet", *extra]) == 0
    return out / "manifest.csv"


def _file_states(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="module")
def rows(built: Path):
    return read_manifest(built)


@pytest.fixture(scope="module")
def decoded(rows) -> dict[Path, np.ndarray]:
    return {row.path: decode_audio(row.path) for row in rows}


# --- the built subset ---------------------------------------------------------------------------


def test_manifest_columns_labels_and_balance(built: Path, rows) -> None:
    with built.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert header == [*STANDARD_COLUMNS, *EXTRA_COLUMNS]
    labels = Counter(row.label for row in rows)
    assert set(labels) == set(LABELS)
    assert labels["real"] == labels["fake"] == LIMIT // 2
    assert all(row.split in SPLITS for row in rows)
    assert {row.attack for row in rows if row.is_real} == {plan.BONAFIDE}
    assert {row.attack for row in rows if not row.is_real} <= set(tts.ATTACKS)
    assert all(row.speaker and row.source for row in rows)
    assert all(not Path(line["path"]).is_absolute() for line in csv.DictReader(built.open()))


def test_every_clip_is_16k_mono_flac_that_decodes(rows, decoded) -> None:
    import soundfile as sf

    for row in rows:
        info = sf.info(str(row.path))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", SAMPLE_RATE, 1)
        assert decoded[row.path].size == info.frames


def test_split_groups_and_real_speakers_are_disjoint(rows) -> None:
    """Groups never straddle splits; nor do speakers, except the two fillets fish, split by game level."""
    splits_of_group, splits_of_speaker = defaultdict(set), defaultdict(set)
    for row in rows:
        splits_of_group[row.extras["group"]].add(row.split)
        if row.is_real and row.source != sources.FILLETS_PACKAGE:
            splits_of_speaker[row.speaker].add(row.split)
    assert all(len(s) == 1 for s in splits_of_group.values()), splits_of_group
    assert all(len(s) == 1 for s in splits_of_speaker.values()), splits_of_speaker
    assert len({row.split for row in rows}) >= 2


def test_each_split_is_balanced_because_fakes_follow_their_real_clip(rows) -> None:
    per_split = Counter((row.split, row.label) for row in rows)
    for split in SPLITS:
        assert per_split[(split, "real")] == per_split[(split, "fake")]


def test_both_classes_went_through_the_same_post_processing(rows, decoded) -> None:
    longest = channel.MAX_SPEECH_SECONDS + 2 * channel.PAD_SECONDS_RANGE[1] + CODEC_SLACK_SECONDS
    shortest = channel.MIN_SPEECH_SECONDS + 2 * channel.PAD_SECONDS_RANGE[0]
    stats = defaultdict(lambda: defaultdict(list))
    for row in rows:
        samples = decoded[row.path]
        levels = channel.frame_db(samples)
        speech = np.flatnonzero(levels >= levels.max() - channel.TRIM_TOP_DB)
        stats[row.label]["seconds"].append(samples.size / SAMPLE_RATE)
        stats[row.label]["lead"].append(speech[0] * channel.FRAME_SECONDS)
        stats[row.label]["level"].append(_speech_rms_db(samples, levels))
        assert shortest <= samples.size / SAMPLE_RATE <= longest, row.path
    low, high = channel.LEVEL_DBFS_RANGE
    for label in LABELS:
        assert all(low - LEVEL_TOLERANCE_DB <= v <= high + LEVEL_TOLERANCE_DB for v in stats[label]["level"])
        assert max(stats[label]["lead"]) <= channel.PAD_SECONDS_RANGE[1] + CODEC_SLACK_SECONDS
    for measure in ("seconds", "lead", "level"):
        real, fake = np.median(stats["real"][measure]), np.median(stats["fake"][measure])
        spread = np.ptp(stats["real"][measure] + stats["fake"][measure])
        assert abs(real - fake) <= 0.5 * spread, (measure, real, fake)


def _speech_rms_db(samples: np.ndarray, levels: np.ndarray) -> float:
    size = round(channel.FRAME_SECONDS * SAMPLE_RATE)
    frames = np.zeros(levels.size * size)
    frames[: samples.size] = samples
    active = frames.reshape(-1, size)[levels >= levels.max() - channel.TRIM_TOP_DB]
    return float(20 * np.log10(np.sqrt(np.mean(active**2))))


def test_same_seed_gives_the_same_manifest_and_audio(built: Path, rows, decoded, tmp_path: Path) -> None:
    again = _build(tmp_path / "again")
    assert again.read_bytes() == built.read_bytes()
    for row in read_manifest(again)[:: LIMIT // 8]:
        original = built.parent / row.path.relative_to(again.parent)
        assert np.array_equal(decode_audio(row.path), decoded[original])


def test_rerun_builds_nothing_and_rewrites_the_same_manifest(built: Path, capsys) -> None:
    before_manifest, before_files = built.read_bytes(), _file_states(built.parent / "clips")
    _build(built.parent)
    assert built.read_bytes() == before_manifest
    assert _file_states(built.parent / "clips") == before_files
    assert "'built'" not in capsys.readouterr().out


def test_another_seed_gives_another_dataset(tmp_path: Path, built: Path) -> None:
    other = _build(tmp_path / "other", "--seed", "1")
    assert other.read_bytes() != built.read_bytes()


# --- planning -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_clips() -> list[sources.RealClip]:
    return sources.find_real_clips()


def test_sources_cover_eleven_packages_and_many_languages(real_clips) -> None:
    packages = Counter(clip.source for clip in real_clips)
    assert set(packages) == set(sources.SOURCE_FAMILIES)
    assert len({clip.language for clip in real_clips}) >= 15
    dialogue = next(clip for clip in real_clips if clip.source == sources.FILLETS_PACKAGE)
    assert dialogue.text and dialogue.text_en and dialogue.language == "nl"


def test_plan_shares_no_source_above_30_percent_and_covers_80_speakers(real_clips) -> None:
    pairs, wanted = plan.plan_pairs(real_clips, plan.DEFAULT_TOTAL_CLIPS, seed=0)
    kept = pairs[:wanted]
    per_source = Counter(p.real.source for p in kept)
    assert max(per_source.values()) <= 0.3 * len(kept)
    assert len(per_source) >= 8
    assert len({p.real.speaker for p in kept}) >= 80
    families = {p.fake.family for p in kept}
    assert len({p.fake.attack for p in kept}) >= 12 and len(families) >= 5 and tts.NEURAL in families
    assert {p.real.split for p in kept if p.real.speaker == sources.FESTVOX_RU_SPEAKER} == {"train"}


def test_fakes_of_telephone_recordings_go_through_the_same_channel(real_clips) -> None:
    pairs, _ = plan.plan_pairs(real_clips, 2000, seed=0)
    for pair in pairs:
        narrow = any(c.band == sources.NARROWBAND for c in real_clips if c.clip_id == pair.real.clip_id)
        assert (pair.fake.treatment.source_channel != "none") == narrow
        assert pair.real.treatment.source_channel == "none"
    assert {p.fake.treatment.source_channel for p in pairs} == {"none", "gsm", "band8k"}


def test_plan_pairs_each_real_clip_with_a_fake_of_its_language_and_split(real_clips) -> None:
    pairs, wanted = plan.plan_pairs(real_clips, 600, seed=3)
    english_lines = {clip.clip_id: clip.text_en for clip in real_clips}
    assert wanted == 300 and len(pairs) > wanted
    assert len({p.real.clip_id for p in pairs}) == len(pairs)
    for pair in pairs:
        assert (pair.fake.split, pair.fake.group) == (pair.real.split, pair.real.group)
        assert pair.fake.family == tts.ENGINES[pair.fake.attack].family
        if pair.fake.language != pair.real.language:
            assert pair.fake.language == "en" and pair.fake.text == english_lines[pair.real.clip_id]
        if pair.fake.attack in tts.COPY_SYNTHESIS:
            assert pair.fake.speaker == pair.real.speaker and pair.fake.text is None
    assert len({p.fake.attack for p in pairs}) >= 12
    again, _ = plan.plan_pairs(real_clips, 600, seed=3)
    assert again == pairs


def test_treatments_come_from_one_distribution_for_both_classes(real_clips) -> None:
    pairs, _ = plan.plan_pairs(real_clips, 2000, seed=0)
    for label in ("real", "fake"):
        treatments = [getattr(p, label).treatment for p in pairs]
        shares = Counter(t.channel for t in treatments)
        for name, weight in channel.CHANNEL_WEIGHTS.items():
            assert abs(shares[name] / len(treatments) - weight / sum(channel.CHANNEL_WEIGHTS.values())) < 0.06
        assert abs(np.mean([t.level_dbfs for t in treatments]) - np.mean(channel.LEVEL_DBFS_RANGE)) < 1.0


# --- post-processing units ----------------------------------------------------------------------


def _tone(seconds: float, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _silence(seconds: float, noise_dbfs: float = -90.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(round(seconds * SAMPLE_RATE)) * 10 ** (noise_dbfs / 20)).astype(np.float32)


def _treatment(**overrides) -> Treatment:
    values = dict(level_dbfs=-20.0, pad_start=0.2, pad_end=0.3, noise_dbfs=-70.0, channel="none", channel_setting=0)
    return Treatment(**{**values, **overrides})


def test_trim_silence_cuts_quiet_ends_and_keeps_a_margin() -> None:
    signal = np.concatenate([_silence(0.7), _tone(1.0), _silence(1.3)])
    trimmed = channel.trim_silence(signal)
    expected = 1.0 + 2 * channel.TRIM_MARGIN_SECONDS
    assert abs(trimmed.size / SAMPLE_RATE - expected) <= channel.FRAME_SECONDS
    assert channel.trim_silence(np.zeros(SAMPLE_RATE, dtype=np.float32)).size == 0


def test_crop_limits_length_and_fades_out() -> None:
    cropped = channel.crop(_tone(7.0), max_seconds=2.0)
    assert cropped.size == 2 * SAMPLE_RATE
    assert abs(cropped[-1]) < 1e-6
    short = _tone(1.0)
    assert channel.crop(short, max_seconds=2.0) is short


def test_normalise_level_sets_speech_rms_and_respects_the_peak_ceiling() -> None:
    signal = np.concatenate([_tone(1.0, amplitude=0.01), _silence(0.5)])
    louder = channel.normalise_level(signal, -20.0)
    assert abs(20 * np.log10(np.sqrt(np.mean(louder[:SAMPLE_RATE] ** 2))) + 20.0) < 0.2
    limited = channel.normalise_level(signal, -1.0)
    assert np.max(np.abs(limited)) == pytest.approx(channel.PEAK_CEILING, rel=1e-3)


def test_pad_and_noise_floor() -> None:
    treatment = _treatment()
    padded = channel.pad_and_add_noise(_tone(1.0), treatment, np.random.default_rng(0))
    assert padded.size == round((1.0 + treatment.pad_start + treatment.pad_end) * SAMPLE_RATE)
    lead = padded[: round(treatment.pad_start * SAMPLE_RATE)]
    assert abs(20 * np.log10(np.sqrt(np.mean(lead**2))) - treatment.noise_dbfs) < 1.0


@pytest.mark.parametrize(("name", "setting"), [("none", 0), ("mp3", 64), ("vorbis", 3), ("opus", 24), ("band8k", 0)])
def test_channels_keep_length_and_level(name: str, setting: int) -> None:
    signal = _tone(1.0, amplitude=0.3)
    out = channel.apply_channel(signal, name, setting)
    assert out.dtype == np.float32
    assert abs(out.size - signal.size) <= CODEC_SLACK_SECONDS * SAMPLE_RATE
    rms = lambda x: 20 * np.log10(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert abs(rms(out) - rms(signal)) < 1.5


def test_band8k_removes_content_above_4khz() -> None:
    out = channel.apply_channel(_tone(1.0, frequency=6000.0), "band8k", 0)
    assert np.sqrt(np.mean(out**2)) < 0.01


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        channel.apply_channel(_tone(0.5), "telegraph", 0)


def test_process_rejects_a_clip_without_speech() -> None:
    with pytest.raises(ClipRejected):
        channel.process(_silence(1.0, noise_dbfs=-300.0) * 0, _treatment(), np.random.default_rng(0))


def test_process_is_deterministic_for_a_seed() -> None:
    signal = np.concatenate([_silence(0.4), _tone(0.8), _silence(0.9)])
    first = channel.process(signal, _treatment(channel="mp3", channel_setting=64), np.random.default_rng(5))
    second = channel.process(signal, _treatment(channel="mp3", channel_setting=64), np.random.default_rng(5))
    assert np.array_equal(first, second)


def test_draw_treatment_stays_in_its_ranges() -> None:
    rng = np.random.default_rng(0)
    for treatment in (channel.draw_treatment(rng) for _ in range(200)):
        assert channel.LEVEL_DBFS_RANGE[0] <= treatment.level_dbfs <= channel.LEVEL_DBFS_RANGE[1]
        assert channel.PAD_SECONDS_RANGE[0] <= treatment.pad_start <= channel.PAD_SECONDS_RANGE[1]
        assert treatment.channel in channel.CHANNEL_WEIGHTS


def test_tts_engines_speak_and_griffin_lim_keeps_length() -> None:
    rng = np.random.default_rng(0)
    for attack in (tts.ESPEAK, tts.FESTIVAL, *tts.FLITE_ATTACKS):
        speech = tts.synthesize(tts.draw_voice(attack, "en", rng), "hello world")
        assert speech.size > 0.3 * SAMPLE_RATE and np.max(np.abs(speech)) > 0.01, attack
    source = _tone(1.0)
    resynthesised = tts.griffin_lim(source, tts.draw_voice(tts.GRIFFIN_LIM, "en", rng), seed=0)
    assert resynthesised.size == source.size and np.max(np.abs(resynthesised)) > 0.05

"""VAD trimming (model.vad, FeatureConfig.vad_trim): speech kept, non-speech around it cut, alike in
training (FeatureCache) and scoring (AudioDetector); speech-free clips flagged, never trimmed to nothing.

Serving's speech check (AudioDetector.score_waveforms(check_speech=True)) is tested here too: the
VAD in batched pieces, stopping once it found speech, and scores that do not change with it.

The speech is espeak-ng reading a sentence at test time (model.signals.spoken): Silero needs real
speech, and a synthetic harmonic signal is not that to it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.audio import SAMPLE_RATE, UnusableAudioError, decode_audio
from model.detectors import ModelConfig, build_detector
from model.features import AudioFeatureExtractor, FeatureConfig
from model.inference import AudioDetector
from model.signals import spoken
from model.vad import (
    FIRST_SCAN_SECONDS,
    MIN_SPEECH_SECONDS,
    NO_SPEECH_MESSAGE,
    PIECE_SECONDS,
    SPEECH_CHECK_ENV,
    TRIM_PAD_SECONDS,
    NoSpeechError,
    SpeechSpan,
    check_speech,
    find_speech,
    speech_check_enabled,
    speech_probabilities,
    speech_seconds,
)
from training.dataset import FeatureCache

SENTENCE = "Seven apples fell from the old tree by the river."
SHORT_WORD = "yes"  # espeak-ng says it in about 0.3 s: one short stretch of speech
AUDIBLE = 1e-3  # espeak-ng pads its output with near-digital silence; its speech is louder than this
TOLERANCE_SECONDS = 0.15  # Silero decides per 32 ms chunk, with a threshold hysteresis at each end


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return spoken(text=SENTENCE)


def audible_span(clip: np.ndarray) -> tuple[float, float]:
    """First and last audible sample of clean speech, in seconds: the truth the VAD is held to."""
    audible = np.flatnonzero(np.abs(clip) > AUDIBLE)
    return audible[0] / SAMPLE_RATE, audible[-1] / SAMPLE_RATE


def surround(clip: np.ndarray, lead: float, trail: float, noise_rms: float, seed: int = 0) -> np.ndarray:
    """`clip` with `lead` and `trail` seconds of silence, white noise of `noise_rms` over everything."""
    padded = np.concatenate([np.zeros(round(lead * SAMPLE_RATE)), clip, np.zeros(round(trail * SAMPLE_RATE))])
    noise = noise_rms * np.random.default_rng(seed).standard_normal(padded.size)
    return (padded + noise).astype(np.float32)


def vad_extractor() -> AudioFeatureExtractor:
    return AudioFeatureExtractor(FeatureConfig(vad_trim=True))


@pytest.mark.parametrize(
    ("lead", "trail", "noise_rms"),
    [(1.0, 2.0, 0.0), (2.0, 1.0, 3e-4), (1.5, 1.5, 3e-3)],  # digital silence, -70 and -50 dBFS noise
)
def test_silence_and_noise_around_speech_are_cut_to_the_speech_and_its_pad(
    speech: np.ndarray, lead: float, trail: float, noise_rms: float
) -> None:
    onset, offset = audible_span(speech)
    clip = surround(speech, lead, trail, noise_rms)
    span = vad_extractor().speech_span(clip)
    start, end = span.start / SAMPLE_RATE, span.end / SAMPLE_RATE
    assert lead + onset - TRIM_PAD_SECONDS - TOLERANCE_SECONDS <= start <= lead + onset
    assert lead + offset <= end <= lead + offset + TRIM_PAD_SECONDS + TOLERANCE_SECONDS
    assert span.speech_seconds is not None and span.speech_seconds >= 0.8 * (offset - onset)
    np.testing.assert_array_equal(vad_extractor().trim(clip), clip[span.start : span.end])


def test_a_quiet_recording_is_trimmed_like_a_loud_one(speech: np.ndarray) -> None:
    """The VAD hears every clip at one level, so -70 dBFS speech is not taken for silence."""
    loud = surround(speech, 1.0, 1.0, 1e-4)
    assert vad_extractor().speech_span(loud * 0.003) == vad_extractor().speech_span(loud)


def test_pauses_inside_the_speech_are_kept(speech: np.ndarray) -> None:
    two_lines = np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32), speech])
    clip = surround(two_lines, 1.0, 1.0, 1e-4)
    onset, _ = audible_span(speech)
    _, offset = audible_span(two_lines)
    span = find_speech(clip)
    assert span.start / SAMPLE_RATE <= 1.0 + onset and span.end / SAMPLE_RATE >= 1.0 + offset
    assert span.speech_seconds is not None and span.speech_seconds < (span.end - span.start) / SAMPLE_RATE - 0.8


def test_with_the_option_off_the_clip_is_untouched(speech: np.ndarray, tmp_path: Path) -> None:
    clip = surround(speech, 2.0, 4.0, 1e-4)
    extractor = AudioFeatureExtractor(FeatureConfig())
    assert extractor.speech_span(clip) == SpeechSpan(0, len(clip), None)
    np.testing.assert_array_equal(extractor.trim(clip), clip)
    path = tmp_path / "clip.wav"
    sf.write(path, clip, SAMPLE_RATE, subtype="FLOAT")
    assert torch.equal(FeatureCache(None, FeatureConfig()).get(path), extractor(decode_audio(path)))  # as before


def noise(seconds: float, rms: float) -> np.ndarray:
    return (rms * np.random.default_rng(3).standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)


@pytest.mark.parametrize(
    "clip",
    [np.zeros(3 * SAMPLE_RATE, np.float32), noise(3.0, 1e-4), noise(3.0, 0.05), tone(3.0)],
    ids=["digital-silence", "faint-noise", "loud-noise", "pure-tone"],
)
def test_speech_free_audio_is_kept_whole_and_flagged(clip: np.ndarray) -> None:
    span = vad_extractor().speech_span(clip)
    assert span == SpeechSpan(0, len(clip), 0.0)
    with pytest.raises(NoSpeechError) as raised:
        check_speech(span.speech_seconds)
    assert str(raised.value) == NO_SPEECH_MESSAGE
    assert isinstance(raised.value, UnusableAudioError)  # the handler answers those 422


def test_a_single_short_word_is_speech_enough() -> None:
    """Half a second was the first minimum: it refused 29 % of real dev clips, single words."""
    clip = surround(spoken(text=SHORT_WORD), 1.0, 1.0, 1e-4)
    span = find_speech(clip)
    assert span.speech_seconds is not None and MIN_SPEECH_SECONDS <= span.speech_seconds < 0.6
    assert span.end - span.start < len(clip)  # trimmed to the word
    check_speech(span.speech_seconds)


def test_enough_speech_or_no_vad_passes_the_check(speech: np.ndarray) -> None:
    check_speech(find_speech(speech).speech_seconds)
    check_speech(None)


def test_the_vad_is_deterministic_and_keeps_no_state_between_clips(speech: np.ndarray) -> None:
    clip = surround(speech, 1.0, 2.0, 3e-4)
    first = find_speech(clip)
    find_speech(surround(speech, 0.3, 0.1, 3e-3, seed=9))  # another clip in between
    assert find_speech(clip) == first


def test_threads_sharing_the_model_get_what_one_thread_gets(speech: np.ndarray) -> None:
    clips = [surround(speech, lead, 2.5 - lead, 3e-4, seed=i) for i, lead in enumerate((0.5, 1.0, 1.5, 2.0))]
    alone = [find_speech(c) for c in clips]
    together: dict[int, SpeechSpan] = {}
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, find_speech(clips[i]))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[i] for i in range(4)] == alone


def test_loading_the_vad_keeps_the_process_torch_thread_count(tmp_path: Path) -> None:
    """silero_vad sets torch to one thread when imported; a trainer or worker must keep its own count."""
    code = (
        "import numpy, torch; torch.set_num_threads(3); from model.vad import find_speech; "
        "find_speech(numpy.zeros(16000, numpy.float32)); print(torch.get_num_threads())"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_the_option_round_trips_and_old_configs_load_without_it(tmp_path: Path) -> None:
    on = FeatureConfig.for_front_end(vad_trim=True).with_reference()
    on.save(tmp_path / "on.json")
    assert FeatureConfig.load(tmp_path / "on.json") == on and FeatureConfig.load(tmp_path / "on.json").vad_trim
    old = {k: v for k, v in dataclasses.asdict(FeatureConfig().with_reference()).items() if k != "vad_trim"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert FeatureConfig.load(tmp_path / "old.json") == FeatureConfig()
    FeatureConfig.load(tmp_path / "old.json").check_compatible()


def test_the_cache_key_changes_with_the_option_and_only_then() -> None:
    before_the_option = {k: v for k, v in dataclasses.asdict(FeatureConfig()).items() if k != "reference_bin_means"}
    before_the_option.pop("vad_trim")
    assert FeatureCache(None, FeatureConfig()).config_key == json.dumps(before_the_option, sort_keys=True)
    assert FeatureCache(None, FeatureConfig(vad_trim=True)).config_key != FeatureCache(None, FeatureConfig()).config_key


def test_training_features_are_the_features_serving_scores(speech: np.ndarray, tmp_path: Path) -> None:
    """The cache (training) and AudioDetector (serving, evaluation) cut the same samples."""
    path = tmp_path / "clip.wav"
    sf.write(path, surround(speech, 1.5, 1.5, 3e-4), SAMPLE_RATE, subtype="FLOAT")
    config = FeatureConfig(vad_trim=True)
    cached = FeatureCache(tmp_path / "cache", config).get(path)
    reread = FeatureCache(tmp_path / "cache", config).get(path)  # from disk this time
    assert torch.equal(reread, cached)
    torch.manual_seed(1)
    detector = AudioDetector(build_detector(ModelConfig(channels=(4, 8))), config)
    served = detector.score_waveforms([decode_audio(path)])[0]  # 3.9 s: one segment, the whole trimmed clip
    assert served.probability_real == pytest.approx(detector.score_features([cached])[0], abs=1e-6)
    untrimmed = FeatureCache(tmp_path / "cache", FeatureConfig()).get(path)
    assert untrimmed.shape[-1] - cached.shape[-1] >= 200  # 2 s of the 3 s of silence are gone (100 frames/s)


def test_a_vad_detector_scores_the_speech_and_reports_where_it_is(speech: np.ndarray) -> None:
    torch.manual_seed(0)
    model = build_detector(ModelConfig(channels=(4, 8)))
    clip = surround(speech, 2.0, 1.0, 3e-4)
    trimming = AudioDetector(model, FeatureConfig(vad_trim=True))
    plain = AudioDetector(model, FeatureConfig())
    span = trimming.extractor.speech_span(clip)
    score = trimming.score_waveforms([clip])[0]
    assert score.probability_real == plain.score_waveforms([clip[span.start : span.end]])[0].probability_real
    assert score.duration_seconds == round(len(clip) / SAMPLE_RATE, 3)
    assert score.segments[0].start_seconds == round(span.start / SAMPLE_RATE, 3) > 1.5
    assert score.segments[-1].end_seconds == round(span.end / SAMPLE_RATE, 3)
    assert score.speech_seconds == span.speech_seconds
    assert plain.score_waveforms([clip])[0].speech_seconds is None


def test_pieces_in_one_batch_hear_what_one_stream_hears(speech: np.ndarray) -> None:
    """A clip over several PIECE_SECONDS pieces, alone or batched with others, has one probability per
    32 ms chunk, and the same stretches of speech as the clip heard as one stream, within a chunk."""
    clip = surround(np.concatenate([speech, np.zeros(SAMPLE_RATE, np.float32), speech]), 2.5, 3.0, 3e-4)
    assert len(clip) > 2 * PIECE_SECONDS * SAMPLE_RATE
    alone, short = speech_probabilities([clip])[0], speech_probabilities([speech[:8000]])[0]
    together = speech_probabilities([speech[:8000], clip, np.zeros(100, np.float32)])
    assert len(alone) == -(-len(clip) // 512)
    assert together[1] == pytest.approx(alone, abs=1e-5) and together[0] == pytest.approx(short, abs=1e-5)
    assert together[2] == [pytest.approx(together[2][0])] and together[2][0] < 0.5
    stream = speech_seconds([clip])[0]
    assert stream == pytest.approx(find_speech(clip).speech_seconds)
    assert stream >= 0.8 * 2 * (audible_span(speech)[1] - audible_span(speech)[0])


def test_the_check_stops_once_it_found_speech_and_looks_further_when_it_has_not(speech: np.ndarray) -> None:
    late = surround(speech, 3 * FIRST_SCAN_SECONDS, 1.0, 3e-4)  # the speech begins after two scans
    early = surround(speech, 0.5, 3 * FIRST_SCAN_SECONDS, 3e-4)
    silent = np.zeros(round(4 * FIRST_SCAN_SECONDS * SAMPLE_RATE), np.float32)
    found_late, found_early, found_silent = speech_seconds([late, early, silent], MIN_SPEECH_SECONDS)
    assert found_late == pytest.approx(speech_seconds([late])[0], abs=0.1) and found_late >= MIN_SPEECH_SECONDS
    assert MIN_SPEECH_SECONDS <= found_early <= speech_seconds([early])[0]
    assert found_silent == 0.0


def test_the_speech_check_measures_speech_and_leaves_the_scores_alone(speech: np.ndarray) -> None:
    torch.manual_seed(2)
    config = ModelConfig(channels=(4, 8))
    detector = AudioDetector(build_detector(config), FeatureConfig())
    clips = [surround(speech, 1.0, 1.0, 3e-4), np.zeros(2 * SAMPLE_RATE, np.float32), noise(3.0, 0.05)]
    plain, checked = detector.score_waveforms(clips), detector.score_waveforms(clips, check_speech=True)
    assert [s.speech_seconds for s in plain] == [None, None, None]
    assert checked[0].speech_seconds is not None and checked[0].speech_seconds >= MIN_SPEECH_SECONDS
    assert checked[1].speech_seconds == checked[2].speech_seconds == 0
    assert [s.probability_real for s in checked] == [s.probability_real for s in plain]
    assert [s.segments for s in checked] == [s.segments for s in plain]


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("1", True), ("0", False), (" Off ", False)])
def test_the_check_is_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch, value: str | None, enabled: bool) -> None:
    if value is None:
        monkeypatch.delenv(SPEECH_CHECK_ENV, raising=False)
    else:
        monkeypatch.setenv(SPEECH_CHECK_ENV, value)
    assert speech_check_enabled() is enabled

"""One-pass scoring: chunked trunks equal a single pass, the inference copy equals the trained module,
short clips score as before, and long clips get a 2 s timeline whose segments see only their window."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from model.detectors import ARCHITECTURES, Detector, ModelConfig, build_detector, inference_copy
from model.features import FeatureConfig, pad_batch
from model.inference import AudioDetector
from model.timeline import SEGMENT_SECONDS, centred_window, embed_clips, plan_chunks, segment_spans
from tests.model.conftest import feature_rows, perturb_batch_norms, voiced

TOLERANCE = 1e-5
RATE = 16_000
CONFIGS = [ModelConfig(architecture=a) for a in ARCHITECTURES] + [
    ModelConfig(members=2),
    ModelConfig(normalize_bands=True),
]


def perturbed(config: ModelConfig) -> Detector:
    """A detector whose batch norms are far from the identity, so a wrong fold or a chunk seam would show."""
    torch.manual_seed(0)
    return perturb_batch_norms(build_detector(config))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.architecture}-m{c.members}-nb{c.normalize_bands}")
def test_inference_copy_gives_the_trained_modules_logits(config: ModelConfig) -> None:
    model = perturbed(config)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fast = inference_copy(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    rows = feature_rows(config.architecture)
    features, lengths = torch.randn(3, rows, 640), torch.tensor([640, 300, 12])
    with torch.inference_mode():
        torch.testing.assert_close(
            fast.logits(features, lengths), model.logits(features, lengths), atol=TOLERANCE, rtol=0
        )
        whole = torch.randn(2, rows, 640), torch.tensor([640, 640])  # no padding: the mask-free path
        torch.testing.assert_close(fast.logits(*whole), model.logits(*whole), atol=TOLERANCE, rtol=0)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == norms  # the original is untouched


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.architecture}-m{c.members}-nb{c.normalize_bands}")
def test_chunked_embedding_equals_one_pass_over_the_clip(config: ModelConfig) -> None:
    model = inference_copy(perturbed(config))
    rows = feature_rows(config.architecture)
    clips = [torch.randn(rows, 3001), torch.randn(rows, 250)]  # odd length: the last chunk is ragged
    with torch.inference_mode():
        chunked = embed_clips(model, clips, chunk_frames=512, margin_frames=256)
        whole = embed_clips(model, clips, chunk_frames=10_000, margin_frames=256)
    assert len(plan_chunks(0, 3001, model.time_stride, 512, 256)) == 6
    for a, b in zip(chunked, whole, strict=True):
        assert a.shape == b.shape
        # rtol: a transformer's embedding reaches magnitudes of tens, where float32 batching differs by 1e-5
        torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=TOLERANCE)


def test_chunks_cover_the_clip_on_the_stride_grid() -> None:
    chunks = plan_chunks(0, 10_000, 16, 4096, 256)
    assert [(c.keep_from, c.keep_to) for c in chunks] == [(0, 4096), (4096, 8192), (8192, 10_000)]
    assert all(c.start % 16 == 0 and c.start <= c.keep_from and c.keep_to <= c.end for c in chunks)
    assert chunks[1].start == 4096 - 256 and chunks[1].end == 8192 + 256
    assert plan_chunks(3, 4000, 16, 4096, 256) == [plan_chunks(3, 4000, 16, 4096, 256)[0]]  # one unit


def test_segments_are_equal_and_at_most_two_seconds() -> None:
    assert segment_spans(5 * RATE, 6 * RATE, 2 * RATE) == [(0, 5 * RATE)]  # within a window: one segment
    spans = segment_spans(600 * RATE + 77, 6 * RATE, 2 * RATE)
    assert len(spans) == 301 and spans[0][0] == 0 and spans[-1][1] == 600 * RATE + 77
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    lengths = [b - a for a, b in spans]
    assert max(lengths) <= 2 * RATE and max(lengths) - min(lengths) <= 1


def test_window_is_centred_on_its_segment_and_kept_inside_the_clip() -> None:
    assert centred_window((1000, 1200), 5000, 600) == (800, 1400)
    assert centred_window((0, 200), 5000, 600) == (0, 600)
    assert centred_window((4800, 5000), 5000, 600) == (4400, 5000)
    assert centred_window((0, 300), 300, 600) == (0, 300)


@pytest.fixture(scope="module")
def detector() -> AudioDetector:
    return AudioDetector(perturbed(ModelConfig()), FeatureConfig())


def test_a_clip_within_one_window_scores_as_the_detector_scores_it(detector: AudioDetector) -> None:
    for seconds in (0.5, 3.0, 6.0):
        clip = voiced(seconds, RATE, seed=4)[:, 0]
        with torch.inference_mode():
            logit = detector.model.logits(*pad_batch([detector.extractor(clip)]))
        score = detector.score_waveforms([clip])[0]
        assert [(s.start_seconds, s.end_seconds) for s in score.segments] == [(0.0, seconds)]
        assert score.probability_real == pytest.approx(float(torch.sigmoid(logit)), abs=TOLERANCE)


def test_long_clip_gets_a_two_second_timeline_whose_segments_see_only_their_window() -> None:
    """Change the last 4 s of a 40 s clip: segments whose windows (plus the trunk's reach) end before
    it keep their scores, the last ones change. Level normalisation is off, so the gain stays put."""
    detector = AudioDetector(perturbed(ModelConfig()), dataclasses.replace(FeatureConfig(), target_level_dbfs=None))
    clip = voiced(40.0, RATE, seed=5)[:, 0]
    changed = clip.copy()
    changed[36 * RATE :] *= 0.3  # quieter than the rest: the clip's loudest frame (Whisper's reference) stays
    before, after = detector.score_waveforms([clip, changed])
    assert len(before.segments) == 20
    assert all(s.end_seconds - s.start_seconds <= SEGMENT_SECONDS for s in before.segments)
    assert before.probability_real == pytest.approx(np.mean([s.probability_real for s in before.segments]))
    # Segment k's window ends at 2k + 4 s; the CNN sees under 0.5 s beyond it.
    untouched = [k for k in range(20) if 2 * k + 4 + 0.5 <= 36]
    for k in untouched:
        assert after.segments[k].probability_real == pytest.approx(before.segments[k].probability_real, abs=TOLERANCE)
    assert after.segments[-1].probability_real != pytest.approx(before.segments[-1].probability_real, abs=1e-4)


def test_a_batch_without_clips_scores_to_nothing(detector: AudioDetector) -> None:
    """The handler scores only a batch's decodable requests; all of them may have been refused."""
    assert detector.score_waveforms([]) == []

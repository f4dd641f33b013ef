"""EER, AUC, accuracy, ECE and Brier score on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    accuracy,
    brier_score,
    eer_by_group,
    equal_error_rate,
    expected_calibration_error,
    reliability_bins,
    roc_auc,
    summarize,
)


def test_perfect_separation_has_zero_eer() -> None:
    eer, threshold = equal_error_rate([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert eer == 0.0
    assert 0.3 < threshold <= 0.8


def test_one_overlapping_pair() -> None:
    # reals 0.9, 0.4; fakes 0.6, 0.2. For thresholds in (0.4, 0.6]: real 0.4 rejected (FRR 1/2),
    # fake 0.6 accepted (FAR 1/2): the rates meet at 50 %.
    eer, threshold = equal_error_rate([0.9, 0.4, 0.6, 0.2], [True, True, False, False])
    assert eer == 0.5 and threshold == 0.6


def test_one_error_in_five_per_class() -> None:
    # One fake (0.7) outranks one real (0.65) among five of each. At threshold 0.7 the real
    # 0.65 is rejected (FRR 1/5) and the fake 0.7 accepted (FAR 1/5): the rates meet at 20 %.
    reals = [0.95, 0.9, 0.85, 0.8, 0.65]
    fakes = [0.7, 0.3, 0.2, 0.1, 0.05]
    eer, threshold = equal_error_rate(reals + fakes, [True] * 5 + [False] * 5)
    assert eer == pytest.approx(0.2)
    assert threshold == 0.7


def test_fully_inverted_scores() -> None:
    eer, _ = equal_error_rate([0.1, 0.2, 0.8, 0.9], [True, True, False, False])
    assert eer == 1.0


def test_unbalanced_classes() -> None:
    # 4 reals, 2 fakes; one fake (0.5) above one real (0.45). At threshold 0.5: FRR 1/4,
    # FAR 1/2; at 0.7: FRR 1/4, FAR 0. FRR = FAR = 1/4 lies on the segment between them.
    scores = [0.9, 0.8, 0.7, 0.45, 0.5, 0.1]
    eer, threshold = equal_error_rate(scores, [True, True, True, True, False, False])
    assert eer == pytest.approx(0.25)
    assert threshold == 0.7


def test_eer_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        equal_error_rate([0.1, 0.2], [True, True])


def test_auc_counts_ordered_pairs_and_half_ties() -> None:
    assert roc_auc([0.9, 0.4, 0.6, 0.2], [True, True, False, False]) == 0.75
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.9, 0.1], [True, False]) == 1.0


def test_accuracy_at_threshold() -> None:
    assert accuracy([0.9, 0.4, 0.6, 0.2], [True, True, False, False], 0.5) == 0.5


def test_eer_per_attack_pairs_each_attack_with_all_reals() -> None:
    scores = np.array([0.9, 0.8, 0.1, 0.85])
    is_real = np.array([True, True, False, False])
    groups = ["bonafide", "bonafide", "tts-a", "tts-b"]
    per_attack = eer_by_group(scores, is_real, groups)
    assert per_attack == {"tts-a": 0.0, "tts-b": 0.5}


def test_ece_of_a_calibrated_set_is_small_and_of_an_overconfident_one_large() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 1, 50_000)
    labels = rng.random(50_000) < probabilities  # P(real) is exactly the chance of real
    assert expected_calibration_error(probabilities, labels) < 0.01
    logits = np.log(probabilities / (1 - probabilities))
    overconfident = 1 / (1 + np.exp(-4 * logits))  # same ranking, pushed toward 0 and 1
    assert expected_calibration_error(overconfident, labels) > 0.1


def test_ece_worked_by_hand() -> None:
    # Bins of width 1/2: [0.1, 0.2] with 0 of 2 real -> gap 0.15; [0.9, 0.6] with 1 of 2 real -> gap 0.25.
    ece = expected_calibration_error([0.1, 0.2, 0.9, 0.6], [False, False, True, False], bins=2)
    assert ece == pytest.approx((2 * 0.15 + 2 * 0.25) / 4)
    confidence, frequency, counts = reliability_bins([0.0, 1.0, 1.0], [False, True, True], bins=3)
    assert counts.tolist() == [1, 0, 2]  # P(real) = 1 falls in the last bin
    assert np.isnan(confidence[1]) and frequency[2] == 1.0
    assert expected_calibration_error([0.0, 1.0, 1.0], [False, True, True], bins=3) == 0.0


def test_brier_score_known_values() -> None:
    assert brier_score([1.0, 0.0], [True, False]) == 0.0
    assert brier_score([0.0, 1.0], [True, False]) == 1.0
    assert brier_score([0.5] * 4, [True, False, True, False]) == 0.25
    assert brier_score([0.8, 0.3], [True, False]) == pytest.approx((0.2**2 + 0.3**2) / 2)
    with pytest.raises(ValueError):
        brier_score([0.5, 0.5], [True])


def test_summary_reports_calibration() -> None:
    report = summarize([0.9, 0.8, 0.3, 0.2], [True, True, False, False], threshold=0.5)
    assert report["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.04) / 4)
    assert 0 <= report["ece"] <= 1 and report["accuracy"] == 1.0


def test_labelled_rates_are_per_class() -> None:
    report = summarize([0.9, 0.4, 0.6, 0.2, 0.1], [True, True, False, False, False], threshold=0.5)
    assert report["real_labelled_real"] == 0.5
    assert report["fake_labelled_fake"] == pytest.approx(2 / 3)
    assert report["accuracy"] == pytest.approx(3 / 5)

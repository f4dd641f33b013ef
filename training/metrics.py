"""Detection metrics with P(real) as the score: higher means more likely bona fide.

False accept: a fake scored at or above the threshold. False reject: a real scored below it.
The EER is where the two rates meet: FRR rises and FAR falls with the threshold, so their
difference changes sign once; the EER is read where the line between those two operating
points crosses FRR = FAR (exact when a threshold makes them equal).

Calibration metrics read the score as a probability: the expected calibration error (ECE) is the
gap between P(real) and the observed share of real clips, averaged over equal-width bins of P(real)
weighted by how many clips fall in each; the Brier score is the mean squared error of P(real).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

CALIBRATION_BINS = 15


def error_rates(scores: Sequence[float], is_real: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-reject and false-accept rates at every candidate threshold (ascending)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_real = np.asarray(is_real, dtype=bool)
    if is_real.all() or not is_real.any():
        raise ValueError("error rates need both real and fake examples")
    thresholds = np.concatenate([np.unique(scores), [np.inf]])
    real, fake = np.sort(scores[is_real]), np.sort(scores[~is_real])
    frr = np.searchsorted(real, thresholds, side="left") / len(real)
    far = 1.0 - np.searchsorted(fake, thresholds, side="left") / len(fake)
    return frr, far, thresholds


def equal_error_rate(scores: Sequence[float], is_real: Sequence[bool]) -> tuple[float, float]:
    """(EER, threshold at the EER)."""
    frr, far, thresholds = error_rates(scores, is_real)
    difference = frr - far
    index = int(np.argmax(difference >= 0))  # the last threshold (inf) always has FRR 1, FAR 0
    threshold = float(thresholds[index]) if np.isfinite(thresholds[index]) else 1.0
    if difference[index] == 0 or index == 0:
        return float(frr[index]), threshold
    before, after = difference[index - 1], difference[index]
    weight = -before / (after - before)
    return float(frr[index - 1] + weight * (frr[index] - frr[index - 1])), threshold


def roc_auc(scores: Sequence[float], is_real: Sequence[bool]) -> float:
    """Probability that a random real clip outscores a random fake one (ties count half)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_real = np.asarray(is_real, dtype=bool)
    real, fake = scores[is_real], scores[~is_real]
    fake_sorted = np.sort(fake)
    below = np.searchsorted(fake_sorted, real, side="left")
    ties = np.searchsorted(fake_sorted, real, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(real) * len(fake)))


def accuracy(scores: Sequence[float], is_real: Sequence[bool], threshold: float) -> float:
    predicted_real = np.asarray(scores) >= threshold
    return float((predicted_real == np.asarray(is_real, dtype=bool)).mean())


def labelled_rate(scores: Sequence[float], is_real: Sequence[bool], threshold: float, real: bool) -> float | None:
    """Share of one class's clips given that class's label: a real recording flagged fake is the first
    failure a user meets, and overall accuracy hides it behind the other class. None without such clips."""
    scores, is_real = np.asarray(scores), np.asarray(is_real, dtype=bool)
    members = scores[is_real == real]
    return float(((members >= threshold) == real).mean()) if len(members) else None


def _probability_pairs(probabilities: Sequence[float], is_real: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 arrays; refused unless paired one to one (numpy would broadcast silently)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    is_real = np.asarray(is_real, dtype=np.float64)
    if probabilities.shape != is_real.shape or probabilities.size == 0:
        raise ValueError("calibration metrics need one label per probability and at least one of them")
    return probabilities, is_real


def reliability_bins(
    probabilities: Sequence[float], is_real: Sequence[bool], bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of P(real) on [0, 1]: mean P(real), share of real clips, clip count.

    Empty bins have NaN means and a count of 0. P(real) = 1 falls in the last bin.
    """
    probabilities, is_real = _probability_pairs(probabilities, is_real)
    index = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=probabilities, minlength=bins) / counts
        frequency = np.bincount(index, weights=is_real, minlength=bins) / counts
    return confidence, frequency, counts


def expected_calibration_error(
    probabilities: Sequence[float], is_real: Sequence[bool], bins: int = CALIBRATION_BINS
) -> float:
    """Mean |P(real) − share real| over bins of P(real), weighted by the bins' clip counts."""
    confidence, frequency, counts = reliability_bins(probabilities, is_real, bins)
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(confidence[filled] - frequency[filled])) / counts.sum())


def brier_score(probabilities: Sequence[float], is_real: Sequence[bool]) -> float:
    """Mean squared error of P(real) against 1 for real and 0 for fake (0 is perfect, 0.25 a coin)."""
    probabilities, is_real = _probability_pairs(probabilities, is_real)
    return float(np.mean((probabilities - is_real) ** 2))


def summarize(scores: Sequence[float], is_real: Sequence[bool], threshold: float) -> dict[str, float | None]:
    eer, eer_threshold = equal_error_rate(scores, is_real)
    return {
        "count": len(scores),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "auc": roc_auc(scores, is_real),
        "accuracy": accuracy(scores, is_real, threshold),
        "real_labelled_real": labelled_rate(scores, is_real, threshold, real=True),
        "fake_labelled_fake": labelled_rate(scores, is_real, threshold, real=False),
        "threshold": threshold,
        "ece": expected_calibration_error(scores, is_real),
        "brier": brier_score(scores, is_real),
    }


def eer_by_group(scores: Sequence[float], is_real: Sequence[bool], groups: Sequence[str]) -> dict[str, float]:
    """EER of each fake group (e.g. attack) against all real clips; groups of real clips are skipped.

    With only real clips labelled by group (e.g. per codec, where both classes share one group
    value), the EER is taken within the group instead.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_real = np.asarray(is_real, dtype=bool)
    by_group: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        by_group[group].append(index)
    results = {}
    for group, indices in sorted(by_group.items()):
        members = np.asarray(indices)
        if is_real[members].all():
            continue
        if is_real[members].any():
            results[group] = equal_error_rate(scores[members], is_real[members])[0]
        else:
            paired = np.concatenate([np.flatnonzero(is_real), members])
            results[group] = equal_error_rate(scores[paired], is_real[paired])[0]
    return results

"""Detection metrics with P(real) as the score: higher means more likely bona fide.

False accept: a fake scored at or above the threshold. False reject: a real scored below it.
The EER is where the two rates meet: FRR rises and FAR falls with the threshold, so their
difference changes sign once; the EER is read where the line between those two operating
points crosses FRR = FAR (exact when a threshold makes them equal).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


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


def summarize(scores: Sequence[float], is_real: Sequence[bool], threshold: float) -> dict[str, float]:
    eer, eer_threshold = equal_error_rate(scores, is_real)
    return {
        "count": len(scores),
        "eer": eer,
        "eer_threshold": eer_threshold,
        "auc": roc_auc(scores, is_real),
        "accuracy": accuracy(scores, is_real, threshold),
        "threshold": threshold,
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

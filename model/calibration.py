"""Platt scaling: turn the detector's logit into a probability that means what it says.

A detector trained with class-balanced BCE and early stopping on EER ranks clips well, but its
sigmoid is not a probability: the shipped model's EER threshold is 0.07, so a clip scored 0.4 is
far more likely real than fake. Platt scaling fits P(real) = sigmoid(scale * logit + bias) on the
dev split by minimising log loss. It is monotone (scale is kept positive), so rankings, EER and
AUC are unchanged; only the numbers, and with them the natural 0.5 threshold, gain a meaning.

The fit is a damped Newton method on two parameters in float64: deterministic, a handful of
iterations, and finite on perfectly separated dev data thanks to a tiny L2 pull toward the
identity (without it the scale would grow without bound, as the log loss keeps falling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import torch

CALIBRATED_THRESHOLD = 0.5  # a calibrated P(real) says "real" when real is the likelier class
L2_PENALTY = 1e-4  # weight of ||(scale, bias) - (1, 0)||² / 2 next to the mean log loss
MIN_SCALE, MAX_SCALE = 1e-3, 1e3  # positive: calibration never reverses the detector's ranking
MAX_ITERATIONS = 100
TOLERANCE = 1e-10  # stop when no parameter moves by more than this
MIN_STEP = 1e-12  # smallest damped Newton step tried before giving up on further progress
IDENTITY = np.array([1.0, 0.0])  # (scale, bias) the L2 penalty pulls toward

Logits = TypeVar("Logits", torch.Tensor, np.ndarray, float)


@dataclass(frozen=True)
class Calibration:
    """P(real) = sigmoid(scale * logit + bias); the default is the identity (a plain sigmoid)."""

    scale: float = 1.0
    bias: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.bias == 0.0

    def apply(self, logits: Logits) -> Logits:
        """Calibrated logits (the sigmoid of these is the calibrated P(real)); tensor, array or float."""
        return logits * self.scale + self.bias

    def probabilities(self, logits: Sequence[float] | np.ndarray) -> np.ndarray:
        """Calibrated P(real) of raw logits, in float64."""
        return sigmoid(self.apply(np.asarray(logits, dtype=np.float64)))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Calibration:
        """A stored calibration; None (a checkpoint from before calibration) is the identity."""
        if not values:
            return cls()
        return cls(scale=float(values["scale"]), bias=float(values["bias"]))


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Logistic function, exact in both tails and without overflow for large |values|."""
    values = np.asarray(values, dtype=np.float64)
    decay = np.exp(-np.abs(values))
    return np.where(values >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


def _penalised_log_loss(theta: np.ndarray, logits: np.ndarray, labels: np.ndarray, l2: float) -> float:
    scores = theta[0] * logits + theta[1]
    log_loss = np.mean(np.logaddexp(0.0, scores) - labels * scores)
    return float(log_loss + 0.5 * l2 * np.sum((theta - IDENTITY) ** 2))


def fit_platt(
    logits: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, l2: float = L2_PENALTY
) -> Calibration:
    """The (scale, bias) that minimise mean log loss of sigmoid(scale * logit + bias) against labels (True = real)."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=np.float64).ravel()
    if logits.shape != labels.shape or logits.size == 0:
        raise ValueError("calibration needs one label per logit and at least one of each")
    if labels.min() == labels.max():
        raise ValueError("calibration needs both real and fake examples")
    if not np.isfinite(logits).all():
        raise ValueError("calibration logits must be finite")
    design = np.stack([logits, np.ones_like(logits)], axis=1)
    theta = IDENTITY.copy()
    loss = _penalised_log_loss(theta, logits, labels, l2)
    for _ in range(MAX_ITERATIONS):
        probabilities = sigmoid(design @ theta)
        gradient = design.T @ (probabilities - labels) / len(labels) + l2 * (theta - IDENTITY)
        weights = probabilities * (1.0 - probabilities)
        hessian = (design.T * weights) @ design / len(labels) + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size >= MIN_STEP:  # halve the Newton step until the loss does not rise
            candidate = theta - size * step
            candidate[0] = np.clip(candidate[0], MIN_SCALE, MAX_SCALE)
            candidate_loss = _penalised_log_loss(candidate, logits, labels, l2)
            if candidate_loss <= loss:
                break
            size /= 2
        else:
            break
        moved = float(np.max(np.abs(candidate - theta)))
        theta, loss = candidate, candidate_loss
        if moved < TOLERANCE:
            break
    return Calibration(scale=float(theta[0]), bias=float(theta[1]))

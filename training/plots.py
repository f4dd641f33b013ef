"""PNG plots people would rather look at than read: training curves, ROC/DET, score histograms, reliability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from training.metrics import CALIBRATION_BINS, error_rates, expected_calibration_error, reliability_bins

DPI = 120
DET_TICKS = (0.001, 0.01, 0.05, 0.2, 0.5)
DET_CLIP = (5e-4, 0.6)  # rates shown on the DET plot; 0 and 100% have no probit

ScoreSet = tuple[Sequence[float], Sequence[bool]]


def _probit(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, *DET_CLIP)
    return torch.special.ndtri(torch.from_numpy(clipped)).numpy()


def plot_history(histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> None:
    """Loss and dev EER per epoch; one colour per run (an ensemble's members share the axes)."""
    figure, (loss_axis, eer_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (name, history) in enumerate(histories.items()):
        colour = f"C{index}"
        prefix = f"{name} " if len(histories) > 1 else ""
        epochs = [h["epoch"] for h in history]
        loss_axis.plot(epochs, [h["train_loss"] for h in history], color=colour, label=f"{prefix}train")
        loss_axis.plot(epochs, [h["dev_loss"] for h in history], color=colour, linestyle="--", label=f"{prefix}dev")
        eer_axis.plot(epochs, [100 * h["dev_eer"] for h in history], color=colour, label=name)
    loss_axis.set(xlabel="epoch", ylabel="BCE loss", title="Loss")
    loss_axis.legend()
    if len(histories) > 1:
        eer_axis.legend()
    eer_axis.set(xlabel="epoch", ylabel="EER (%)", title="Dev equal error rate")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_roc_det(score_sets: Mapping[str, ScoreSet], path: Path) -> None:
    """ROC (linear) and DET (probit axes) curves, one line per named condition."""
    figure, (roc_axis, det_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, (scores, is_real) in score_sets.items():
        frr, far, _ = error_rates(scores, is_real)
        roc_axis.plot(far, 1 - frr, label=name)
        det_axis.plot(_probit(far), _probit(frr), label=name)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axis.set(xlabel="false accept rate (fake passed as real)", ylabel="true accept rate", title="ROC")
    ticks = _probit(np.asarray(DET_TICKS))
    labels = [f"{100 * t:g}%" for t in DET_TICKS]
    det_axis.set_xticks(ticks, labels)
    det_axis.set_yticks(ticks, labels)
    det_axis.plot(ticks, ticks, color="grey", linestyle=":")
    det_axis.set_xlim(*_probit(np.asarray(DET_CLIP)))
    det_axis.set_ylim(*_probit(np.asarray(DET_CLIP)))
    det_axis.set(xlabel="false accept rate", ylabel="false reject rate", title="DET")
    for axis in (roc_axis, det_axis):
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_score_histograms(score_sets: Mapping[str, ScoreSet], threshold: float, path: Path) -> None:
    """P(real) distributions per class, one panel per condition, with the decision threshold."""
    figure, axes = plt.subplots(1, len(score_sets), figsize=(5 * len(score_sets), 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for axis, (name, (scores, is_real)) in zip(axes[0], score_sets.items(), strict=True):
        scores, is_real = np.asarray(scores), np.asarray(is_real, dtype=bool)
        axis.hist(scores[is_real], bins=bins, alpha=0.6, label="real", color="tab:green")
        axis.hist(scores[~is_real], bins=bins, alpha=0.6, label="fake", color="tab:red")
        axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
        axis.set(xlabel="P(real)", ylabel="clips", title=name, yscale="log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_reliability(score_sets: Mapping[str, ScoreSet], path: Path, bins: int = CALIBRATION_BINS) -> None:
    """Reliability diagram: share of real clips against mean P(real) per bin, one line per condition.

    On the diagonal P(real) means what it says; below it the detector is overconfident that
    clips are real. The lower panel shows how many clips each bin holds (most sit near 0 and 1).
    """
    figure, (curve_axis, count_axis) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    edges = np.linspace(0, 1, bins + 1)
    for index, (name, (scores, is_real)) in enumerate(score_sets.items()):
        confidence, frequency, counts = reliability_bins(scores, is_real, bins)
        filled = counts > 0
        ece = expected_calibration_error(scores, is_real, bins)
        label = f"{name} (ECE {ece:.3f})"
        curve_axis.plot(confidence[filled], frequency[filled], marker="o", color=f"C{index}", label=label)
        count_axis.stairs(counts, edges, color=f"C{index}", label=name)
    curve_axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    curve_axis.set(ylabel="share of real clips", title=f"Reliability ({bins} bins of P(real))")
    curve_axis.set(xlim=(0, 1), ylim=(0, 1))
    curve_axis.grid(alpha=0.3)
    curve_axis.legend(loc="upper left")
    count_axis.set(xlabel="P(real)", ylabel="clips", yscale="log")
    count_axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)

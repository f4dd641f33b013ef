"""Platt scaling recovers a known calibration, stays finite on separable data and never reverses rankings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.calibration import MAX_SCALE, MIN_SCALE, Calibration, fit_platt, sigmoid

TRUE_SCALE, TRUE_BIAS = 2.0, -1.0


def synthetic_logits(count: int, scale: float, bias: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels are drawn with P(real) = sigmoid(scale * logit + bias)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, count)
    labels = rng.random(count) < sigmoid(scale * logits + bias)
    return logits, labels


def test_fit_recovers_a_known_scale_and_bias() -> None:
    logits, labels = synthetic_logits(40_000, TRUE_SCALE, TRUE_BIAS)
    fitted = fit_platt(logits, labels)
    assert fitted.scale == pytest.approx(TRUE_SCALE, abs=0.08)
    assert fitted.bias == pytest.approx(TRUE_BIAS, abs=0.05)


def test_fit_of_calibrated_logits_is_near_identity() -> None:
    logits, labels = synthetic_logits(40_000, 1.0, 0.0, seed=1)
    fitted = fit_platt(logits, labels)
    assert (fitted.scale, fitted.bias) == pytest.approx((1.0, 0.0), abs=0.05)


def test_fit_is_deterministic() -> None:
    logits, labels = synthetic_logits(2_000, TRUE_SCALE, TRUE_BIAS, seed=2)
    assert fit_platt(logits, labels) == fit_platt(logits.copy(), labels.copy())


@pytest.mark.parametrize("margin", [1e-3, 0.1, 5.0])
def test_perfectly_separated_data_gives_a_finite_order_keeping_fit(margin: float) -> None:
    rng = np.random.default_rng(3)
    real = margin + rng.uniform(0, 3, 200)
    fake = -margin - rng.uniform(0, 3, 200)
    logits, labels = np.concatenate([real, fake]), np.r_[np.ones(200, bool), np.zeros(200, bool)]
    fitted = fit_platt(logits, labels)
    assert np.isfinite([fitted.scale, fitted.bias]).all()
    assert MIN_SCALE <= fitted.scale <= MAX_SCALE
    probabilities = fitted.probabilities(logits)
    assert np.isfinite(probabilities).all()
    order = np.argsort(logits)
    assert np.all(np.diff(probabilities[order]) >= 0)
    assert np.median(probabilities[:200]) > 0.5 > np.median(probabilities[200:])


def test_scale_stays_positive_when_the_detector_is_backwards() -> None:
    """A detector that ranks fakes above reals gets a flat calibration, never a reversed one."""
    logits, labels = synthetic_logits(5_000, -1.0, 0.0, seed=4)
    fitted = fit_platt(logits, labels)
    assert fitted.scale == MIN_SCALE
    assert np.all(np.diff(fitted.probabilities(np.sort(logits))) >= 0)


@pytest.mark.parametrize(
    ("logits", "labels"),
    [([], []), ([0.1, 0.2], [True, True]), ([0.1, 0.2], [True]), ([np.nan, 1.0], [True, False])],
    ids=["empty", "one-class", "unpaired", "nan"],
)
def test_fit_refuses_data_it_cannot_calibrate(logits: list, labels: list) -> None:
    with pytest.raises(ValueError):
        fit_platt(logits, labels)


def test_default_is_the_identity() -> None:
    identity = Calibration()
    assert identity.is_identity and (identity.scale, identity.bias) == (1.0, 0.0)
    logits = np.linspace(-30, 30, 61)
    np.testing.assert_array_equal(identity.apply(logits), logits)
    np.testing.assert_allclose(identity.probabilities(logits), 1 / (1 + np.exp(-logits)), rtol=1e-12, atol=1e-300)
    assert Calibration.from_dict(None) == Calibration.from_dict({}) == identity
    assert not Calibration(2.0, 0.0).is_identity


def test_dict_round_trip_and_tensor_apply() -> None:
    calibration = Calibration(scale=0.75, bias=-2.5)
    assert calibration.to_dict() == {"scale": 0.75, "bias": -2.5}
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    logits = torch.tensor([-1.0, 0.0, 2.0])
    applied = calibration.apply(logits)
    assert applied.dtype == torch.float32
    torch.testing.assert_close(applied, torch.tensor([-3.25, -2.5, -1.0]))
    assert calibration.apply(2.0) == pytest.approx(-1.0)


def test_sigmoid_has_no_overflow_at_extremes() -> None:
    with np.errstate(over="raise", invalid="raise"):
        values = sigmoid(np.array([-1e4, -50.0, 0.0, 50.0, 1e4]))
    assert values[0] == 0.0 and values[2] == 0.5 and values[-1] == 1.0

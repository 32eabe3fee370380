"""The calibration rules without a model: ECE by hand, the temperature fit, coverage, spread,
and calibration.json refused in one line when damaged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rvl_llm.errors import RvlError
from rvl_llm.inference.calibration import (
    CALIBRATION_NAME,
    check_min_probability,
    coverage_table,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    mean_std,
    nll,
    read_temperature,
    softmax,
    write_calibration,
)


def test_ece_by_hand() -> None:
    # Top probabilities 0.95, 0.95, 0.6, 0.55: two of the 15 bins hold two documents each.
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4], [0.45, 0.55]])
    true = np.array([0, 0, 0, 0])  # right, wrong, right, wrong
    # bin 14 (0.933, 1]: confidences 0.95, 0.95, accuracy 1/2 -> |0.5 - 0.95| = 0.45, weight 2/4
    # bin 8 (0.533, 0.6]: confidences 0.6, 0.55, accuracy 1/2 -> |0.5 - 0.575| = 0.075, 2/4
    expected = 0.5 * 0.45 + 0.5 * 0.075
    assert expected_calibration_error(probs, true) == pytest.approx(expected)
    # Two bins instead of 15: one bin (0.5, 1] holds all four: |0.5 - 0.7625|
    assert expected_calibration_error(probs, true, bins=2) == pytest.approx(0.2625)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0)) == 0.0


def test_the_temperature_lowers_nll_and_finds_an_overconfident_scale() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5))
    true = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    scores = 3.0 * logits  # three times over-confident
    temperature = fit_temperature(scores, true)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert nll(scores, true, temperature) < nll(scores, true)
    fitted = fit_calibration(scores, true, {"split": "validation"})
    assert fitted.nll_after < fitted.nll_before and fitted.ece_after < fitted.ece_before
    # The argmax, hence accuracy, does not move.
    assert (softmax(scores, temperature).argmax(1) == scores.argmax(1)).all()


def test_coverage_table_and_spread_by_hand() -> None:
    probs = np.array([[0.95, 0.05], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    true = np.array([0, 0, 0, 1])
    rows = {r["min_probability"]: r for r in coverage_table(probs, true, (0.0, 0.7, 0.99))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["accuracy"] == 0.75
    assert rows[0.7]["answered"] == 2 and rows[0.7]["accuracy"] == 0.5
    assert rows[0.99]["answered"] == 0 and rows[0.99]["accuracy"] is None
    mean, std = mean_std([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8) and std == pytest.approx(0.1)  # n - 1
    assert mean_std([0.7]) == (0.7, None)


def test_min_probability_checks() -> None:
    assert check_min_probability(None, "p") is None
    assert check_min_probability(1, "p") == 1.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_min_probability(1.5, "--min-probability")
    with pytest.raises(ValueError):
        check_min_probability(math.nan, "p")
    with pytest.raises(TypeError):
        check_min_probability("0.5", "p")
    with pytest.raises(TypeError):
        check_min_probability(True, "p")


def test_calibration_json_round_trip_and_damage(tmp_path: Path) -> None:
    assert read_temperature(tmp_path) is None
    scores = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    fitted = fit_calibration(scores, np.array([0, 1, 1]), {"split": "validation"})
    write_calibration(tmp_path, fitted)
    assert read_temperature(tmp_path) == pytest.approx(fitted.temperature)
    path = tmp_path / CALIBRATION_NAME
    for text, needle in [("{", "not valid JSON"),
                         (json.dumps({"format": 0, "temperature": 2}), "format 0"),
                         (json.dumps({"format": 1, "temperature": -1}), "temperature -1"),
                         (json.dumps({"format": 1, "temperature": "2"}), "temperature '2'")]:
        path.write_text(text)
        with pytest.raises(RvlError, match=needle) as err:
            read_temperature(tmp_path)
        assert str(path) in str(err.value) and "--calibrate" in str(err.value)
        assert "\n" not in str(err.value)

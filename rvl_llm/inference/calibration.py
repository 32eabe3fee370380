"""Probabilities that mean what they say: temperature scaling, ECE, abstention, test-set spread.

Pure numpy, no model: eval, predict, ``Classifier`` and export share these rules.

- **Temperature**: class probabilities are ``softmax(scores / T)`` over a document's class
  log-scores (the label log-probs of a generative run, the log-softmax of a classifier). One T is
  fitted on the validation split by minimising the negative log-likelihood of the true classes
  (a golden-section search over log T: the NLL is convex in 1/T, so it has one minimum). T > 1
  softens over-confident answers; the argmax, hence accuracy, never changes.
- **ECE** (expected calibration error): the top probability of each document put in ``ECE_BINS``
  (15) equal-width bins over [0, 1] (a bin holds (lo, hi], the first [0, hi]);
  ``sum_b n_b / n * |accuracy_b - mean confidence_b|``.
- **Abstention**: below ``min_probability`` the answer is no label; ``coverage_table`` shows the
  share answered and their accuracy at a few thresholds.
- ``calibration.json`` in a checkpoint folder holds the fitted temperature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvl_llm.atomic import write_json_atomic
from rvl_llm.errors import RvlError

ECE_BINS = 15
THRESHOLDS = (0.0, 0.5, 0.7, 0.9)  # eval's coverage/accuracy table
CALIBRATION_NAME = "calibration.json"  # beside the weights of a calibrated checkpoint
CALIBRATION_FORMAT = 1
# The search interval of T: beyond these a softmax is a one-hot or uniform to float precision.
T_MIN, T_MAX = 0.01, 100.0
_SEARCH_STEPS = 80  # golden-section steps: the bracket shrinks to 1e-16 of its log-width


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (float64)."""
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def nll(scores: np.ndarray, true: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under ``softmax(scores / T)``."""
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
    picked = scaled[np.arange(len(scaled)), np.asarray(true, dtype=np.int64)]
    return float(np.mean(log_norm - picked))


def fit_temperature(scores: np.ndarray, true: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] that minimises ``nll(scores, true, T)``: golden-section search
    over log T (scipy is not a dependency, and one bounded dimension needs none)."""
    if len(scores) == 0:
        raise RvlError("--calibrate: the validation split has no documents to fit on")
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(_SEARCH_STEPS):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(scores, true, math.exp(a)) <= nll(scores, true, math.exp(b)):
            hi = b  # the minimum lies in [lo, b]
        else:
            lo = a
    return math.exp((lo + hi) / 2)


def reliability_bins(probs: np.ndarray, true: np.ndarray,
                     bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per confidence bin: its edges, documents, mean top probability and accuracy (empty
    bins keep ``n`` 0 and None)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(true)
    # (lo, hi] bins; a confidence of exactly 0 (impossible for a softmax) joins the first.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        rows.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n,
                     "confidence": float(confidence[members].mean()) if n else None,
                     "accuracy": float(correct[members].mean()) if n else None})
    return rows


def expected_calibration_error(probs: np.ndarray, true: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """``sum_b n_b / n * |accuracy_b - confidence_b|`` over equal-width bins of the top
    probability; 0.0 for no documents."""
    total = len(probs)
    if total == 0:
        return 0.0
    return float(sum(r["n"] / total * abs(r["accuracy"] - r["confidence"])
                     for r in reliability_bins(probs, true, bins) if r["n"]))


def coverage_table(probs: np.ndarray, true: np.ndarray,
                   thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per threshold t: the share of documents answered (top probability >= t) and the accuracy
    of those answers (None when none is answered)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(true)
    rows = []
    for t in thresholds:
        kept = confidence >= t
        n = int(kept.sum())
        rows.append({"min_probability": float(t), "answered": n,
                     "coverage": n / len(probs) if len(probs) else 0.0,
                     "accuracy": float(correct[kept].mean()) if n else None})
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1, as tables over a few test sets report it);
    None for one value."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else None


def check_min_probability(value: object, name: str) -> float | None:
    """``--min-probability`` / ``min_probability=``: None, or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number between 0 and 1, not "
                        f"{type(value).__name__} {value!r}")
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"{name} {value}: must be a probability between 0 and 1")
    return float(value)


@dataclass(frozen=True)
class Calibration:
    """What ``calibration.json`` holds: one temperature and where it was fitted."""

    temperature: float
    fitted_on: dict[str, Any]  # split, documents, data folder, cache key
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float

    def to_json(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "temperature": self.temperature,
                "fitted_on": self.fitted_on, "nll_before": self.nll_before,
                "nll_after": self.nll_after, "ece_bins": ECE_BINS,
                "ece_before": self.ece_before, "ece_after": self.ece_after}


def fit_calibration(scores: np.ndarray, true: np.ndarray, fitted_on: dict[str, Any]
                    ) -> Calibration:
    """Fit T on validation scores, with the NLL and ECE before and after it."""
    temperature = fit_temperature(scores, true)
    return Calibration(
        temperature=temperature, fitted_on=fitted_on,
        nll_before=nll(scores, true), nll_after=nll(scores, true, temperature),
        ece_before=expected_calibration_error(softmax(scores), true),
        ece_after=expected_calibration_error(softmax(scores, temperature), true))


def read_temperature(folder: Path) -> float | None:
    """The temperature ``calibration.json`` in ``folder`` holds; None when there is none. A
    damaged file is refused in one line, never read as 1."""
    path = Path(folder) / CALIBRATION_NAME
    redo = f"rerun `rvl-llm eval -c {folder} --calibrate`, or delete it"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise RvlError(f"{path}: cannot read ({err}); {redo}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RvlError(f"{path}: not valid JSON ({err.msg}); {redo}") from err
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise RvlError(f"{path}: format {found!r}, this rvl-llm reads format "
                       f"{CALIBRATION_FORMAT}; {redo}")
    value = data.get("temperature")
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not T_MIN <= value <= T_MAX):  # NaN fails the range too
        raise RvlError(f"{path}: temperature {value!r} is not a number in "
                       f"[{T_MIN}, {T_MAX}]; {redo}")
    return float(value)


def write_calibration(folder: Path, calibration: Calibration) -> None:
    write_json_atomic(Path(folder) / CALIBRATION_NAME, calibration.to_json())


def calibration_note(temperature: float) -> str:
    """The model card's paragraph on an export's temperature."""
    return (f"\n## Calibration\n\nThe class scores are divided by the temperature "
            f"T = {temperature:.4g} before the softmax (`{CALIBRATION_NAME}`, fitted by "
            "`rvl-llm eval --calibrate` on the validation split); `rvl-llm predict` and "
            "`Classifier` do it for you. Accuracy is unchanged; the probabilities mean what "
            "they say.\n")

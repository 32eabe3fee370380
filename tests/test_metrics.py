"""compute_metrics equals scikit-learn on the same predictions, invalid generations included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from rvl_llm.inference.metrics import compute_metrics
from rvl_llm.labels import RVL_CDIP_CLASSES

LABELS = RVL_CDIP_CLASSES


def predictions(n: int, invalid_share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, len(LABELS), n)
    predicted = np.where(rng.random(n) < 0.6, true, rng.integers(0, len(LABELS), n))
    predicted[rng.random(n) < invalid_share] = -1
    return true, predicted


@pytest.mark.parametrize("invalid_share", [0.0, 0.15])
def test_equals_sklearn(invalid_share: float) -> None:
    true, predicted = predictions(500, invalid_share)
    m = compute_metrics(true, predicted, LABELS)
    classes = list(range(len(LABELS)))
    # 500 documents over 16 classes: every class is present, so the average covers them all.
    assert m["macro_classes"] == len(LABELS)
    assert m["n"] == 500
    assert m["invalid"] == int((predicted == -1).sum())
    assert (m["invalid"] > 0) == (invalid_share > 0)
    assert m["accuracy"] == pytest.approx(accuracy_score(true, predicted))
    # An invalid prediction is always wrong: accuracy counts it in the denominator.
    assert m["accuracy"] == pytest.approx(((true == predicted).sum()) / 500)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            true, predicted, labels=classes, average=average, zero_division=0
        )
        assert (m[f"{average}_precision"], m[f"{average}_recall"], m[f"{average}_f1"]) == (
            pytest.approx(p), pytest.approx(r), pytest.approx(f))
    p, r, f, s = precision_recall_fscore_support(
        true, predicted, labels=classes, zero_division=0
    )
    assert list(m["per_class"]) == list(LABELS)
    for i, name in enumerate(LABELS):
        row = m["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == (
            pytest.approx(p[i]), pytest.approx(r[i]), pytest.approx(f[i]))
        assert row["support"] == s[i] == (true == i).sum()
    matrix = np.array(m["confusion_matrix"])
    np.testing.assert_array_equal(matrix, confusion_matrix(true, predicted, labels=classes))
    # Rows are true classes; an invalid prediction lands in no column.
    np.testing.assert_array_equal(matrix.sum(1), np.bincount(true[predicted != -1], minlength=16))
    assert m["macro_f1"] == pytest.approx(
        f1_score(true, predicted, labels=classes, average="macro", zero_division=0))


def test_invalid_lowers_recall_not_precision() -> None:
    labels = ("a", "b")
    m = compute_metrics([0, 0, 1, 1], [0, -1, 1, 1], labels)
    assert m["accuracy"] == 0.75
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                   "support": 2}
    assert m["per_class"]["b"]["precision"] == 1.0
    assert m["confusion_matrix"] == [[1, 0], [0, 2]]


def test_empty_split() -> None:
    m = compute_metrics([], [], ("a", "b"))
    assert m["n"] == 0 and m["accuracy"] == 0.0 and m["confusion_matrix"] == [[0, 0], [0, 0]]
    assert m["macro_f1"] == m["weighted_f1"] == 0.0 and m["macro_classes"] == 0


def test_macro_covers_only_classes_in_the_split() -> None:
    """16 labels, a test split holding 10 classes: macro-F1 is scikit-learn's default."""
    rng = np.random.default_rng(1)
    held = np.array([0, 1, 2, 4, 5, 7, 9, 11, 12, 15])
    true = rng.choice(held, 300)
    predicted = np.where(rng.random(300) < 0.7, true, rng.choice(held, 300))
    assert set(np.union1d(true, predicted)) == set(held)
    m = compute_metrics(true, predicted, LABELS)
    assert m["macro_classes"] == 10
    assert m["macro_f1"] == f1_score(true, predicted, average="macro")
    assert m["weighted_f1"] == f1_score(true, predicted, average="weighted")
    p, r, _, _ = precision_recall_fscore_support(true, predicted, average="macro")
    assert (m["macro_precision"], m["macro_recall"]) == (p, r)
    # Counting the 6 absent classes as F1 0 was the fault: it scales the average by 10/16.
    assert m["macro_f1"] == pytest.approx(
        f1_score(true, predicted, labels=range(16), average="macro", zero_division=0) * 16 / 10)
    # Per-class rows still list every class; absent ones have support 0.
    assert list(m["per_class"]) == list(LABELS)
    absent = [LABELS[i] for i in range(16) if i not in held]
    assert all(m["per_class"][name]["support"] == 0 for name in absent)


def test_invalid_is_no_class_but_is_wrong() -> None:
    labels = ("a", "b", "c")
    true, predicted = [0, 0, 1, 1], [0, -1, 1, 1]
    m = compute_metrics(true, predicted, labels)
    # -1 is not a class: the average covers a and b (c is absent from both sides).
    assert m["macro_classes"] == 2
    assert m["accuracy"] == 0.75 and m["invalid"] == 1
    assert m["per_class"]["a"]["recall"] == 0.5
    # a: P 1, R 1/2, F1 2/3; b: F1 1. scikit-learn's own default would add -1 as a third class.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["macro_f1"] == f1_score(true, predicted, labels=[0, 1], average="macro")
    assert f1_score(true, predicted, average="macro", zero_division=0) == pytest.approx(
        (2 / 3 + 1) / 3)


def test_predicted_class_absent_from_truth_counts_as_zero() -> None:
    labels = ("a", "b", "c", "d")
    true, predicted = [0, 0, 1, 1], [0, 2, 1, 1]
    m = compute_metrics(true, predicted, labels)
    # c is predicted though no document is a c: it is in the average with F1 0; d is not.
    assert m["macro_classes"] == 3
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["macro_f1"] == f1_score(true, predicted, average="macro", zero_division=0)

"""Classification metrics with scikit-learn, keyed by class name.

An invalid generation (predicted == -1) is a wrong answer: it counts against accuracy and against
the recall of its true class, and it is in no class's predictions. Passing an explicit ``labels``
list to scikit-learn keeps -1 out of the class lists (no 17th "class") while its rows still count.

Macro and weighted averages cover the classes present in the truth or the predictions, as
scikit-learn does by default, less -1: a split that holds 10 of 16 classes is not marked down for
the 6 it never asks about, while a class predicted but absent from the truth still counts (F1 0).
``macro_classes`` says how many classes the average covered. Per-class rows keep every class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def compute_metrics(
    true: np.ndarray | Sequence[int], predicted: np.ndarray | Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro/weighted P/R/F1, per-class P/R/F1/support, confusion matrix (rows true)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    classes = list(range(len(labels)))
    n = len(true)
    if n == 0:  # scikit-learn refuses empty input; an empty split scores zero everywhere
        return _empty(labels)
    result: dict[str, Any] = {"n": n, "invalid": int((predicted == -1).sum()),
                              "accuracy": float(accuracy_score(true, predicted))}
    # Averaging over all len(labels) classes would score each absent class as F1 0 and drag the
    # macro average down on splits that lack some classes; see the module docstring.
    # Ids of the label set only: drops -1 (invalid), and nothing out of range becomes a class.
    present = [int(c) for c in np.union1d(true, predicted) if 0 <= c < len(labels)]
    result["macro_classes"] = len(present)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            true, predicted, labels=present, average=average, zero_division=0
        )
        result[f"{average}_precision"] = float(p)
        result[f"{average}_recall"] = float(r)
        result[f"{average}_f1"] = float(f)
    p, r, f, support = precision_recall_fscore_support(
        true, predicted, labels=classes, average=None, zero_division=0
    )
    result["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
               "support": int(support[i])}
        for i, name in enumerate(labels)
    }
    # Rows of invalid predictions have no column to land in; "invalid" above counts them.
    result["confusion_matrix"] = confusion_matrix(true, predicted, labels=classes).tolist()
    return result


def _empty(labels: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"n": 0, "invalid": 0, "accuracy": 0.0, "macro_classes": 0}
    for average in ("macro", "weighted"):
        for name in ("precision", "recall", "f1"):
            result[f"{average}_{name}"] = 0.0
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    result["per_class"] = {name: dict(zero) for name in labels}
    result["confusion_matrix"] = [[0] * len(labels) for _ in labels]
    return result


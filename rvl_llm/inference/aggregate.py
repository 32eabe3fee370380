"""One prediction per document from the rows of its windows (``--truncation chunks``).

Each window's class scores are first made log-probabilities over the classes (log-softmax: a
window's raw completion log-likelihoods also hold mass outside the class names, which differs
from window to window), then combined per ``doc_id``: ``mean`` (a log-linear pool of the windows)
or ``max`` (the class any one window is surest of). The result is normalised again, so its
probabilities sum to one. Documents keep the order of their first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rvl_llm.errors import RvlError
from rvl_llm.inference.scoring import Predictions, class_probabilities
from rvl_llm.pipeline.truncation import AGGREGATES


def log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def group_rows(doc_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct ids in order of first appearance, and each row's document index."""
    index: dict[str, int] = {}
    owner = np.array([index.setdefault(d, len(index)) for d in doc_ids], dtype=np.int64)
    return list(index), owner


def documents_of(doc_ids: Sequence[str], row_sets: list[list[int]]) -> list[list[int]]:
    """Sets of row indexes -> sets of the indexes ``aggregate_predictions`` gives their
    documents (distinct, in order); unchanged when every ``doc_id`` is one row's."""
    docs, owner = group_rows(doc_ids)
    if len(docs) == len(doc_ids):
        return row_sets
    return [list(dict.fromkeys(int(owner[i]) for i in rows)) for rows in row_sets]


def aggregate_scores(scores: np.ndarray, owner: np.ndarray, n_docs: int, how: str) -> np.ndarray:
    """[n_docs, C] class log-probabilities from [rows, C] scores, row i belonging to document
    ``owner[i]``."""
    if how not in AGGREGATES:
        raise RvlError(f"--chunk-aggregate {how}: choose from {', '.join(AGGREGATES)}")
    class_probabilities(scores)  # refuses NaN or inf scores, naming them
    logp = log_softmax(np.asarray(scores, dtype=np.float64))
    if how == "max":
        out = np.full((n_docs, logp.shape[1]), -np.inf)
        np.maximum.at(out, owner, logp)
    else:
        out = np.zeros((n_docs, logp.shape[1]))
        np.add.at(out, owner, logp)
        out /= np.bincount(owner, minlength=n_docs)[:, None]
    return log_softmax(out)


def aggregate_predictions(predictions: Predictions, how: str = "mean") -> Predictions:
    """``predictions`` of window rows -> one per document (unchanged when every ``doc_id`` is
    one row's). Rows of one document must agree on its class."""
    docs, owner = group_rows(predictions.doc_ids)
    if len(docs) == len(predictions.doc_ids):
        return predictions
    if predictions.scores is None:
        raise RvlError("--truncation chunks: needs class scores (decode score, or a classifier); "
                       "generated answers cannot be aggregated")
    true = predictions.true[np.unique(owner, return_index=True)[1]]  # each document's first row
    if (predictions.true != true[owner]).any():
        raise RvlError("rows of one doc_id carry different labels: the shards are not chunks "
                       "of one document each")
    scores = aggregate_scores(predictions.scores, owner, len(docs), how)
    return replace(predictions, doc_ids=docs, true=true, predicted=scores.argmax(axis=1),
                   probs=np.exp(scores), scores=scores, generated=None)

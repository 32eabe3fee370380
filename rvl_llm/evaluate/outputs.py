"""Eval outputs in ``OUT_DIR/<max-len>-max-len/<name>/``, each file written atomically.

``metrics.json`` (metrics + what ran), ``predictions.tsv`` (one row a document, class names),
``confusion_matrix.csv`` (counts) and ``confusion_matrix.png`` (row-normalised), and a short
printed summary. A reader (``rvl-llm report``, a plot script) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvl_llm.atomic import write_atomic, write_text_atomic
from rvl_llm.inference.scoring import INVALID, Predictions

METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.tsv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
INVALID_NAME = "(invalid)"  # predicted column of a generation that is not a class name
TOP_K = 3


def run_folder(out_dir: Path, max_len: int, name: str) -> Path:
    return Path(out_dir) / f"{max_len}-max-len" / name


def write_metrics(folder: Path, record: dict[str, Any]) -> Path:
    path = folder / METRICS_NAME
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def predictions_tsv(preds: Predictions, labels: Sequence[str]) -> str:
    """``doc_id true predicted score`` (+ top-3 classes and probabilities, or the generation)."""
    buffer = io.StringIO()
    # csv quotes a field only if it holds a tab, quote or newline (a doc id or a generation).
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    header = ["doc_id", "true", "predicted", "score"]
    ranked = None
    if preds.probs is not None:
        header += [f"top{k}{suffix}" for k in range(1, TOP_K + 1) for suffix in ("", "_prob")]
        ranked = np.argsort(-preds.probs, axis=1, kind="stable")[:, :TOP_K]
    else:
        header.append("generated")
    writer.writerow(header)
    for i, doc_id in enumerate(preds.doc_ids):
        guess = int(preds.predicted[i])
        named = INVALID_NAME if guess == INVALID else labels[guess]
        row = [doc_id, labels[int(preds.true[i])], named]
        # score: natural-log probability of the predicted class (none for a generation)
        row.append(f"{preds.scores[i, guess]:.6g}" if preds.scores is not None else "")
        if ranked is not None:
            for c in ranked[i]:
                row += [labels[int(c)], f"{preds.probs[i, c]:.4f}"]
        else:
            row.append(preds.generated[i] if preds.generated is not None else "")
        writer.writerow(row)
    return buffer.getvalue()


def write_predictions(folder: Path, preds: Predictions, labels: Sequence[str]) -> Path:
    path = folder / PREDICTIONS_NAME
    write_text_atomic(path, predictions_tsv(preds, labels))
    return path


def write_confusion_csv(
    folder: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str]
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *labels])
    for name, row in zip(labels, matrix, strict=True):
        writer.writerow([name, *(int(v) for v in row)])
    path = folder / CONFUSION_CSV
    write_text_atomic(path, buffer.getvalue())
    return path


def write_confusion_png(
    folder: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str
) -> Path:
    """Row-normalised (each true class sums to 1), annotated, readable at 16 classes."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 2.5 + 0.55 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    font = 8 if len(labels) <= 20 else 6
    for (r, c), value in np.ndenumerate(share):
        if counts[r, c]:  # empty cells stay blank so the errors stand out
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=font,
                    color="white" if value > 0.5 else "black")
    fig.tight_layout()
    path = folder / CONFUSION_PNG
    try:
        write_atomic(path, lambda temp: fig.savefig(temp, format="png", dpi=120))
    finally:
        plt.close(fig)
    return path


def summary_table(record: dict[str, Any], worst: int = 3) -> str:
    """A few lines for the terminal: what ran, accuracy, macro-F1, the weakest classes."""
    lines = [
        f"eval {record['name']}  split {record['split']}  decode {record['decode']}  "
        f"max-len {record['max_len']}  docs {record['n']}  invalid {record['invalid']}  "
        f"truncated {record['truncated_share']:.1%}"
        # records written before the count existed lack it
        + (f"  skipped {record['skipped']}" if record.get("skipped") else ""),
        f"  {'accuracy':<24}{record['accuracy']:.4f}",
        f"  {'macro-F1':<24}{record['macro_f1']:.4f}",
    ]
    if record.get("zero_shot"):  # records written before zero-shot evals lack the mark
        lines[0] += f"  zero-shot {record['model']} (untrained)"
    if "macro_classes" in record:  # records written before the count existed lack it
        lines[-1] += f"  (over {record['macro_classes']} of {len(record['per_class'])} classes)"
    # A class with no documents has F1 0 by convention, not because the model failed on it;
    # listing it as "worst" would hide the classes that really are weak.
    per_class = sorted(((name, row) for name, row in record["per_class"].items()
                        if row["support"] > 0), key=lambda item: item[1]["f1"])
    if per_class:
        lines.append(f"  worst classes by F1{'':<5}{'F1':>6} {'prec':>6} {'recall':>6} {'n':>6}")
    for name, row in per_class[:worst]:
        lines.append(f"    {name:<22}{row['f1']:>6.3f} {row['precision']:>6.3f} "
                     f"{row['recall']:>6.3f} {row['support']:>6}")
    return "\n".join(lines)


def write_all(
    folder: Path, record: dict[str, Any], preds: Predictions, labels: Sequence[str]
) -> list[Path]:
    """Every output of one eval; metrics.json last, so its presence means the rest is there."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix = record["confusion_matrix"]
    title = (f"{record['name']} ({record['split']}, max-len {record['max_len']}): "
             f"accuracy {record['accuracy']:.3f}")
    return [
        write_predictions(folder, preds, labels),
        write_confusion_csv(folder, matrix, labels),
        write_confusion_png(folder, matrix, labels, title),
        write_metrics(folder, record),
    ]

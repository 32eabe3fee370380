"""Eval outputs in ``OUT_DIR/<max-len>-max-len/<name>/``, each file written atomically.

``metrics.json`` (metrics + what ran), ``predictions.tsv`` (one row a document, class names),
``confusion_matrix.csv`` (counts), ``confusion_matrix.png`` (row-normalised),
``reliability_diagram.png`` (accuracy against confidence, when there are probabilities), and a
short printed summary. A reader (``rvl-llm report``, a plot script) never sees half a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvl_llm.atomic import write_atomic, write_json_atomic, write_text_atomic
from rvl_llm.inference.calibration import ECE_BINS, reliability_bins, softmax
from rvl_llm.inference.scoring import INVALID, Predictions

METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.tsv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability_diagram.png"
INVALID_NAME = "(invalid)"  # predicted column of a generation that is not a class name
TOP_K = 3


def run_folder(out_dir: Path, max_len: int, name: str) -> Path:
    return Path(out_dir) / f"{max_len}-max-len" / name


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


def confusion_csv(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *labels])
    for name, row in zip(labels, matrix, strict=True):
        writer.writerow([name, *(int(v) for v in row)])
    return buffer.getvalue()


def new_plot(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, drawn off-screen."""
    import matplotlib  # heavy: imported by the first plot

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save_png(fig: Any, path: Path) -> Path:
    """``fig`` laid out and written atomically to ``path``; closed either way."""
    import matplotlib.pyplot as plt  # loaded by new_plot already

    try:
        fig.tight_layout()
        write_atomic(path, lambda temp: fig.savefig(temp, format="png", dpi=120))
    finally:
        plt.close(fig)
    return path


def write_confusion_png(
    folder: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str
) -> Path:
    """Row-normalised (each true class sums to 1), annotated, readable at 16 classes."""
    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 2.5 + 0.55 * len(labels)
    fig, ax = new_plot(size + 1.5, size)
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
    return save_png(fig, folder / CONFUSION_PNG)


def write_reliability_png(folder: Path, preds: Predictions, record: dict[str, Any]) -> Path:
    """Accuracy against mean confidence per bin (ECE_BINS equal-width bins of the top
    probability), bar widths the bins, the diagonal a perfectly calibrated model; with a
    temperature, the uncalibrated probabilities too."""
    assert preds.probs is not None and preds.scores is not None
    temperature = record["temperature"]
    series = [(f"T = {temperature:.3g}, ECE {record['ece']:.3f}", preds.probs, "tab:blue")]
    if temperature != 1.0:
        series.append((f"uncalibrated, ECE {record['ece_uncalibrated']:.3f}",
                       softmax(preds.scores), "tab:orange"))
    fig, ax = new_plot(5.5, 5)
    width = 1.0 / ECE_BINS
    for i, (label, probs, color) in enumerate(series):
        bins = reliability_bins(probs, preds.true)
        shown = [b for b in bins if b["n"]]
        ax.bar([b["lo"] + width * (0.25 + 0.5 * i) for b in shown],
               [b["accuracy"] for b in shown], width=width / 2, align="center",
               color=color, alpha=0.8, label=label)
        ax.plot([b["confidence"] for b in shown], [b["accuracy"] for b in shown], "o",
                color=color, markersize=3)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"confidence (top probability, {ECE_BINS} bins)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{record['name']} ({record['split']}, n {record['n']})", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return save_png(fig, folder / RELIABILITY_PNG)


def calibration_lines(record: dict[str, Any]) -> list[str]:
    """ECE and the coverage/accuracy table (records of generations have neither)."""
    if "ece" not in record:
        return []
    temperature = record["temperature"]
    title = f"ECE ({record['ece_bins']} bins)"
    ece = f"  {title:<24}{record['ece']:.4f}"
    if temperature != 1.0:
        ece += f"  (temperature {temperature:.4g}; {record['ece_uncalibrated']:.4f} without)"
    lines = [ece, f"  {'min probability':<24}{'answered':>9} {'accuracy':>9}"]
    for row in record["coverage"]:
        accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        lines.append(f"    {row['min_probability']:<22.2f}{row['coverage']:>9.1%} "
                     f"{accuracy:>9}")
    return lines


def test_set_lines(record: dict[str, Any]) -> list[str]:
    """Per test set accuracy and macro-F1, then mean ± standard deviation."""
    sets = record.get("test_sets")
    if not sets:
        return []
    lines = [f"  {'test set':<24}{'n':>6} {'accuracy':>9} {'macro-F1':>9}"]
    for entry in sets["sets"]:
        lines.append(f"    {entry['name']:<22}{entry['n']:>6} {entry['accuracy']:>9.4f} "
                     f"{entry['macro_f1']:>9.4f}")
    lines.append(f"    {'mean ± std':<22}{'':>6} "
                 f"{plus_minus(sets['accuracy_mean'], sets['accuracy_std']):>9} "
                 f"{plus_minus(sets['macro_f1_mean'], sets['macro_f1_std']):>9}")
    return lines


def plus_minus(mean: float, std: float | None) -> str:
    """``0.7250 ± 0.0123`` (the mean alone for one set: no spread to show)."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


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
    return "\n".join(lines + calibration_lines(record) + test_set_lines(record))


def write_all(
    folder: Path, record: dict[str, Any], preds: Predictions, labels: Sequence[str]
) -> list[Path]:
    """Every output of one eval; metrics.json last, so its presence means the rest is there."""
    folder.mkdir(parents=True, exist_ok=True)
    matrix = record["confusion_matrix"]
    title = (f"{record['name']} ({record['split']}, max-len {record['max_len']}): "
             f"accuracy {record['accuracy']:.3f}")
    write_text_atomic(folder / PREDICTIONS_NAME, predictions_tsv(preds, labels))
    write_text_atomic(folder / CONFUSION_CSV, confusion_csv(matrix, labels))
    files = [folder / PREDICTIONS_NAME, folder / CONFUSION_CSV,
             write_confusion_png(folder, matrix, labels, title)]
    if "ece" in record:
        files.append(write_reliability_png(folder, preds, record))
    write_json_atomic(folder / METRICS_NAME, record)
    return [*files, folder / METRICS_NAME]

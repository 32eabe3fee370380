"""Eval outputs: predictions.tsv, confusion matrix csv/png, metrics.json, summary, report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rvl_llm.errors import RvlError
from rvl_llm.evaluate.outputs import (
    INVALID_NAME,
    run_folder,
    summary_table,
    write_all,
)
from rvl_llm.evaluate.report import run_report
from rvl_llm.inference.metrics import compute_metrics
from rvl_llm.inference.scoring import Predictions
from rvl_llm.labels import RVL_CDIP_CLASSES

LABELS = RVL_CDIP_CLASSES
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scored(n: int = 40, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, len(LABELS))).astype(np.float32) - 5.0
    probs = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    return Predictions(
        doc_ids=[f"test_{i:04d}" for i in range(n)],
        true=rng.integers(0, len(LABELS), n),
        predicted=scores.argmax(1),
        probs=probs,
        generated=None,
        invalid=0,
        scores=scores,
    )


def record_for(preds: Predictions, name: str = "run1", max_len: int = 512) -> dict:
    return {
        "name": name, "split": "test", "decode": "score", "max_len": max_len,
        "truncated_share": 0.25, **compute_metrics(preds.true, preds.predicted, LABELS),
    }


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_score_outputs(tmp_path: Path) -> None:
    preds = scored()
    folder = run_folder(tmp_path, 512, "run1")
    assert folder == tmp_path / "512-max-len" / "run1"
    record = record_for(preds)
    files = write_all(folder, record, preds, LABELS)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files) == [
        "confusion_matrix.csv", "confusion_matrix.png", "metrics.json", "predictions.tsv"]
    assert json.loads((folder / "metrics.json").read_text()) == record

    rows = read_tsv(folder / "predictions.tsv")
    assert list(rows[0]) == ["doc_id", "true", "predicted", "score", "top1", "top1_prob",
                             "top2", "top2_prob", "top3", "top3_prob"]
    assert [r["doc_id"] for r in rows] == preds.doc_ids
    for i, row in enumerate(rows):
        assert row["true"] == LABELS[preds.true[i]]
        assert row["predicted"] == row["top1"] == LABELS[preds.predicted[i]]
        assert float(row["score"]) == pytest.approx(preds.scores[i, preds.predicted[i]], 1e-5)
        order = np.argsort(-preds.probs[i])
        assert [row["top2"], row["top3"]] == [LABELS[order[1]], LABELS[order[2]]]
        assert float(row["top1_prob"]) >= float(row["top2_prob"]) >= float(row["top3_prob"])

    with (folder / "confusion_matrix.csv").open() as f:
        table = list(csv.reader(f))
    assert table[0][1:] == list(LABELS)
    assert [r[0] for r in table[1:]] == list(LABELS)
    counts = np.array([[int(v) for v in r[1:]] for r in table[1:]])
    np.testing.assert_array_equal(counts, record["confusion_matrix"])
    assert counts.sum() == len(preds.doc_ids)
    assert (folder / "confusion_matrix.png").read_bytes()[:8] == PNG_MAGIC


def test_generate_outputs_name_invalid_generations(tmp_path: Path) -> None:
    preds = Predictions(["a\tb", "c"], np.array([0, 1]), np.array([0, -1]), None,
                        ["letter", "a lettr\nof sorts"], 1)
    record = {**record_for(preds), "decode": "generate"}
    folder = tmp_path / "out"
    write_all(folder, record, preds, LABELS)
    rows = read_tsv(folder / "predictions.tsv")
    assert list(rows[0]) == ["doc_id", "true", "predicted", "score", "generated"]
    # Tabs and newlines in ids and generations are quoted, not allowed to break rows.
    assert [(r["doc_id"], r["predicted"], r["generated"]) for r in rows] == [
        ("a\tb", "letter", "letter"), ("c", INVALID_NAME, "a lettr\nof sorts")]
    assert record["invalid"] == 1 and record["accuracy"] == 0.5


def test_no_temporary_files_left(tmp_path: Path) -> None:
    write_all(tmp_path, record_for(scored()), scored(), LABELS)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_summary_names_the_worst_classes() -> None:
    preds = scored(200)
    record = record_for(preds)
    text = summary_table(record)
    worst = sorted(record["per_class"], key=lambda k: record["per_class"][k]["f1"])[:3]
    assert f"{record['accuracy']:.4f}" in text and f"{record['macro_f1']:.4f}" in text
    assert all(name in text for name in worst)
    best = max(record["per_class"], key=lambda k: record["per_class"][k]["f1"])
    assert best not in text.split("worst", 1)[1]
    assert f"over {record['macro_classes']} of {len(LABELS)} classes" in text


def test_summary_leaves_out_classes_with_no_documents() -> None:
    preds = scored(200)
    keep = preds.true != 0  # no document of class 0, and none predicted as it either
    true, predicted = preds.true[keep], np.where(preds.predicted[keep] == 0, 1,
                                                  preds.predicted[keep])
    record = {**record_for(preds), **compute_metrics(true, predicted, LABELS)}
    assert record["per_class"][LABELS[0]] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                              "support": 0}
    text = summary_table(record, worst=len(LABELS))
    worst = text.split("worst", 1)[1]
    # F1 0 with no documents is not a weak class; every class with documents is still listed.
    assert LABELS[0] not in worst
    assert all(name in worst for name in LABELS[1:])
    assert f"over 15 of {len(LABELS)} classes" in text


def test_report_gathers_every_eval(tmp_path: Path) -> None:
    for name, max_len, seed in (("b-run", 512, 1), ("a-run", 1024, 2), ("a-run", 256, 3)):
        preds = scored(30, seed)
        write_all(run_folder(tmp_path, max_len, name), record_for(preds, name, max_len), preds,
                  LABELS)
    table = run_report(tmp_path)
    lines = table.strip().splitlines()
    assert lines[0] == "| run | max_len | accuracy | macro_f1 | n | kind | ece |"
    assert [line.split("|")[1:3] for line in lines[2:]] == [
        [" a-run ", " 256 "], [" a-run ", " 1024 "], [" b-run ", " 512 "]]
    assert (tmp_path / "report.md").read_text() == table
    with (tmp_path / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], int(r["max_len"]), int(r["n"])) for r in rows] == [
        ("a-run", 256, 30), ("a-run", 1024, 30), ("b-run", 512, 30)]
    metrics = json.loads((tmp_path / "512-max-len" / "b-run" / "metrics.json").read_text())
    assert float(rows[2]["accuracy"]) == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert (tmp_path / "accuracy_vs_max_len.png").read_bytes()[:8] == PNG_MAGIC


def test_report_of_an_empty_folder_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(RvlError, match="rvl-llm eval"):
        run_report(tmp_path)

"""One document reader (issue 15): predict reads its inputs through prepare's source layer, so
every document of a folder, a JSON-lines file and a CSV file gets the same id and the same text
from both, with and without an id."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.sources import open_source
from rvl_llm.predict.inputs import InputDocument, iter_inputs

TEXTS = ["Dear Sir, thank you.", "INVOICE 4711 total", "", "résumé of Ann\nline 2", "memo"]


def prepared(data: Path) -> dict[str, str]:
    """id -> text of every document prepare reads from ``data``."""
    cfg = PrepareConfig(data_dir=data, model="tiny-llama3", labels=RVL_CDIP_CLASSES)
    source = open_source(cfg)
    found: dict[str, str] = {}
    for split, listing in source.list_splits(cfg.splits).items():
        assert not listing.bad
        for docs, bad in source.read(split, listing.entries, 2):
            assert not bad
            found.update((d.doc_id, d.text) for d in docs)
    return found


def predicted(data: Path) -> dict[str, str]:
    items = list(iter_inputs([str(data)]))
    assert all(isinstance(i, InputDocument) for i in items), items
    return {i.id: i.text for i in items if isinstance(i, InputDocument)}


def rows() -> list[dict[str, object]]:
    """Train, validation and test rows; the second and fourth without an id."""
    splits = ["train", "train", "validation", "test", "test"]
    return [{"split": s, "label": i, "ocr": t} | ({} if i in (1, 3) else {"id": f"doc-{i}"})
            for i, (s, t) in enumerate(zip(splits, TEXTS, strict=True))]


def test_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for i, row in enumerate(rows()):
        record = {k: v for k, v in row.items() if k in ("id", "ocr")}
        if i == 3:
            record["path"] = "scans/x.tif"  # no "id": the "path", in both
        name = f"{row['split']}_{i:04d}_{row['label']}_aws.json"
        (folder / name).write_text(json.dumps(record), encoding="utf-8")
    (folder / "train_0005_5_aws.json").write_text(json.dumps({"text": "in text"}))
    ids = prepared(folder)
    assert ids == predicted(folder)
    assert {"doc-0", "train_0001_1_aws.json", "scans/x.tif", "train_0005_5_aws.json"} <= set(ids)


def test_a_json_lines_file(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    ids = prepared(path)
    assert ids == predicted(path)
    assert set(ids) == {"doc-0", "1", "doc-2", "3", "doc-4"}  # no id: the row number


@pytest.mark.parametrize("with_ids", [True, False], ids=["id column", "row numbers"])
def test_a_csv_file(tmp_path: Path, with_ids: bool) -> None:
    path = tmp_path / "docs.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split", "label", "text"] if with_ids else
                        ["split", "label", "text"])
        for i, row in enumerate(rows()):
            writer.writerow(([f"c{i}"] if with_ids else []) + [row["split"], row["label"],
                                                               row["ocr"]])
    ids = prepared(path)
    assert ids == predicted(path)
    assert set(ids) == ({f"c{i}" for i in range(5)} if with_ids else {str(i) for i in range(5)})

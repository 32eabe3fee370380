"""prepare reads the data where it is: the sample corpus as a folder of OCR JSON files, JSON
lines, CSV, Parquet and a datasets save_to_disk folder gives the same rows per document; split
columns and --data-files; JSON arrays; ClassLabel; column options; row numbers as ids; the key."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline import cache
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import parse_label
from rvl_llm.pipeline.manifest import SPLITS, Manifest
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.sources import resolved_data

MAX_LEN = 48
FORMS = ("folder", "jsonl", "csv", "parquet", "saved")


def sample_rows(folder: Path) -> list[dict[str, Any]]:
    """The folder's documents as table rows: id, ocr, label (index), split."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        split = path.name.split("_")[0]
        record = json.loads(path.read_text(encoding="utf-8"))
        rows.append({"id": record["id"], "ocr": record["ocr"], "split": split,
                     "label": parse_label(path.name, f"{split}_", "_aws")})
    return rows


@pytest.fixture(scope="session")
def forms(sample_data: Path, sample_root: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Path]:
    """The sample corpus in every form: labels as indexes (JSON lines, Parquet, ClassLabel)
    and as names (CSV)."""
    import datasets
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("forms")
    rows = sample_rows(sample_data)
    jsonl, parquet = sample_root / "data.jsonl", sample_root / "data.parquet"
    if not jsonl.is_file():
        jsonl = out / "data.jsonl"
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if not parquet.is_file():
        parquet = out / "data.parquet"
        pq.write_table(pa.Table.from_pylist(rows), parquet)
    named = [r | {"label": RVL_CDIP_CLASSES[r["label"]]} for r in rows]
    pcsv.write_csv(pa.Table.from_pylist(named), out / "data.csv")
    features = datasets.Features({"id": datasets.Value("string"), "ocr": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(RVL_CDIP_CLASSES))})
    splits = {s: datasets.Dataset.from_list(
        [{k: r[k] for k in ("id", "ocr", "label")} for r in rows if r["split"] == s],
        features=features) for s in SPLITS}
    datasets.DatasetDict(splits).save_to_disk(str(out / "saved"))
    return {"folder": sample_data, "jsonl": jsonl, "csv": out / "data.csv", "parquet": parquet,
            "saved": out / "saved"}


def rows_by_doc(m: Manifest) -> dict[tuple[str, str], tuple]:
    rows = {}
    for split in m.splits:
        d = m.dataset(split).to_dict()
        for i, doc in enumerate(d["doc_id"]):
            rows[(split, doc)] = (d["input_ids"][i], d.get("labels", [None] * (i + 1))[i],
                                  d["label"][i], d["truncated"][i])
    return rows


def prepare(data: Path, model: Path, cache_dir: Path, **kw: Any) -> Manifest:
    settings: dict[str, Any] = {"max_len": MAX_LEN, "progress": False}
    cfg = PrepareConfig(data_dir=data, model=str(model), cache_dir=cache_dir, **(settings | kw))
    return run_prepare(cfg).manifest


@pytest.mark.parametrize("generative", [True, False], ids=["generative", "classifier"])
@pytest.mark.parametrize("tokenizer", ["tiny-mistral", "tiny-llama3"])
def test_every_form_gives_the_same_rows(forms: dict[str, Path], models: Path, tmp_path: Path,
                                        fast_tokenizer_loads: None, tokenizer: str,
                                        generative: bool) -> None:
    results = {form: prepare(forms[form], models / tokenizer, tmp_path / "cache",
                             generative=generative) for form in FORMS}
    reference = rows_by_doc(results["folder"])
    assert len(reference) == 1024
    for form, m in results.items():
        assert rows_by_doc(m) == reference, form
        assert m.labels == RVL_CDIP_CLASSES
    assert len({m.key for m in results.values()}) == len(FORMS)
    kinds = {form: m.settings["data"].get("kind", "folder") for form, m in results.items()}
    assert kinds == {"folder": "folder", "jsonl": "jsonl", "csv": "csv", "parquet": "parquet",
                     "saved": "datasets"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "a", "ocr": "Dear Sir, thank you.", "text": "other", "cls": "letter", "split": "train"},
    {"id": "b", "ocr": "INVOICE 4711", "text": "other b", "cls": 11, "split": "train"},
    {"id": "c", "ocr": "From: a@b", "text": "other c", "cls": "email", "split": "dev"},
    {"id": "d", "ocr": "RESUME", "text": "other d", "cls": 14, "split": "test"},
]


@pytest.fixture
def mistral(models: Path, fast_tokenizer_loads: None) -> Path:
    return models / "tiny-mistral"


def docs(m: Manifest) -> dict[str, list[tuple[str, int]]]:
    return {s: list(zip(m.dataset(s)["doc_id"], m.dataset(s)["label"], strict=True))
            for s in m.splits}


def test_a_split_column_and_data_files_agree(tmp_path: Path, mistral: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "text"} | {"label": r["cls"]} for r in ROWS]
    both = write_jsonl(tmp_path / "one" / "all.jsonl", rows)
    by_column = prepare(both, mistral, tmp_path / "cache", generative=True)
    parts = tmp_path / "parts"
    for name, split in (("train", "train"), ("val", "dev"), ("test", "test")):
        write_jsonl(parts / f"{name}.jsonl", [r for r in rows if r["split"] == split])
    files = ("train=train.jsonl", "validation=val.jsonl", f"test={parts / 'test.jsonl'}")
    by_files = prepare(parts, mistral, tmp_path / "cache", generative=True, data_files=files)
    # A folder of per-split files: the file names say the split.
    by_names = prepare(parts, mistral, tmp_path / "cache", generative=True)
    expected = {"train": [("a", 0), ("b", 11)], "validation": [("c", 2)], "test": [("d", 14)]}
    assert docs(by_column) == docs(by_files) == docs(by_names) == expected
    assert rows_by_doc(by_column) == rows_by_doc(by_files) == rows_by_doc(by_names)
    assert [f[0] for f in by_files.settings["data"]["files"]] == ["train", "validation", "test"]


def test_a_json_array_and_column_options(tmp_path: Path, mistral: Path) -> None:
    array = tmp_path / "docs.json"
    array.write_text(json.dumps([{k: v for k, v in r.items() if k != "id"} | {"doc": r["id"]}
                                 for r in ROWS]), encoding="utf-8")
    m = prepare(array, mistral, tmp_path / "cache", text_column="text", label_column="cls",
                id_column="doc")
    assert docs(m)["train"] == [("a", 0), ("b", 11)]
    assert m.settings["data"]["columns"] == {"text": "text", "label": "cls", "id": "doc"}
    other = prepare(array, mistral, tmp_path / "cache", label_column="cls", id_column="doc")
    assert other.key != m.key  # the text column is part of the key
    assert m.dataset("train")["input_ids"] != other.dataset("train")["input_ids"]


def test_row_numbers_are_the_ids_without_an_id_column(tmp_path: Path, mistral: Path) -> None:
    rows = [{"text": r["ocr"], "label": r["cls"], "split": r["split"]} for r in ROWS]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n"  # a blank line
                    + "\n".join(json.dumps(r) for r in rows[2:]) + "\n", encoding="utf-8")
    m = prepare(path, mistral, tmp_path / "cache")
    assert docs(m) == {"train": [("0", 0), ("1", 11)], "validation": [("2", 2)],
                       "test": [("3", 14)]}


def test_class_label_gives_the_label_set(tmp_path: Path, mistral: Path) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = {s: datasets.Dataset.from_dict({"text": [f"{s} good", f"{s} bad"], "label": [1, 0]},
                                          features=features) for s in ("train", "validation")}
    datasets.DatasetDict(data).save_to_disk(str(tmp_path / "saved"))
    m = prepare(tmp_path / "saved", mistral, tmp_path / "cache", generative=True,
                splits=("train", "validation"))
    assert m.labels == ("neg", "pos")
    assert docs(m)["train"] == [("0", 1), ("1", 0)]
    # --labels in another order: rows map by name.
    labels = tmp_path / "labels.txt"
    labels.write_text("pos\nneg\n", encoding="utf-8")
    again = prepare(tmp_path / "saved", mistral, tmp_path / "cache", generative=True,
                    splits=("train",), labels_file=labels)
    assert again.labels == ("pos", "neg") and docs(again)["train"] == [("0", 0), ("1", 1)]


def test_the_key(tmp_path: Path, mistral: Path, small_corpus: Path) -> None:
    folder = prepare(small_corpus, mistral, tmp_path / "cache")
    explicit = prepare(small_corpus, mistral, tmp_path / "cache", data_format="folder")
    assert explicit.key == folder.key and "kind" not in folder.settings["data"]
    assert folder.settings["selection"] is None
    path = write_jsonl(tmp_path / "t.jsonl", [r | {"label": r["cls"]} for r in ROWS])
    first = prepare(path, mistral, tmp_path / "cache")
    assert prepare(path, mistral, tmp_path / "cache").key == first.key
    assert prepare(path, mistral, tmp_path / "cache", id_column="cls").key != first.key
    assert prepare(path, mistral, tmp_path / "cache", text_column="ocr").key != first.key
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    touched = prepare(path, mistral, tmp_path / "cache")
    assert touched.key != first.key
    write_jsonl(path, [r | {"label": r["cls"], "ocr": r["ocr"] + " more"} for r in ROWS])
    edited = prepare(path, mistral, tmp_path / "cache")
    assert edited.key not in (first.key, touched.key)
    assert edited.dataset("train")["input_ids"] != first.dataset("train")["input_ids"]
    assert cache.cache_key(first.settings) == first.key


def test_hf_names_are_not_paths() -> None:
    assert resolved_data(Path("hf:org/name:config")) == Path("hf:org/name:config")
    assert resolved_data(Path("data")) == Path("data").resolve()


def test_a_large_jsonl_prepares_in_flat_memory(tmp_path: Path, mistral: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """100k rows of 2 kB: peak RSS grows by under half the file's size. Tokenising is
    stubbed (a fixed few ids a document): this measures listing, reading and writing."""
    from rvl_llm.pipeline import truncation

    small = write_jsonl(tmp_path / "small.jsonl", [r | {"label": r["cls"]} for r in ROWS])
    prepare(small, mistral, tmp_path / "cache", max_len=16)  # imports, tokenizer: not counted
    monkeypatch.setattr(truncation, "encode_documents",
                        lambda encode, texts, budget: [[5, 6, 7] for _ in texts])
    text = " ".join(["word"] * 400)
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(100_000):
            split = "train" if i % 10 else "test"
            handle.write(f'{{"id": "d{i}", "ocr": "{i} {text}", "label": {i % 16}, '
                         f'"split": "{split}"}}\n')
    size = path.stat().st_size
    process = psutil.Process()
    base = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        m = prepare(path, mistral, tmp_path / "cache", max_len=16, splits=("train", "test"),
                    tokenize_batch=2048)
    finally:
        done.set()
        watcher.join()
    assert (m.splits["train"].rows, m.splits["test"].rows) == (90_000, 10_000)
    assert m.dataset("test")["doc_id"][:2] == ["d0", "d10"]
    assert peak - base < size / 2, (peak - base, size)

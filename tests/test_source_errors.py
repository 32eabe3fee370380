"""Bad table and dataset input to `rvl-llm prepare`: one line naming the file and row, exit 1,
nothing in the cache; --skip-bad-rows skips such rows with a count and lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.pipeline.manifest import Manifest

GOOD = [
    {"id": "a", "ocr": "Dear Sir, thank you.", "label": 0, "split": "train"},
    {"id": "b", "ocr": "INVOICE 4711", "label": "invoice", "split": "train"},
    {"id": "c", "ocr": "From: a@b", "label": 2, "split": "validation"},
    {"id": "d", "ocr": "RESUME", "label": 14, "split": "test"},
]


@pytest.fixture
def mistral(tokenizer_dirs: dict[str, Path], fast_tokenizer_loads: None) -> str:
    return str(tokenizer_dirs["tiny-mistral"])


def prepare(data: Path | str, model: str, cache_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["prepare", "--data", str(data), "--model", model,
                                     "--cache-dir", str(cache_dir), "--max-len", "64",
                                     "--no-progress", *args])


def assert_clean_failure(result: Result, cache_dir: Path, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    if cache_dir.exists():
        assert list(cache_dir.rglob("manifest.json")) == []


def jsonl(path: Path, rows: list, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra, encoding="utf-8")
    return path


# name -> (file name, content, extra args, needles in the error line)
CASES = {
    "missing label column": ("t.jsonl", [{k: v for k, v in r.items() if k != "label"}
                                         for r in GOOD], (),
                             ("t.jsonl", "no label column 'label'")),
    "text not a string": ("t.jsonl", [*GOOD, {"ocr": 5, "label": 1, "split": "train"}], (),
                          ("t.jsonl:5", "'ocr' value is a int, not a string", "--skip-bad-rows")),
    "text null": ("t.jsonl", [*GOOD, {"ocr": None, "label": 1, "split": "train"}], (),
                  ("t.jsonl:5", "missing (null)")),
    "unknown split": ("t.jsonl", [*GOOD, {"ocr": "x", "label": 1, "split": "holdout"}], (),
                      ("t.jsonl:5", "unknown split 'holdout'")),
    "label name": ("t.jsonl", [*GOOD, {"ocr": "x", "label": "bogus", "split": "train"}], (),
                   ("t.jsonl:5", "label 'bogus' is not in the label set")),
    "label index": ("t.jsonl", [*GOOD, {"ocr": "x", "label": 16, "split": "train"}], (),
                    ("t.jsonl:5", "label 16 is outside the label set")),
    "malformed line": ("t.jsonl", GOOD, ("EXTRA:{broken\n",),
                       ("t.jsonl:5", "t.jsonl:5: malformed JSON")),
    "no split column": ("t.jsonl", [{k: v for k, v in r.items() if k != "split"} for r in GOOD],
                        (), ("t.jsonl", "no 'split' column", "--data-files")),
    "unknown format": ("t.txt", GOOD, (), ("t.txt", "unknown format '.txt'")),
    "json not an array": ("t.json", None, (), ("t.json", "not a JSON array")),
    "ragged csv": ("t.csv", None, (), ("t.csv", "ragged row", "2 fields")),
    "unknown data-files split": ("t.jsonl", GOOD, ("--data-files", "holdout=t.jsonl"),
                                 ("--data-files holdout=t.jsonl", "unknown split 'holdout'")),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_table_input_fails_in_one_line(case: tuple, tmp_path: Path, mistral: str) -> None:
    name, rows, args, needles = case
    path = tmp_path / name
    extra = "".join(a.removeprefix("EXTRA:") for a in args if a.startswith("EXTRA:"))
    args = tuple(a for a in args if not a.startswith("EXTRA:"))
    if name.endswith(".csv"):
        path.write_text('id,ocr,label,split\na,"hello, world",0,train\nb,oops\n'
                        "c,memo,15,validation\nd,x,1,test\n", encoding="utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps({"rows": GOOD}), encoding="utf-8")
    else:
        jsonl(path, rows, extra)
    data = tmp_path if "--data-files" in args else path
    assert_clean_failure(prepare(data, mistral, tmp_path / "cache", *args), tmp_path / "cache",
                         *needles)


def test_a_dataset_without_train(tmp_path: Path, mistral: str) -> None:
    import datasets

    part = datasets.Dataset.from_dict({"ocr": ["x"], "label": [1]})
    datasets.DatasetDict({"validation": part, "test": part}).save_to_disk(str(tmp_path / "saved"))
    assert_clean_failure(prepare(tmp_path / "saved", mistral, tmp_path / "cache"),
                         tmp_path / "cache", "no train split (has: validation, test)")
    ok = prepare(tmp_path / "saved", mistral, tmp_path / "cache", "--splits", "validation,test")
    assert ok.exit_code == 0, ok.output


def test_hf_offline_with_nothing_cached_says_how(tmp_path: Path, mistral: str) -> None:
    result = prepare("hf:rvl-llm-tests/no-such-dataset", mistral, tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", "hf:rvl-llm-tests/no-such-dataset",
                         "run once with network", "huggingface-cli download", "save_to_disk")


@pytest.mark.parametrize("flag", ["--skip-bad-rows", "--skip-bad-files"])
def test_skip_bad_rows_counts_and_lists_them(tmp_path: Path, mistral: str, flag: str) -> None:
    bad = [{"ocr": 5, "label": 1, "split": "train"},
           {"ocr": "x", "label": "bogus", "split": "train"}]
    path = jsonl(tmp_path / "t.jsonl", GOOD + bad, "{broken\n")
    result = prepare(path, mistral, tmp_path / "cache", flag)
    assert result.exit_code == 0, result.output
    m = Manifest.load(Path(result.output.strip().splitlines()[-1]))
    skipped = {s.name: s.reason for s in m.splits["train"].skipped_files}
    # Each named by the line it starts on, counted from 1, once.
    assert set(skipped) == {"t.jsonl:5", "t.jsonl:6", "t.jsonl:7"}
    assert skipped["t.jsonl:7"].startswith("malformed JSON")
    assert m.dataset("train")["doc_id"] == ["a", "b"]
    assert "skipped   3" in result.output
    # The cached entry needs the flag again.
    again = prepare(path, mistral, tmp_path / "cache")
    assert again.exit_code == 1 and "--skip-bad-rows" in again.output


def test_a_bad_row_outside_the_requested_splits_is_not_read(tmp_path: Path,
                                                            mistral: str) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    jsonl(folder / "train.jsonl", [r for r in GOOD if r["split"] == "train"])
    jsonl(folder / "test.jsonl", [{"ocr": 5, "label": 1}])
    result = prepare(folder, mistral, tmp_path / "cache", "--splits", "train")
    assert result.exit_code == 0, result.output

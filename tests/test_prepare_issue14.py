"""Faults of issue 14 in prepare and its cache: a wrongly typed manifest, duplicate ids in a
split, a failed first build that left an empty key folder, row numbers that were not the line a
record starts on, and an empty or misread table. Each refusal is one line naming the culprit,
exit 1, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_pipeline_faults import (
    ENOSPC,
    GOOD,
    config,
    error_line,
    fail_writes,
    invoke,
    mistral,  # noqa: F401  (a fixture)
    prepare,
    read_only,
    tree,
)

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import Manifest
from rvl_llm.pipeline.prepare import run_prepare

ROWS = [
    {"id": "a", "ocr": "Dear Sir, thank you.", "label": 0, "split": "train"},
    {"id": "b", "ocr": "INVOICE 4711", "label": 11, "split": "train"},
    {"id": "c", "ocr": "From: a@b", "label": 2, "split": "validation"},
    {"id": "d", "ocr": "RESUME", "label": 14, "split": "test"},
]


def jsonl(path: Path, rows: list[dict], blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def no_entries(cache_dir: Path) -> bool:
    """Nothing in the cache but, at most, a key's lock file (taken before tables are read)."""
    return not cache_dir.exists() or all(p.name.endswith(".lock") for p in cache_dir.iterdir())


# ------------------------------------------------------------------------------------------------
# 9. A wrongly typed manifest is unreadable, in `cache verify` and in every load
# ------------------------------------------------------------------------------------------------

DAMAGE = {
    "split rows a string": (lambda m: m["splits"]["test"].update(rows="abc"),
                            "splits.test.rows: expected int, got str 'abc'"),
    "shard rows null": (lambda m: m["splits"]["test"]["shards"][0].update(rows=None),
                        "splits.test.shards[0].rows: expected int, got null"),
    "budget a float": (lambda m: m["template"].update(document_budget=3.5),
                       "template.document_budget: expected int, got float 3.5"),
    "prefix of strings": (lambda m: m["template"].update(prefix=["x"]),
                          "template.prefix[0]: expected int, got str 'x'"),
    "rows not the shards' sum": (lambda m: m["splits"]["test"].update(rows=99),
                                 "splits.test.rows 99 is not the sum of its shards' rows"),
}


def damaged_entry(write_corpus: Callable[..., Path], tmp_path: Path, model: str,
                  damage: Callable[[dict], object]) -> tuple[Path, Path, Path]:
    data, cache_dir = write_corpus(GOOD), tmp_path / "cache"
    root = run_prepare(config(data, model, cache_dir, splits=("test",))).root
    path = root / "manifest.json"
    crafted = json.loads(path.read_text())
    damage(crafted)
    path.write_text(json.dumps(crafted))
    return data, cache_dir, path


@pytest.mark.parametrize(("damage", "why"), DAMAGE.values(), ids=DAMAGE.keys())
def test_a_wrongly_typed_manifest_is_unreadable_everywhere(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,  # noqa: F811
    damage: Callable[[dict], object], why: str,
) -> None:
    _data, cache_dir, path = damaged_entry(write_corpus, tmp_path, mistral, damage)
    with pytest.raises(RvlError) as caught:
        Manifest.load(path.parent)
    assert caught.value.message == f"{path}: unreadable manifest ({why})"

    verify = invoke("cache", "verify", "--cache-dir", str(cache_dir))
    assert verify.exit_code == 1, verify.output
    assert verify.output.splitlines() == [
        f"{path}: unreadable manifest ({why})",
        f"Error: 1 unreadable cache entry in {cache_dir}; prepare rebuilds them"]


def test_prepare_names_a_wrongly_typed_manifest_and_rebuilds_the_entry(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,  # noqa: F811
) -> None:
    damage, why = DAMAGE["split rows a string"]
    data, cache_dir, path = damaged_entry(write_corpus, tmp_path, mistral, damage)
    result = prepare(data, mistral, cache_dir, "--splits", "test")
    assert result.exit_code == 0, result.output
    assert f"cache: {path}: unreadable manifest ({why}); rebuilding the entry" in result.output
    assert Manifest.load(path.parent).splits["test"].rows == 1


def test_a_wrongly_typed_manifest_in_a_read_only_cache_says_to_rebuild_it(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    damage, why = DAMAGE["shard rows null"]
    data, cache_dir, path = damaged_entry(write_corpus, tmp_path, mistral, damage)
    before = tree(cache_dir)
    read_only(monkeypatch, cache_dir)
    line = error_line(prepare(data, mistral, cache_dir, "--splits", "test"))
    assert line == (f"Error: {path}: unreadable manifest ({why}); rebuild the entry with a "
                    f"writable --cache-dir ({cache_dir}: Permission denied)")
    assert tree(cache_dir) == before


# ------------------------------------------------------------------------------------------------
# 10. Duplicate ids within a split are refused, naming both rows (or skipped with the flag)
# ------------------------------------------------------------------------------------------------


def test_a_duplicate_id_within_a_split_is_refused_naming_both_lines(
    tmp_path: Path, mistral: str  # noqa: F811
) -> None:
    twin = {"id": "a", "ocr": "Another letter", "label": 0, "split": "train"}
    path = jsonl(tmp_path / "t.jsonl", [*ROWS, twin])
    cache_dir = tmp_path / "cache"
    line = error_line(prepare(path, mistral, cache_dir))
    assert line == (f"Error: {path}:5: duplicate id 'a' in split train (first at {path}:1) "
                    "(--skip-bad-rows skips such rows)")
    assert not list(cache_dir.rglob("manifest.json"))

    skipped = prepare(path, mistral, cache_dir, "--skip-bad-rows")
    assert skipped.exit_code == 0, skipped.output
    assert "  skipped t.jsonl:5: duplicate id 'a' in split train" in skipped.output
    m = Manifest.load(Path(skipped.output.splitlines()[-1]))
    assert m.dataset("train")["doc_id"] == ["a", "b"]


def test_the_same_id_in_two_splits_is_not_a_duplicate(
    tmp_path: Path, mistral: str  # noqa: F811
) -> None:
    other = {"id": "a", "ocr": "A form", "label": 1, "split": "test"}
    path = jsonl(tmp_path / "t.jsonl", [*ROWS, other])
    result = prepare(path, mistral, tmp_path / "cache")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------------------
# 17. A first build that stops leaves no empty key folder
# ------------------------------------------------------------------------------------------------


def test_a_malformed_file_leaves_no_empty_key_folder(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str  # noqa: F811
) -> None:
    data = write_corpus(GOOD | {"train_0001_3_aws.json": b'{"ocr": '})
    cache_dir = tmp_path / "cache"
    assert "malformed JSON" in error_line(prepare(data, mistral, cache_dir))
    assert [p for p in cache_dir.iterdir() if p.is_dir()] == []


def test_a_full_disk_leaves_no_empty_key_folder(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache_dir = tmp_path / "cache"
    fail_writes(monkeypatch)
    line = error_line(prepare(write_corpus(GOOD), mistral, cache_dir))
    assert ENOSPC.strerror in line
    assert [p for p in cache_dir.iterdir() if p.is_dir()] == []


# ------------------------------------------------------------------------------------------------
# 19. A bad row is named by the line its record starts on, counted from 1, once
# ------------------------------------------------------------------------------------------------


def test_a_bad_jsonl_row_names_its_line_once(tmp_path: Path, mistral: str) -> None:  # noqa: F811
    out_of_range = {"id": "e", "ocr": "x", "label": 99, "split": "train"}
    path = jsonl(tmp_path / "oor.jsonl", [ROWS[0], ROWS[1], out_of_range, ROWS[2], ROWS[3]],
                 blank_after=1)  # a blank line 2: the bad record is on line 4
    line = error_line(prepare(path, mistral, tmp_path / "cache"))
    assert line.startswith(f"Error: {path}:4: label 99 is outside the label set"), line

    path.write_text(path.read_text().replace(json.dumps(out_of_range), "{broken"))
    line = error_line(prepare(path, mistral, tmp_path / "cache"))
    assert line.startswith(f"Error: {path}:4: malformed JSON ("), line
    assert "line 4" not in line


def test_a_csv_row_names_the_line_its_record_starts_on(
    tmp_path: Path, mistral: str  # noqa: F811
) -> None:
    # Quoted values span lines: the bad label is on line 8, the ragged record on line 9.
    lines = ["id,ocr,label,split", 'a,"Dear\nSir",0,train', 'b,"INVOICE\n\n4711",11,train',
             'c,"From",2,validation', "d,RESUME,99,test", "e,x,1,train,extra", "f,Form,1,test"]
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = error_line(prepare(path, mistral, tmp_path / "cache"))
    assert line.startswith(f"Error: {path}:9: ragged row 'e,x,1,train,extra'"), line

    path.write_text("\n".join(lines[:5] + lines[6:]) + "\n", encoding="utf-8")
    line = error_line(prepare(path, mistral, tmp_path / "cache"))
    assert line.startswith(f"Error: {path}:8: label 99 is outside the label set"), line


def test_a_json_array_item_names_the_line_it_starts_on(
    tmp_path: Path, mistral: str  # noqa: F811
) -> None:
    path = tmp_path / "t.json"
    items = [json.dumps(r) for r in ROWS]
    path.write_text("[\n" + ",\n".join(items[:2]) + ",\n\n  5,\n" + ",\n".join(items[2:]) + "]")
    line = error_line(prepare(path, mistral, tmp_path / "cache"))
    assert line.startswith(f"Error: {path}:5: a int, not an object"), line


# ------------------------------------------------------------------------------------------------
# 20. An empty table, or one read as the wrong format, says so
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_table_says_it_is_empty(tmp_path: Path, mistral: str,  # noqa: F811
                                         content: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    cache_dir = tmp_path / "cache"
    assert error_line(prepare(path, mistral, cache_dir)) == f"Error: {path}: the file is empty"
    assert no_entries(cache_dir)


def test_a_table_read_as_the_wrong_format_says_so(tmp_path: Path, mistral: str) -> None:  # noqa: F811
    path = tmp_path / "t.csv"
    path.write_text("id,ocr,label,split\na,Dear Sir,0,train\n")
    cache_dir = tmp_path / "cache"
    line = error_line(prepare(path, mistral, cache_dir, "--data-format", "jsonl"))
    assert line == (f"Error: {path}: could not be read as JSON lines (no record with named "
                    "fields at its start; check the file, or --data-format)")
    assert no_entries(cache_dir)

"""Bad input to `rvl-llm prepare`: a one-line error naming the file or option, nothing written;
and the inputs that are kept (empty text, invalid UTF-8) or skipped (--skip-bad-files)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.cache import TEMP_PREFIX
from rvl_llm.pipeline.manifest import Manifest, SkippedFile, shard_schema

GOOD = {
    "train_0000_0_aws.json": "Dear Sir, thank you for your letter of May 3.",
    "validation_0000_1_aws.json": "Name: ____ Date: ____ Signature: ____",
    "test_0000_2_aws.json": "From: a@b.com To: c@d.com Subject: budget",
}
LONG_TEMPLATE = "\n\n" + " ".join(["Please read the document above carefully."] * 20) + "\n###"


@pytest.fixture
def mistral(tokenizer_dirs: dict[str, Path], fast_tokenizer_loads: None) -> str:
    return str(tokenizer_dirs["tiny-mistral"])


def prepare(data: Path, model: str, cache_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["prepare", "--data", str(data), "--model", model,
                                     "--cache-dir", str(cache_dir), "--max-len", "64",
                                     "--no-progress", *args])


def assert_clean_failure(result: Result, cache_dir: Path, *needles: str) -> str:
    """Exit status 1, a single `Error: ...` line as the whole output, nothing half-written."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a ClickException, not a traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0]
    if cache_dir.exists():
        assert list(cache_dir.rglob("manifest.json")) == []
        assert [p for p in cache_dir.rglob("*") if p.name.startswith(TEMP_PREFIX)] == []
    return lines[0]


# Each case: files added to a good corpus (the bad one in the first split built, train),
# extra CLI arguments, and what the error line must name.
FILE_CASES = {
    "malformed JSON": ({"train_0001_3_aws.json": b'{"id": "x", "ocr": "unterminated'}, (),
                       ("train_0001_3_aws.json", "malformed JSON")),
    "not an object": ({"train_0001_3_aws.json": b'["ocr"]'}, (),
                      ("train_0001_3_aws.json", "an array, not a JSON object")),
    "no text field": ({"train_0001_3_aws.json": {"id": "x", "body": "hello"}}, (),
                      ("train_0001_3_aws.json", 'no "ocr" or "text" field')),
    "ocr is a list": ({"train_0001_3_aws.json": {"id": "x", "ocr": ["a", "b"]}}, (),
                      ("train_0001_3_aws.json", '"ocr" field is an array, not a string')),
    "ocr is null": ({"train_0001_3_aws.json": {"id": "x", "ocr": None}}, (),
                    ("train_0001_3_aws.json", '"ocr" field')),
    "no label number": ({"train_0001_letter_aws.json": "text"}, (),
                        ("train_0001_letter_aws.json", "no label number")),
    "no suffix": ({"train_0001_3.json": "text"}, (), ("train_0001_3.json", "no label number")),
    "label outside the set": ({"train_0001_16_aws.json": "text"}, (),
                              ("train_0001_16_aws.json", "label 16 is outside")),
    "label outside a labels file": ({"train_0001_2_aws.json": "text"}, ("--labels", "{labels2}"),
                                    ("train_0001_2_aws.json", "label 2 is outside")),
    "template longer than max-len": ({}, ("--generative", "--response-template", LONG_TEMPLATE),
                                     ("--max-len 64", "too small")),
    "max-len below the template": ({}, ("--generative", "--max-len", "8"), ("--max-len 8",)),
    "max-len zero": ({}, ("--max-len", "0"), ("--max-len 0",)),
    "unknown split": ({}, ("--splits", "train,dev"), ("--splits train,dev",)),
    "empty label name": ({}, ("--labels", "{empty_name}"), ("--labels", "line 2 is an empty")),
    "duplicate label name": ({}, ("--labels", "{duplicate}"), ("--labels", "repeats the label")),
    "empty labels file": ({}, ("--labels", "{no_names}"), ("--labels", "is empty")),
}


@pytest.mark.parametrize("case", FILE_CASES.values(), ids=FILE_CASES.keys())
def test_bad_input_fails_in_one_line_and_writes_nothing(
    case: tuple, write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    extra_files, args, needles = case
    data = write_corpus(GOOD | extra_files)
    label_files = {
        "labels2": "letter\nform\n",
        "empty_name": "letter\n\nform\n",
        "duplicate": "letter\nform\nletter\n",
        "no_names": "\n\n",
    }
    for name, text in label_files.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    args = tuple(a.format(**{n: tmp_path / f"{n}.txt" for n in label_files}) for a in args)
    result = prepare(data, mistral, tmp_path / "cache", *args)
    assert_clean_failure(result, tmp_path / "cache", *needles)


def test_a_split_without_files(write_corpus: Callable[..., Path], tmp_path: Path,
                               mistral: str) -> None:
    data = write_corpus({k: v for k, v in GOOD.items() if not k.startswith("validation")})
    result = prepare(data, mistral, tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", f"--data {data}", "split 'validation'")
    # Asking only for the splits that have files works.
    assert prepare(data, mistral, tmp_path / "cache", "--splits", "train,test").exit_code == 0


def test_an_empty_data_folder(tmp_path: Path, mistral: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a document")
    result = prepare(tmp_path / "empty", mistral, tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", f"--data {tmp_path / 'empty'}", "no .json")


def test_a_missing_data_folder(tmp_path: Path, mistral: str) -> None:
    result = prepare(tmp_path / "nowhere", mistral, tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", f"--data {tmp_path / 'nowhere'}",
                         "no such folder")


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        ("no-such-preset", ("--model no-such-preset", "not a preset", "tiny-mistral")),
        ("./no/such/folder", ("--model ./no/such/folder", "not an existing folder")),
        ("rvl-llm-tests/no-such-model",
         ("--model rvl-llm-tests/no-such-model", "local folder or a local preset", "tiny-llama3")),
    ],
    ids=["preset", "folder", "uncached hub id"],
)
def test_an_unknown_model(write_corpus: Callable[..., Path], tmp_path: Path, model: str,
                          needles: tuple[str, ...]) -> None:
    result = prepare(write_corpus(GOOD), model, tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", *needles)


def test_a_model_folder_without_tokenizer_files(
    write_corpus: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "config.json").write_text("{}")
    result = prepare(write_corpus(GOOD), str(tmp_path / "weights-only"), tmp_path / "cache")
    assert_clean_failure(result, tmp_path / "cache", f"--model {tmp_path / 'weights-only'}",
                         "no tokenizer files")


def entry(result: Result) -> Manifest:
    assert result.exit_code == 0, result.output
    return Manifest.load(Path(result.output.strip().splitlines()[-1]))


def test_empty_text_is_kept_and_counted(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, tokenizers
) -> None:
    data = write_corpus(GOOD | {"train_0001_4_aws.json": "", "train_0002_5_aws.json": " \n\t "})
    m = entry(prepare(data, mistral, tmp_path / "cache", "--generative"))
    assert (m.splits["train"].rows, m.splits["train"].empty) == (3, 2)
    rows = m.dataset("train")
    bos = tokenizers["tiny-mistral"].bos
    assert rows[1]["input_ids"] == [bos, *m.template.directive, *m.template.completions[4]]
    assert rows[1]["doc_id"] == "train_0001_4_aws"


def test_invalid_utf8_is_replaced_and_counted(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, tokenizers
) -> None:
    cp1252 = b'{"id": "cp1252", "ocr": "caf\xe9 \x93ok\x94"}'
    data = write_corpus(GOOD | {"train_0001_4_aws.json": cp1252})
    m = entry(prepare(data, mistral, tmp_path / "cache"))
    assert (m.splits["train"].rows, m.splits["train"].replaced_utf8) == (2, 1)
    tok = tokenizers["tiny-mistral"]
    row = m.dataset("train")[1]
    assert row["doc_id"] == "cp1252"
    assert row["input_ids"] == [tok.bos, *tok.full("caf\ufffd \ufffdok\ufffd")]


def test_skip_bad_files_lists_them_and_builds_the_rest(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    bad = {
        "train_0001_3_aws.json": b"{broken",
        "train_0002_3_aws.json": {"id": "x"},
        "train_0003_3_aws.json": {"ocr": 42},
        "train_0004_x_aws.json": "no label",
        "train_0005_99_aws.json": "label out of range",
        # Every file of the test split is bad: the split exists, with no rows.
        "test_0001_1_aws.json": b"\x00\x01",
    }
    data = write_corpus({k: v for k, v in GOOD.items() if not k.startswith("test")} | bad)
    result = prepare(data, mistral, tmp_path / "cache", "--skip-bad-files")
    m = entry(result)
    skipped = m.splits["train"].skipped_files
    assert sorted(s.name for s in skipped) == sorted(n for n in bad if "train" in n)
    reasons = {s.name: s.reason for s in skipped}
    assert reasons["train_0001_3_aws.json"].startswith("malformed JSON")
    assert reasons["train_0005_99_aws.json"].startswith("label 99 is outside")
    assert m.splits["train"].rows == 1
    assert m.dataset("train")["doc_id"] == ["train_0000_0_aws"]
    assert m.splits["test"].rows == 0 and m.splits["test"].shards == ()
    assert m.splits["test"].skipped_files == (
        SkippedFile("test_0001_1_aws.json", "malformed JSON (Expecting value, line 1 column 1)"),)
    empty = m.dataset("test")
    assert empty.num_rows == 0
    assert empty.data.schema.remove_metadata().equals(shard_schema(False))
    for s in skipped:
        assert f"  skipped {s.name}: {s.reason}" in result.output
    manifest_json = json.loads((m.root / "manifest.json").read_text())
    assert manifest_json["splits"]["train"]["skipped_files"] == [
        {"name": s.name, "reason": s.reason} for s in skipped]


def test_a_cache_hit_that_skipped_files_needs_the_flag_again(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    data = write_corpus(GOOD | {"train_0001_3_aws.json": b"{broken"})
    entry(prepare(data, mistral, tmp_path / "cache", "--skip-bad-files"))
    again = prepare(data, mistral, tmp_path / "cache")
    assert again.exit_code == 1
    message = again.output.strip().splitlines()[-1]
    assert "train_0001_3_aws.json: malformed JSON" in message and "--skip-bad-files" in message
    assert "cache hit" in prepare(data, mistral, tmp_path / "cache", "--skip-bad-files").output


def test_a_utf8_byte_order_mark_is_not_an_error(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str
) -> None:
    bom = b'\xef\xbb\xbf{"id": "bom", "ocr": "memo"}'
    m = entry(prepare(write_corpus(GOOD | {"train_0001_15_aws.json": bom}), mistral,
                      tmp_path / "cache"))
    assert (m.splits["train"].rows, m.splits["train"].replaced_utf8) == (2, 0)


def test_labels_file_sets_the_classes(
    write_corpus: Callable[..., Path], tmp_path: Path, mistral: str, tokenizers
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("letter\nform\nemail\n\n", encoding="utf-8")  # trailing blank lines: fine
    m = entry(prepare(write_corpus(GOOD), mistral, tmp_path / "cache", "--generative",
                      "--labels", str(labels)))
    assert m.labels == ("letter", "form", "email")
    assert m.splits["validation"].class_counts == {"letter": 0, "form": 1, "email": 0}
    tok = tokenizers["tiny-mistral"]
    assert [tok.decode(c[:-1]) for c in m.template.completions] == ["letter", "form", "email"]
    assert RVL_CDIP_CLASSES[:3] == m.labels

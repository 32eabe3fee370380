"""`rvl-llm predict`'s inputs: every kind of INPUT, in the order given, with the ids promised; each
bad input yielded in its place with a one-line reason; and a stream, not a list, in memory."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.corpus import decode_text, fields_phrase
from rvl_llm.predict.inputs import (
    TEXT_FIELD_HELP,
    BadInput,
    InputDocument,
    iter_inputs,
)

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs are named relative to tmp_path, as a user types them: ids are the paths as given."""
    monkeypatch.chdir(tmp_path)


def write(name: str, content: str | bytes | dict[str, Any] | list[Any]) -> str:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return name


def jsonl(*lines: dict[str, Any] | str) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def stdin_of(text: bytes) -> io.TextIOWrapper:
    """What sys.stdin is: a text wrapper over a binary buffer."""
    return io.TextIOWrapper(io.BytesIO(text), encoding="utf-8")


def read(*inputs: str, **kwargs: Any) -> list[InputDocument | BadInput]:
    return list(iter_inputs(list(inputs), **kwargs))


def docs(*inputs: str, **kwargs: Any) -> list[tuple[str, str, str]]:
    """(id, text, source) of every item, asserting none is bad."""
    items = read(*inputs, **kwargs)
    assert all(isinstance(item, InputDocument) for item in items), items
    return [(item.id, item.text, item.source) for item in items if isinstance(item, InputDocument)]


def bad(*inputs: str, **kwargs: Any) -> list[str]:
    return [item.message for item in read(*inputs, **kwargs) if isinstance(item, BadInput)]


# ------------------------------------------------------------------------------------------------
# 1. Every kind of input, and its ids
# ------------------------------------------------------------------------------------------------


def test_a_json_file_gives_its_ocr_text_and_its_id_field() -> None:
    write("scan.json", {"id": 17, "ocr": "Dear Sir,", "label": 3})
    assert docs("scan.json") == [("17", "Dear Sir,", "scan.json")]


def test_a_json_file_without_an_id_is_named_by_its_path_and_its_name_holds_no_label() -> None:
    write("in/train_0000_13_aws.json", {"ocr": "questionnaire"})
    write("in/letter.json", {"id": None, "ocr": "no number in this name"})
    assert docs("in/train_0000_13_aws.json", "in/letter.json") == [
        ("in/train_0000_13_aws.json", "questionnaire", "in/train_0000_13_aws.json"),
        ("in/letter.json", "no number in this name", "in/letter.json"),
    ]


def test_the_text_field_is_ocr_then_text_or_only_the_one_asked_for() -> None:
    write("both.json", {"ocr": "from ocr", "text": "from text", "body": "from body"})
    write("text.json", {"text": "from text"})
    assert [d[1] for d in docs("both.json", "text.json")] == ["from ocr", "from text"]
    assert docs("both.json", text_field="body") == [("both.json", "from body", "both.json")]
    assert bad("text.json", text_field="body") == ['text.json: no "body" field']


def test_a_txt_file_is_the_whole_text() -> None:
    write("note.txt", b'\xef\xbb\xbfLine one\n{"ocr": "not JSON here"}\n')
    assert docs("note.txt") == [("note.txt", 'Line one\n{"ocr": "not JSON here"}\n', "note.txt")]


def test_jsonl_lines_are_documents_named_by_id_or_row_number_as_prepare_names_them() -> None:
    write("batch.jsonl", jsonl({"id": "a", "ocr": "first"}, "", "   ", {"text": "third"},
                               {"id": 4, "text": "fourth"}, {"path": "x.tif", "text": "5"}))
    assert docs("batch.jsonl") == [
        ("a", "first", "batch.jsonl:1"),
        ("1", "third", "batch.jsonl:4"),  # empty lines skipped: not rows, still counted as lines
        ("4", "fourth", "batch.jsonl:5"),
        ("3", "5", "batch.jsonl:6"),  # a row's id is its "id" alone, as a table's id column
    ]


def test_jsonl_with_a_byte_order_mark_and_windows_line_ends() -> None:
    write("win.jsonl", b'\xef\xbb\xbf{"ocr": "one"}\r\n\r\n{"ocr": "two"}\r\n')
    assert docs("win.jsonl") == [("0", "one", "win.jsonl:1"), ("1", "two", "win.jsonl:3")]


def test_standard_input_is_json_lines() -> None:
    stdin = stdin_of(b'{"ocr": "one"}\n\n{"id": "x", "text": "two"}\n')
    assert docs("-", stdin=stdin) == [("0", "one", "-:1"), ("x", "two", "-:3")]


def test_standard_input_without_a_byte_buffer_is_read_as_text() -> None:
    assert docs("-", stdin=io.StringIO('{"ocr": "one"}\n')) == [("0", "one", "-:1")]


def test_standard_input_defaults_to_sys_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", stdin_of(b'{"ocr": "piped"}\n'))
    assert docs("-") == [("0", "piped", "-:1")]


def test_a_folder_gives_its_files_sorted_not_recursively_named_as_prepare_names_them() -> None:
    write("docs/c.txt", "plain")
    write("docs/a.json", {"ocr": "object"})
    write("docs/b.jsonl", jsonl({"ocr": "line 1"}, {"ocr": "line 2"}))
    write("docs/D.TXT", "upper-case extension")
    write("docs/notes.md", "ignored")
    write("docs/rows.csv", "id,text\nr1,row one\n")  # a table, read by prepare's table layer
    write("docs/sub/deep.json", {"ocr": "not entered"})
    os.mkdir("docs/folder.json")  # a folder named like a file is not a file
    assert docs("docs") == [
        ("D.TXT", "upper-case extension", "docs/D.TXT"),
        ("a.json", "object", "docs/a.json"),
        ("0", "line 1", "docs/b.jsonl:1"),
        ("1", "line 2", "docs/b.jsonl:2"),
        ("c.txt", "plain", "docs/c.txt"),
        ("r1", "row one", "docs/rows.csv:2"),
    ]
    assert [d[0] for d in docs("docs/")] == ["D.TXT", "a.json", "0", "1", "c.txt", "r1"]
    write("docs/preds.csv", "id,label\n")
    assert bad("docs") == ['docs/preds.csv: no "ocr" or "text" column (columns: id, label)']


def test_mixed_inputs_keep_the_order_given() -> None:
    write("z.txt", "text file")
    write("dir/b.json", {"ocr": "dir b"})
    write("dir/a.txt", "dir a")
    write("lines.jsonl", jsonl({"ocr": "jsonl 1"}, {"ocr": "jsonl 2"}))
    write("one.json", {"ocr": "json file"})
    stdin = stdin_of(b'{"ocr": "stdin 1"}\n')
    texts = [d[1] for d in docs("z.txt", "dir", "-", "lines.jsonl", "one.json", "z.txt",
                                stdin=stdin)]
    assert texts == ["text file", "dir a", "dir b", "stdin 1", "jsonl 1", "jsonl 2",
                     "json file", "text file"]


def test_invalid_utf8_is_replaced_not_an_error() -> None:
    write("bad.json", b'{"ocr": "caf\xe9"}')
    write("bad.txt", b"caf\xe9")
    write("bad.jsonl", b'{"ocr": "ok"}\n{"ocr": "caf\xe9"}\n')
    stdin = stdin_of(b'{"ocr": "caf\xe9"}\n')
    assert [d[1] for d in docs("bad.json", "bad.txt", "bad.jsonl", "-", stdin=stdin)] == [
        "caf\ufffd", "caf\ufffd", "ok", "caf\ufffd", "caf\ufffd"]


def test_decode_text_strips_a_byte_order_mark_and_says_when_bytes_were_replaced() -> None:
    assert decode_text(b"\xef\xbb\xbfabc") == ("abc", False)
    assert decode_text(b"\xef\xbb\xbfcaf\xe9") == ("caf\ufffd", True)
    assert decode_text("é".encode()) == ("é", False)


# ------------------------------------------------------------------------------------------------
# 2. Bad inputs: yielded in their place, one line each
# ------------------------------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    "malformed JSON": ("x.json", b'{"ocr": "unterminated',
                       "malformed JSON (Unterminated string starting at line 1 column 9)"),
    "not an object": ("x.json", b'["ocr"]', "an array, not a JSON object"),
    "no text field": ("x.json", b'{"id": "1", "body": "hi"}', 'no "ocr" or "text" field'),
    "text is a list": ("x.json", b'{"ocr": ["a", "b"]}', 'the "ocr" field is an array, not a '
                                                         "string"),
    "text is null": ("x.json", b'{"ocr": null, "text": "hi"}', 'the "ocr" field is null, not a '
                                                               "string"),
    "text is a number": ("x.json", b'{"text": 3}', 'the "text" field is a number, not a string'),
    "empty JSON file": ("x.json", b"", "malformed JSON (Expecting value, line 1 column 1)"),
    "unknown extension": ("x.md", b"id,text\n", "unknown extension '.md' (an INPUT file is "
                                                ".json, .txt, .jsonl, .csv, .parquet, image or "
                                                ".pdf)"),
    "no extension": ("README", b"text", "no extension (an INPUT file is .json, .txt, .jsonl, "
                                        ".csv, .parquet, image or .pdf)"),
}


@pytest.mark.parametrize(("name", "raw", "reason"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_one_bad_input_between_the_good_ones(name: str, raw: bytes,
                                                           reason: str) -> None:
    write("before.txt", "before")
    write(name, raw)
    write("after.txt", "after")
    items = read("before.txt", name, "after.txt")
    assert items == [InputDocument("before.txt", "before", "before.txt"), BadInput(name, reason),
                     InputDocument("after.txt", "after", "after.txt")]


def test_a_bad_file_inside_a_folder_is_named_by_its_path() -> None:
    write("docs/a.txt", "fine")
    write("docs/b.json", {"text": 1})
    assert bad("docs") == ['docs/b.json: the "text" field is a number, not a string']


def test_a_bad_jsonl_line_costs_that_line_only() -> None:
    write("batch.jsonl", jsonl({"ocr": "one"}, '{"ocr": "two",}', "[1, 2]", {"body": "x"},
                               {"ocr": "five"}))
    items = read("batch.jsonl")
    assert items == [
        InputDocument("0", "one", "batch.jsonl:1"),
        BadInput("batch.jsonl:2", "malformed JSON (Expecting property name enclosed in double "
                                  "quotes, column 15)"),
        BadInput("batch.jsonl:3", "an array, not a JSON object"),
        BadInput("batch.jsonl:4", 'no "ocr" or "text" field'),
        InputDocument("4", "five", "batch.jsonl:5"),  # rows count bad lines, as prepare's
    ]


def test_a_bad_line_on_standard_input_is_named_by_its_line() -> None:
    stdin = stdin_of(b'{"ocr": "one"}\nnot json\n{"ocr": "three"}\n')
    assert read("-", stdin=stdin) == [
        InputDocument("0", "one", "-:1"),
        BadInput("-:2", "malformed JSON (Expecting value, column 1)"),
        InputDocument("2", "three", "-:3"),
    ]


def test_a_missing_path_and_a_broken_link() -> None:
    os.symlink("nowhere.json", "dangling.json")
    write("ok.txt", "ok")
    assert bad("missing.json", "gone/", "dangling.json", "ok.txt") == [
        "missing.json: no such file or folder", "gone/: no such file or folder",
        "dangling.json: broken symbolic link"]


def test_a_broken_link_inside_a_folder() -> None:
    write("docs/a.txt", "fine")
    os.symlink("nowhere.json", "docs/b.json")
    assert bad("docs") == ["docs/b.json: broken symbolic link"]


def test_a_file_that_cannot_be_opened_even_as_root() -> None:
    os.symlink("loop.jsonl", "loop.jsonl")  # a link to itself: ELOOP whoever reads it
    write("docs/a.txt", "fine")
    os.symlink("loop.json", "docs/loop.json")
    assert bad("loop.jsonl", "docs") == [
        "loop.jsonl: cannot read (Too many levels of symbolic links)",
        "docs/loop.json: cannot read (Too many levels of symbolic links)"]


@pytest.mark.skipif(AS_ROOT, reason="root reads files whatever their mode")
@pytest.mark.parametrize("name", ["locked.json", "locked.txt", "locked.jsonl"])
def test_an_unreadable_file(name: str) -> None:
    write(name, b'{"ocr": "secret"}\n')
    os.chmod(name, 0)
    assert bad(name) == [f"{name}: cannot read (Permission denied)"]


@pytest.mark.skipif(AS_ROOT, reason="root lists folders whatever their mode")
def test_an_unlistable_folder() -> None:
    write("locked/a.txt", "secret")
    os.chmod("locked", 0)
    try:
        assert bad("locked") == ["locked: cannot list the folder (Permission denied)"]
    finally:
        os.chmod("locked", 0o755)


def test_a_folder_without_input_files_is_bad_not_silently_empty() -> None:
    write("docs/notes.md", "nothing to classify")
    write("ok.txt", "ok")
    assert bad("docs", "ok.txt") == ["docs: the folder holds no .json, .txt, .jsonl, .csv, "
                                     ".parquet, image or .pdf files"]


def test_usage_errors_are_one_line_at_the_call_before_anything_is_read() -> None:
    with pytest.raises(RvlError, match="INPUT - is given more than once"):
        iter_inputs(["-", "x.json", "-"])
    with pytest.raises(RvlError, match="no INPUT"):
        iter_inputs([])
    with pytest.raises(RvlError, match="--text-field: the field name is empty"):
        iter_inputs(["x.json"], text_field=" ")


def test_the_text_field_words() -> None:
    assert fields_phrase(["ocr", "text"]) == '"ocr" or "text"'
    assert fields_phrase(["body"]) == '"body"'
    assert TEXT_FIELD_HELP.endswith('(default: "ocr", else "text").')


# ------------------------------------------------------------------------------------------------
# 3. A stream, not a list
# ------------------------------------------------------------------------------------------------


def test_a_folder_is_read_one_file_at_a_time() -> None:
    write("docs/a.txt", "first")
    write("docs/b.txt", "second")
    items = iter_inputs(["docs"])
    assert next(items) == InputDocument("a.txt", "first", "docs/a.txt")
    os.remove("docs/b.txt")  # listed already, not yet read
    assert next(items) == BadInput("docs/b.txt", "cannot read (No such file or directory)")


def test_standard_input_is_read_line_by_line() -> None:
    raw = io.BytesIO(b"".join(b'{"ocr": "line %d"}\n' % i for i in range(1000)))
    items = iter_inputs(["-"], stdin=io.TextIOWrapper(raw, encoding="utf-8"))
    assert next(items) == InputDocument("0", "line 0", "-:1")
    assert raw.tell() == len(b'{"ocr": "line 0"}\n')


def test_a_large_jsonl_streams_in_flat_memory() -> None:
    line = json.dumps({"ocr": "word " * 100}) + "\n"
    write("big.jsonl", line * 20_000)  # 10 MB
    tracemalloc.start()
    try:
        count = sum(1 for item in iter_inputs(["big.jsonl"]) if isinstance(item, InputDocument))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 1_000_000, peak


# ------------------------------------------------------------------------------------------------
# Issue 14: ids that round-trip (23), bounded reads (16), prepare's counts (11)
# ------------------------------------------------------------------------------------------------


def test_json_ids_keep_their_json_text_and_strings_stay_as_they_are() -> None:
    from rvl_llm.pipeline.corpus import id_text

    write("ids.jsonl", jsonl({"id": True, "text": "a"}, {"id": {"a": 1}, "text": "b"},
                             {"id": 1, "text": "c"}, {"id": "1", "text": "d"},
                             {"id": "café", "text": "e"}, {"id": 2.5, "text": "f"},
                             {"id": [1, "x"], "text": "g"}))
    assert [d[0] for d in docs("ids.jsonl")] == [
        "true", '{"a": 1}', "1", "1", "café", "2.5", '[1, "x"]']
    write("doc.json", {"id": False, "ocr": "x"})
    assert docs("doc.json")[0][0] == "false"
    # The one rule, shared with prepare's readers.
    assert id_text("true") == "true" and id_text(None) == "null" and id_text(b"b\xc3\xa9") == "bé"


def test_prepare_reads_a_json_id_by_the_same_rule(tmp_path: Path) -> None:
    from rvl_llm.pipeline.corpus import SourceFile, read_document

    path = Path(write("train_x_0.json", {"id": {"a": 1}, "ocr": "text"}))
    assert read_document(SourceFile(str(path), 0)).doc_id == '{"a": 1}'


def test_a_txt_file_that_never_ends_is_cut_at_a_bound_not_read_whole() -> None:
    """A .txt that links to /dev/zero: its first MAX_DOCUMENT_BYTES are the document, and it
    says it was cut; a .json or .jsonl that never ends is a bad input, read no further."""
    from rvl_llm.predict.inputs import MAX_DOCUMENT_BYTES

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    for name in ("zero.txt", "zero.json", "zero.jsonl"):
        os.symlink("/dev/zero", name)
    tracemalloc.start()
    items = read("zero.txt", "zero.json", "zero.jsonl")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6 * MAX_DOCUMENT_BYTES  # bounded, whatever the file's size
    doc, json_file, jsonl_file = items
    assert isinstance(doc, InputDocument) and doc.cut and len(doc.text) == MAX_DOCUMENT_BYTES
    assert isinstance(json_file, BadInput) and "larger than 16 MiB" in json_file.reason
    assert isinstance(jsonl_file, BadInput) and jsonl_file.source == "zero.jsonl:1"
    assert "line longer than 16 MiB" in jsonl_file.reason and "rest" in jsonl_file.reason


def test_a_cut_never_splits_a_character(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rvl_llm.predict.inputs.MAX_DOCUMENT_BYTES", 4)
    write("accents.txt", "aéééé")  # a, then 2-byte characters: the cut falls inside one
    [doc] = read("accents.txt")
    assert isinstance(doc, InputDocument)
    assert doc.cut and doc.text == "aé" and not doc.replaced_utf8
    write("short.txt", "abc")
    [short] = read("short.txt")
    assert isinstance(short, InputDocument) and not short.cut


def test_a_long_line_ends_the_jsonl_file_with_its_line_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rvl_llm.predict.inputs.MAX_DOCUMENT_BYTES", 40)
    write("long.jsonl", jsonl({"text": "ok"}, {"text": "x" * 100}, {"text": "never read"}))
    items = read("long.jsonl")
    assert [type(i).__name__ for i in items] == ["InputDocument", "BadInput"]
    assert items[1].source == "long.jsonl:2"  # type: ignore[union-attr]


def test_documents_not_utf8_are_flagged_as_prepare_flags_them() -> None:
    write("latin1.txt", "café résumé".encode("latin-1"))
    write("binary.txt", bytes(range(256)))
    write("utf8.txt", "café")
    write("lines.jsonl", b'{"text": "caf\xe9"}\n{"text": "ok"}\n')
    flags = [(i.source, i.replaced_utf8) for i in read("latin1.txt", "binary.txt", "utf8.txt",
                                                        "lines.jsonl")
             if isinstance(i, InputDocument)]
    assert flags == [("latin1.txt", True), ("binary.txt", True), ("utf8.txt", False),
                     ("lines.jsonl:1", True), ("lines.jsonl:2", False)]

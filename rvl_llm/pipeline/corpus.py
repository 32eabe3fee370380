"""Finding and reading the OCR JSON files of a corpus folder.

Names are ``{prefix}{anything}_{label}{suffix}.json``; the label is the last ``_``-separated number
before the suffix. Files are listed in sorted order so shards and row order are reproducible.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.ids import id_text

_LABEL_AT_END = re.compile(r"(?:^|_)(\d+)$")


@dataclass(frozen=True)
class SourceFile:
    path: str  # a str, not a Path: a corpus lists 400k of them on every cache lookup
    label: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    label: int
    replaced_utf8: bool  # the bytes were not valid UTF-8 and were decoded with replacement


class BadFile(RvlError):
    """A per-file problem: fatal unless --skip-bad-files turns it into a listed skip."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def scan_folder(data_dir: Path) -> list[os.DirEntry[str]]:
    """All ``*.json`` entries of the data folder, sorted by name, with absolute paths."""
    if not data_dir.is_dir():
        raise RvlError(f"--data {data_dir}: no such folder")
    # Entry paths are as relative as the folder given; they key the cache, so `-d data` and
    # `-d /abs/data` must list the same paths.
    with os.scandir(data_dir.resolve()) as entries:
        found = sorted((e for e in entries if e.name.endswith(".json")), key=lambda e: e.name)
    if not found:
        raise RvlError(f"--data {data_dir}: the folder holds no .json files")
    return found


def parse_label(name: str, prefix: str, suffix: str) -> int | None:
    """The label of a file name of this split, or None when the name has no label number."""
    stem = name[len(prefix) : -len(suffix + ".json")] if suffix else name[len(prefix) : -5]
    match = _LABEL_AT_END.search(stem)
    return int(match.group(1)) if match else None


def split_files(
    entries: list[os.DirEntry[str]], prefix: str, suffix: str
) -> tuple[list[SourceFile], list[tuple[Path, str]]]:
    """This split's files (sorted) and the bad ones that belong to it: no label number in the
    name, or no file behind the name (a broken symbolic link, a file removed meanwhile)."""
    files, bad = [], []
    ending = suffix + ".json"
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        label = parse_label(entry.name, prefix, suffix) if entry.name.endswith(ending) else None
        if label is None:
            bad.append((Path(entry.path), f"no label number before '{ending}' in the file name"))
            continue
        try:
            stat = entry.stat()  # follows symbolic links
        except OSError as err:
            bad.append((Path(entry.path), _stat_problem(entry, err)))
            continue
        files.append(SourceFile(entry.path, label, stat.st_size, stat.st_mtime_ns))
    return files, bad


def _stat_problem(entry: os.DirEntry[str], err: OSError) -> str:
    if isinstance(err, FileNotFoundError) and entry.is_symlink():
        return "broken symbolic link"
    return f"cannot read ({err.strerror or err})"


def read_document(source: SourceFile) -> Document:
    """Read one file; raise BadFile for anything that is not a JSON object with a string "ocr"."""
    path = Path(source.path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BadFile(path, f"cannot read ({err.strerror})") from err
    text, replaced = decode_text(raw)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadFile(path, f"malformed JSON ({json_problem(err)})") from err
    if not isinstance(data, dict) or "ocr" not in data:
        raise BadFile(path, 'no "ocr" field')
    ocr = data["ocr"]
    if not isinstance(ocr, str):
        raise BadFile(path, f'the "ocr" field is a {type(ocr).__name__}, not a string')
    doc_id = data.get("id", data.get("path", path.name))
    return Document(id_text(doc_id), ocr, source.label, replaced)


def decode_text(raw: bytes) -> tuple[str, bool]:
    """The text of a file's bytes, and whether some were not UTF-8 and were replaced (U+FFFD):
    OCR output holds such bytes, and one bad byte should not cost a document. A byte-order mark
    is valid UTF-8, not part of the text (json.loads would refuse it)."""
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace"), True


def is_empty_text(text: str) -> bool:
    """Empty or whitespace only: prepare keeps such a document and counts it; so does predict."""
    return not text.strip()


def json_problem(err: json.JSONDecodeError, *, line: bool = True) -> str:
    """The parser's complaint and where: some of its messages end in "at" ("Unterminated string
    starting at"), which would read "at at" followed by our own "at line". ``line=False`` for
    one line of a JSON-lines file, whose line number the caller names (the parser's is 1)."""
    where = f"line {err.lineno} column {err.colno}" if line else f"column {err.colno}"
    if err.msg.endswith(" at"):
        return f"{err.msg} {where}"
    return f"{err.msg}, {where}"


def document_file_name(prefix: str, stem: str, label: int, suffix: str) -> str:
    """The name of one document's file, ``{prefix}{stem}_{label}{suffix}.json``, as
    :func:`split_files` finds it (``prefix``) and :func:`parse_label` reads its label back."""
    return f"{prefix}{stem}_{label}{suffix}.json"

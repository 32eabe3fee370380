"""Finding and reading the OCR JSON files of a corpus folder, and what every reader of documents
shares (prepare's sources, predict's inputs, the OCR stage): the listing types, split names, the
names of inputs (``hf:NAME``, table suffixes), one text-field rule, one id rule, one set of
messages. A leaf module: it imports none of the package's stages, so no cycle runs through it.

Names are ``{prefix}{anything}_{label}{suffix}.json``, listed sorted so shards are reproducible.
A JSON document's text is its first field of ``TEXT_FIELDS`` (or the one named). Its id is its
``"id"`` (a table's id column), else, for a file, its ``"path"``, else where it was read from: a
file's name in the folder given (a file given alone: the path as given), a table row's number
from 0 in its file.
"""
from __future__ import annotations

import codecs
import json
import os
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from rvl_llm.errors import RvlError

TEXT_FIELDS = ("ocr", "text")  # tried in this order when no text field or column is named
ID_FIELDS = ("id", "path")  # a document's id: the first of these it holds (not null)
# JSON's own names: the person who wrote the file may never have seen Python.
_JSON_TYPES: dict[type, str] = {
    dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
    bool: "a boolean", type(None): "null",
}
HUB_PREFIX = "hf:"
TABLE_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                  ".parquet": "parquet"}
# Split names of other datasets -> ours.
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation",
               "valid": "validation", "dev": "validation", "test": "test"}
SPLIT_CHOICES = "train; validation, val, dev; test"  # in messages


class SourceFile(NamedTuple):
    """One listed file, made when its split is built (``SplitFiles.files``; a hit makes none). A
    NamedTuple and ``path`` a str: a build makes one per file, a frozen dataclass costs 3x."""

    path: str
    label: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    label: int
    replaced_utf8: bool  # the bytes were not valid UTF-8 and were decoded with replacement


Bad = tuple[str, str]  # where (a path, or "path:ROW"), why it cannot be used
DocChunk = tuple[list[Document], list[Bad]]


class Entry(NamedTuple):
    """One listed document: what selection sees (key, label) and the source's handle to it.
    A NamedTuple: a cache hit of a 400k-file folder builds one per file, at half a dataclass's
    cost."""

    key: str  # a folder's file name; a table's id value or row number
    label: int
    ref: Any  # a SourceFile, or (part index, row)


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)


class BadRecord(Exception):
    """A JSON value that is not a document; its message is one line, the caller adds where."""


class BadFile(RvlError):
    """A per-file problem: fatal unless --skip-bad-files turns it into a listed skip."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def is_hub(data: Path | str) -> bool:
    return str(data).startswith(HUB_PREFIX)


def resolved_data(data: Path) -> Path:
    """``data`` made absolute, except ``hf:NAME`` (a dataset name, not a path)."""
    return data if is_hub(data) else data.resolve()


def our_split(name: str) -> str | None:
    return SPLIT_NAMES.get(name.strip().lower())


def split_file_spec(spec: str) -> tuple[str | None, Path]:
    """A ``--split-file`` value: ``FILE`` (its lines or keys say the splits), or ``SPLIT=FILE``
    (every id it lists is of SPLIT). A name before ``=`` that is no split is part of the path."""
    name, eq, rest = spec.partition("=")
    split = our_split(name) if eq and rest else None
    return (split, Path(rest)) if split is not None else (None, Path(spec))


def resolved_split_file(spec: str) -> str:
    """A ``--split-file`` value with its path made absolute (what a recipe records)."""
    split, path = split_file_spec(spec)
    return f"{split}={path.resolve()}" if split else str(path.resolve())


def scan_folder(data_dir: Path, names: list[str] | None = None) -> tuple[str, list[str]]:
    """The data folder, resolved, and the names of its ``*.json`` entries, sorted. ``names``:
    the folder's entries when the caller has listed it already (guessing its format), so a
    400k-file folder is listed once."""
    if not data_dir.is_dir():
        raise RvlError(f"--data {data_dir}: no such folder")
    # Resolved: paths key the cache, so `-d data` and `-d /abs/data` list the same. Names
    # alone, not scandir's entry objects: a cache hit of RVL-CDIP lists 400k.
    folder = str(data_dir.resolve())
    listed = os.listdir(folder) if names is None else names
    names = sorted([name for name in listed if name.endswith(".json")])
    if not names:
        raise RvlError(f"--data {data_dir}: the folder holds no .json files")
    return folder, names


def parse_label(name: str, prefix: str, suffix: str) -> int | None:
    """The label of a file name of this split, or None when the name has no label number."""
    stem = name[len(prefix) : -len(suffix + ".json")]
    # The last "_"-separated part, all decimal digits (what a regex would find, at a third of
    # the cost: a cache hit parses 400k names).
    number = stem.rpartition("_")[2]
    return int(number) if number.isdecimal() else None


class SplitFiles(NamedTuple):
    """One split's listed files as columns (names, labels, stat results), sorted by name, and
    its bad entries. Columns, not a SourceFile per file: a cache hit of RVL-CDIP's 400k files
    needs only the key's lines and the label check, so per-file objects are made (``files``)
    only when a split is built."""

    base: str  # the resolved folder with a trailing separator: base + name is a file's path
    names: list[str]
    labels: list[int]
    stats: list[os.stat_result]
    bad: list[tuple[Path, str]]

    def files(self) -> list[SourceFile]:
        return [SourceFile(self.base + name, label)
                for name, label in zip(self.names, self.labels, strict=True)]

    def key_lines(self, split: str) -> str:
        """What the cache key hashes of this split: each file's path, size and mtime, and each
        bad entry's path and reason, a line each."""
        head = f"{split}\t{self.base}"
        lines = [f"{head}{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
                 for name, stat in zip(self.names, self.stats, strict=True)]
        lines += [f"{split}\t{path}\tbad\t{reason}\n" for path, reason in self.bad]
        return "".join(lines)


def split_files(folder: str, names: list[str], prefix: str, suffix: str) -> SplitFiles:
    """This split's files (sorted) and the bad ones that belong to it: no label number in the
    name, or no file behind the name (a broken symbolic link, a file removed meanwhile).
    ``names`` must be sorted, as :func:`scan_folder` returns them."""
    ending = suffix + ".json"
    base = os.path.join(folder, "")
    # Sorted names put this split's in one run, found by bisection: no pass over the other
    # splits' files; and each file is stat'ed by name relative to the folder, not by a path
    # walked from the root. A cache hit of RVL-CDIP stats 400k files: this is most of it, so
    # the common case (every name well formed, every file there) runs as comprehensions and
    # only a run with a bad name or file takes the per-name loop.
    start = bisect_left(names, prefix)
    stop = bisect_left(names, prefix[:-1] + chr(ord(prefix[-1]) + 1))
    run = names[start:stop]
    cut, end = len(prefix), -len(ending)
    numbers = [name[cut:end].rpartition("_")[2] if name.endswith(ending) else "" for name in run]
    bad: list[tuple[Path, str]] = []
    if all(map(str.isdecimal, numbers)):
        good, labels = run, list(map(int, numbers))
    else:
        good = [name for name, number in zip(run, numbers, strict=True) if number.isdecimal()]
        labels = [int(number) for number in numbers if number.isdecimal()]
        bad = [(Path(base + name), f"no label number before '{ending}' in the file name")
               for name, number in zip(run, numbers, strict=True) if not number.isdecimal()]
    fd = os.open(folder, os.O_RDONLY) if os.stat in os.supports_dir_fd else None
    at = "" if fd is not None else base  # a name is relative to ``fd``, else to the folder
    try:
        try:  # follows symbolic links
            stats = [os.stat(at + name, dir_fd=fd) for name in good]
        except OSError:  # a broken link or a file removed meanwhile: find which, one by one
            good, labels, stats, missing = _stat_each(base, at, fd, good, labels)
            bad = sorted([*bad, *missing], key=lambda item: item[0].name)
    finally:
        if fd is not None:
            os.close(fd)
    return SplitFiles(base, good, labels, stats, bad)


def _stat_each(
    base: str, at: str, fd: int | None, names: list[str], labels: list[int]
) -> tuple[list[str], list[int], list[os.stat_result], list[tuple[Path, str]]]:
    kept, kept_labels, stats, bad = [], [], [], []
    for name, label in zip(names, labels, strict=True):
        try:
            stat = os.stat(at + name, dir_fd=fd)
        except OSError as err:
            bad.append((Path(base + name), read_problem(base + name, err)))
            continue
        kept.append(name)
        kept_labels.append(label)
        stats.append(stat)
    return kept, kept_labels, stats, bad


def read_problem(path: str | Path, err: OSError) -> str:
    """Why a file cannot be read, as every reader says it."""
    if isinstance(err, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return f"cannot read ({err.strerror or err})"


def json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def fields_phrase(fields: Sequence[str]) -> str:
    """``"ocr" or "text"``: the fields tried, as a message names them."""
    return " or ".join(f'"{field}"' for field in fields)


def id_text(value: Any) -> str:
    """The id text of a JSON (or table cell) value: strings as they are, bytes decoded as files
    are, anything else as its JSON text, so ``true`` stays ``true`` and the id reads back as the
    value the file holds (a number ``1`` and a string ``"1"`` both give ``1``: predict counts
    such repeats as duplicate ids); a value JSON cannot write (a date in a Parquet column) as
    Python writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def record_id(data: dict[str, Any], default_id: str,
              id_fields: Sequence[str] = ID_FIELDS) -> str:
    for name in id_fields:
        if data.get(name) is not None:
            return id_text(data[name])
    return default_id


def read_document(source: SourceFile) -> Document:
    """Read one file; raise BadFile for anything that is not a JSON object with a string "ocr"."""
    path = Path(source.path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BadFile(path, read_problem(path, err)) from err
    text, replaced = decode_text(raw)
    try:
        doc_id, ocr = parse_document(text, TEXT_FIELDS, path.name)
    except BadRecord as err:
        raise BadFile(path, str(err)) from err
    return Document(doc_id, ocr, source.label, replaced)


def file_id(source: SourceFile) -> str:
    """A file's document id alone (a split file may list it); an unreadable file: its name (it
    is named as bad when read)."""
    path = Path(source.path)
    try:
        data = json.loads(decode_text(path.read_bytes())[0])
    except (OSError, ValueError):
        return path.name
    return record_id(data, path.name) if isinstance(data, dict) else path.name


def parse_document(text: str, fields: Sequence[str], default_id: str, *,
                   line: bool = True) -> tuple[str, str]:
    """(id, text) of one JSON document's text: a file, or a JSON line (``line=False``: a table
    row, whose id is its "id" alone)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRecord(f"malformed JSON ({json_problem(err, line=line)})") from err
    if not isinstance(data, dict):
        raise BadRecord(f"{json_type(data)}, not a JSON object")
    name = next((name for name in fields if name in data), None)
    if name is None:
        raise BadRecord(f"no {fields_phrase(fields)} field")
    if not isinstance(data[name], str):
        raise BadRecord(f'the "{name}" field is {json_type(data[name])}, not a string')
    return record_id(data, default_id, ID_FIELDS if line else ID_FIELDS[:1]), data[name]


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

"""Documents as table rows: JSON lines, JSON arrays, CSV and Parquet files (and, through
``hf_datasets``, the splits of a ``datasets`` dataset).

Files are read with pyarrow in record batches, so memory stays flat in table size: listing reads
the label, id and split columns; reading reads the text of the selected rows. Rows are numbered
from 0 in file order (blank lines of a JSON-lines file do not count); a row's number is its
document id when the table has no id column. A bad row is named as ``row_place`` says.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import (
    SPLIT_CHOICES,
    TABLE_SUFFIXES,
    TEXT_FIELDS,
    Bad,
    DocChunk,
    Document,
    Entry,
    Listing,
    decode_text,
    fields_phrase,
    id_text,
    json_problem,
    our_split,
)
from rvl_llm.pipeline.manifest import SPLITS

BLOCK_BYTES = 1 << 19  # pyarrow block size; its streaming readers buffer some 30 blocks ahead
LIST_ROWS = 65_536  # rows per record batch when listing (ids and labels only)
SPLIT_COLUMN = "split"
ID_COLUMN = "id"  # --id-column's default, and the id column predict reads
_SEPARATORS = re.compile(r"[ \t\r\n,]*")  # JSON whitespace and commas between array items


@dataclass(frozen=True)
class Block:
    rows: list[int]  # the row number of each value
    values: dict[str, list[Any]]  # column -> one value per row (None where a row lacks it)
    replaced: list[bool] | None = None  # per row: bytes that were not UTF-8 were replaced
    bad: tuple[Bad, ...] = ()  # rows that could not be parsed at all (malformed, ragged)


class Part(Protocol):
    """One file, or one split of a dataset."""

    name: str  # in messages: a path, or hf:NAME[split]
    split: str | None  # None: each row's split column says

    def column_names(self) -> list[str]: ...

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]: ...


@dataclass(frozen=True)
class Columns:
    text: str
    label: str
    id: str | None  # None: row numbers are the ids
    split: str | None  # None: the part has one split


class LabelMap:
    """A label value (class index, class name, or ClassLabel index) -> our class index, or why
    it is not one."""

    def __init__(self, labels: Sequence[str], class_names: Sequence[str] | None = None) -> None:
        self.labels = tuple(labels)
        self.index = {name: i for i, name in enumerate(labels)}
        self.class_names = class_names

    def __call__(self, value: Any) -> int | str:
        if isinstance(value, bytes):
            value = decode_text(value)[0]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            if self.class_names is not None and 0 <= value < len(self.class_names):
                value = self.class_names[value]  # a ClassLabel: our order by its names
            elif 0 <= value < len(self.labels):
                return value
            else:
                return (f"label {value} is outside the label set (0..{len(self.labels) - 1}, "
                        "see --labels)")
        if isinstance(value, str):
            if value in self.index:
                return self.index[value]
            return f"label {value!r} is not in the label set (see --labels)"
        return f"label {value!r} is not a class index or name"


class TableSource:
    unit = "rows"

    def __init__(self, kind: str, parts: Sequence[Part], cfg: PrepareConfig,
                 labels: tuple[str, ...], key: dict[str, Any],
                 class_names: Sequence[str] | None = None) -> None:
        self.kind, self.parts, self.cfg, self.labels = kind, list(parts), cfg, labels
        self._key = key
        self.label_of = LabelMap(labels, class_names)
        self._columns: dict[int, Columns] = {}

    def key_data(self) -> dict[str, Any]:
        return self._key

    def columns(self, i: int) -> Columns:
        if i not in self._columns:
            self._columns[i] = resolve_columns(self.parts[i], self.cfg)
        return self._columns[i]

    def list_splits(self, splits: Sequence[str]) -> dict[str, Listing]:
        listings = {s: Listing() for s in SPLITS}
        stray: list[Bad] = []  # rows of no known split: reported with the first split built
        # An id column's value -> its first row (part, row), per split: a repeated id is a bad
        # row naming both places (row numbers, the ids of a table without one, never repeat
        # within a file).
        first: dict[str, dict[str, tuple[int, int]]] = {s: {} for s in SPLITS}
        for i, part in enumerate(self.parts):
            if part.split is not None and part.split not in splits:
                continue
            cols = self.columns(i)
            wanted = [c for c in (cols.label, cols.id, cols.split) if c is not None]
            for block in part.blocks(wanted, LIST_ROWS):
                (listings[part.split].bad if part.split else stray).extend(block.bad)
                labels, ids = block.values[cols.label], block.values.get(cols.id or "")
                names = block.values.get(cols.split or "")
                for j, row in enumerate(block.rows):
                    split = part.split or _row_split(names[j] if names else None)
                    if split is None:
                        shown = _as_text(names[j]) if names else None
                        stray.append((row_place(part, row), f"unknown split {shown!r} in "
                                      f"column {cols.split!r} (choose from {SPLIT_CHOICES})"))
                        continue
                    label = self.label_of(labels[j])
                    if isinstance(label, str):
                        listings[split].bad.append((row_place(part, row), label))
                        continue
                    doc_id = ids[j] if ids is not None else None
                    key = str(row) if doc_id is None else id_text(doc_id)
                    if doc_id is not None and first[split].setdefault(key, (i, row)) != (i, row):
                        was = first[split][key]
                        listings[split].bad.append((row_place(part, row), (
                            f"duplicate id {key!r} in split {split} (first at "
                            f"{row_place(self.parts[was[0]], was[1])})")))
                        continue
                    listings[split].entries.append(Entry(key, label, (i, row)))
        listings[splits[0]].bad[:0] = stray
        for split in splits:
            if not listings[split].entries and not listings[split].bad:
                raise RvlError(f"--data {self.cfg.data_dir}: no rows for split {split!r}")
        return {s: listings[s] for s in splits}

    def doc_ids(self, entries: Sequence[Entry]) -> list[str]:
        return [entry.key for entry in entries]  # a row's key is its id

    def read(self, split: str, entries: Sequence[Entry], chunk_size: int) -> Iterator[DocChunk]:
        by_part: dict[int, dict[int, Entry]] = {}
        for entry in entries:
            part, row = entry.ref
            by_part.setdefault(part, {})[row] = entry
        docs: list[Document] = []
        bad: list[Bad] = []
        for i, wanted in by_part.items():
            part, text_column = self.parts[i], self.columns(i).text
            for block in part.blocks([text_column], chunk_size):
                for j, row in enumerate(block.rows):
                    entry = wanted.pop(row, None)
                    if entry is None:
                        continue
                    text = _cell_text(block, j, text_column)
                    if isinstance(text, str):
                        bad.append((row_place(part, row), text))
                    else:
                        docs.append(Document(entry.key, text[0], entry.label, text[1]))
                    if len(docs) + len(bad) >= chunk_size:
                        yield docs, bad
                        docs, bad = [], []
                if not wanted:
                    break
            if wanted:
                raise RvlError(f"{part.name}: changed while prepare read it (row "
                               f"{min(wanted)} is gone); run prepare again")
        if docs or bad:
            yield docs, bad


class UnlabelledRow(NamedTuple):
    id: str  # the id column's value, else the row number (as prepare keys the row)
    text: str
    where: str  # file:LINE, or name:ROW
    replaced: bool  # bytes that were not UTF-8 were replaced


def read_unlabelled(path: str, kind: str, fields: Sequence[str]) -> Iterator[UnlabelledRow | Bad]:
    """The rows of one table file as predict reads them (no split, no label), with prepare's
    text and id rules: the text is the first of ``fields`` among its columns, the id the "id"
    column, else the row number. A bad row, or a file that cannot be read, is a ``Bad``."""
    part = _part(kind, Path(path), None)
    try:
        names = part.column_names()
        if not names:
            raise RvlError(_no_columns(part))
        text = next((f for f in fields if f in names), None)
        if text is None:
            raise RvlError(f"{path}: no {fields_phrase(fields)} column (columns: "
                           f"{', '.join(names[:12])})")
        id_column = ID_COLUMN if ID_COLUMN in names and text != ID_COLUMN else None
        columns = [text, *([id_column] if id_column else [])]
        for block in part.blocks(columns, LIST_ROWS):
            yield from block.bad
            for j, row in enumerate(block.rows):
                value = _cell_text(block, j, text)
                if isinstance(value, str):
                    yield row_place(part, row), value
                    continue
                doc_id = block.values[id_column][j] if id_column else None
                yield UnlabelledRow(str(row) if doc_id is None else id_text(doc_id), value[0],
                                    row_place(part, row), value[1])
    except RvlError as err:  # a file that cannot be read as its kind: one bad input
        yield path, err.message.removeprefix(f"{path}: ")


def _cell_text(block: Block, j: int, column: str) -> tuple[str, bool] | str:
    """Row ``j``'s text and whether bytes were replaced in it, or why it has none."""
    value = block.values[column][j]
    if isinstance(value, bytes):
        return decode_text(value)
    if isinstance(value, str):
        return value, bool(block.replaced and block.replaced[j])
    what = "missing (null)" if value is None else f"a {type(value).__name__}"
    return f"the {column!r} value is {what}, not a string"


def row_place(part: Part, row: int) -> str:
    """``file:LINE`` for a text table (the line the row's record starts on, from 1), else
    ``name:ROW``. Lines are found only when a row is bad, by one scan of the file."""
    line_of = getattr(part, "line_of", None)
    return f"{part.name}:{row if line_of is None else line_of(row)}"


def _file_key(name: str) -> tuple[str, int, int]:
    """A file's name, size and mtime: a cache of its line numbers is dropped when it changes."""
    stat = Path(name).stat()
    return name, stat.st_size, stat.st_mtime_ns


def _row_split(value: Any) -> str | None:
    return our_split(_as_text(value)) if isinstance(value, str | bytes) else None


def _as_text(value: Any) -> str:
    return decode_text(value)[0] if isinstance(value, bytes) else str(value)


def resolve_columns(part: Part, cfg: PrepareConfig) -> Columns:
    names = part.column_names()
    if not names:  # nothing read: say so, not "no text column (columns: )"
        raise RvlError(_no_columns(part))
    shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    text = cfg.text_column or next((c for c in TEXT_FIELDS if c in names), None)
    if text is None or text not in names:
        wanted = repr(cfg.text_column) if cfg.text_column else " or ".join(map(repr, TEXT_FIELDS))
        raise RvlError(f"{part.name}: no text column {wanted} (columns: {shown}; --text-column)")
    if cfg.label_column not in names:
        raise RvlError(f"{part.name}: no label column {cfg.label_column!r} (columns: {shown}; "
                       "--label-column)")
    if part.split is None and SPLIT_COLUMN not in names:
        raise RvlError(f"{part.name}: no {SPLIT_COLUMN!r} column to split by (columns: {shown});"
                       " add one, or give a file per split with --data-files "
                       "train=...,validation=...,test=...")
    return Columns(text, cfg.label_column, cfg.id_column if cfg.id_column in names else None,
                   None if part.split else SPLIT_COLUMN)


def _no_columns(part: Part) -> str:
    """Why a part has no columns: an empty file, or one that is not the format it was read as."""
    path = Path(part.name)
    if path.is_file() and _is_blank(path):
        return f"{part.name}: the file is empty"
    kind = getattr(part, "format_name", "a table")
    return (f"{part.name}: could not be read as {kind} (no record with named fields at its "
            "start; check the file, or --data-format)")


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as handle:
        return not any(chunk.strip() for chunk in iter(lambda: handle.read(1 << 16), b""))


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def open_tables(cfg: PrepareConfig, kind: str) -> TableSource:
    parts = [_part(kind, path, split) for path, split in table_files(cfg, kind)]
    key = {"kind": kind, "files": [[part.split, *_file_key(part.name)] for part in parts],
           "columns": {"text": cfg.text_column, "label": cfg.label_column, "id": cfg.id_column}}
    return TableSource(kind, parts, cfg, cfg.label_names(), key)


def table_files(cfg: PrepareConfig, kind: str) -> list[tuple[Path, str | None]]:
    """(resolved path, split or None) of every table file, in a reproducible order."""
    data = cfg.data_dir
    if cfg.data_files:
        if not data.is_dir():
            raise RvlError(f"--data {data}: with --data-files, --data is the folder their "
                           "relative paths start from")
        found = []
        for spec in cfg.data_files:
            name, eq, rel = spec.partition("=")
            split = our_split(name)
            if not eq or not rel.strip():
                raise RvlError(f"--data-files {spec}: expected SPLIT=PATH")
            if split is None:
                raise RvlError(f"--data-files {spec}: unknown split {name!r} "
                               f"(choose from {SPLIT_CHOICES})")
            path = data / rel.strip()  # an absolute path stays as it is
            if not path.is_file():
                raise RvlError(f"--data-files {spec}: no such file {path}")
            found.append((path.resolve(), split))
        return found
    if data.is_file():
        return [(data.resolve(), None)]
    suffixes = [s for s, k in TABLE_SUFFIXES.items() if k == kind]
    paths = sorted(p for p in data.resolve().iterdir() if p.suffix.lower() in suffixes)
    if not paths:
        raise RvlError(f"--data {data}: no {' or '.join(suffixes)} files")
    # train.jsonl, validation-00000-of-00001.parquet ...: the file name says the split.
    return [(p, our_split(re.split(r"[-_.]", p.name)[0])) for p in paths]


def _part(kind: str, path: Path, split: str | None) -> Part:
    return {"jsonl": JsonLinesFile, "json": JsonArrayFile, "csv": CsvFile,
            "parquet": ParquetFile}[kind](str(path), split)


@dataclass(frozen=True)
class ParquetFile:
    name: str
    split: str | None
    format_name = "Parquet"  # in messages (a class attribute, not a field)

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.name)
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError ...
            raise RvlError(f"{self.name}: not a readable Parquet file ({err})") from err

    def column_names(self) -> list[str]:
        return list(self._open().schema_arrow.names)

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]:
        row = 0
        for batch in self._open().iter_batches(batch_size=size, columns=list(columns)):
            n = batch.num_rows
            yield Block(list(range(row, row + n)),
                        {c: batch.column(c).to_pylist() for c in columns})
            row += n


@dataclass(frozen=True)
class CsvFile:
    name: str
    split: str | None
    format_name = "CSV"  # in messages (a class attribute, not a field)

    def column_names(self) -> list[str]:
        with open(self.name, encoding="utf-8-sig", errors="replace", newline="") as handle:
            return next(csv.reader(handle), [])

    def line_of(self, row: int) -> int:
        """The line (from 1) where data row ``row`` starts (a quoted value may span lines)."""
        return _csv_lines(*_file_key(self.name))[0][row]

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        ragged: list[Bad] = []
        seen = itertools.count()  # ragged records: pyarrow's own line number is not the record's

        def on_ragged(row: Any) -> str:
            lines, k = _csv_lines(*_file_key(self.name))[1], next(seen)  # ragged records' lines
            where = f"{self.name}:{lines[k]}" if k < len(lines) else self.name
            ragged.append((where, f"ragged row {row.text[:40]!r}: {row.actual_columns} fields, "
                                  f"the header has {row.expected_columns}"))
            return "skip"

        reader = pcsv.open_csv(
            self.name,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged),
            # Bytes, decoded here: a byte that is not UTF-8 costs a replacement, not the file.
            convert_options=pcsv.ConvertOptions(column_types={c: pa.binary() for c in columns},
                                                include_columns=list(columns)),
        )
        row = 0
        for batch in reader:
            n = batch.num_rows
            values = {c: batch.column(c).to_pylist() for c in columns}
            yield Block(list(range(row, row + n)), values, None, tuple(ragged))
            ragged.clear()
            row += n
        if ragged:
            yield Block([], {c: [] for c in columns}, None, tuple(ragged))


@functools.lru_cache(maxsize=8)
def _csv_lines(name: str, size: int, mtime_ns: int) -> tuple[list[int], list[int]]:
    """Start lines of the data records pyarrow keeps and of the ragged ones it skips, read as
    pyarrow reads (the header's field count decides; blank lines are not records)."""
    rows: list[int] = []
    ragged: list[int] = []
    with open(name, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        start = reader.line_num + 1
        for record in reader:
            if record:
                (rows if len(record) == len(header) else ragged).append(start)
            start = reader.line_num + 1
    return rows, ragged


@functools.lru_cache(maxsize=8)
def _jsonl_lines(name: str, size: int, mtime_ns: int) -> list[int]:
    """The line (from 1) of each row: blank lines are not rows."""
    with open(name, "rb") as handle:
        return [n for n, line in enumerate(handle, start=1) if line.strip()]


@dataclass(frozen=True)
class JsonLinesFile:
    name: str
    split: str | None
    format_name = "JSON lines"  # in messages (a class attribute, not a field)

    def line_of(self, row: int) -> int:
        return _jsonl_lines(*_file_key(self.name))[row]

    def column_names(self) -> list[str]:
        with open(self.name, "rb") as handle:
            return _field_names(map(_json_or_none, itertools.islice(handle, 100)))

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]:
        import pyarrow as pa
        import pyarrow.json as pjson

        done = 0
        try:
            reader = pjson.open_json(self.name,
                                     read_options=pjson.ReadOptions(block_size=BLOCK_BYTES))
            for batch in reader:
                n, have = batch.num_rows, batch.schema.names
                values = {c: batch.column(c).to_pylist() if c in have else [None] * n
                          for c in columns}
                yield Block(list(range(done, done + n)), values)
                done += n
        except pa.ArrowInvalid:  # mixed types, a malformed line, not UTF-8: line by line
            yield from self._lines(columns, size, skip=done)

    def _lines(self, columns: Sequence[str], size: int, skip: int) -> Iterator[Block]:
        rows: list[int] = []
        records: list[dict[str, Any]] = []
        replaced: list[bool] = []
        bad: list[Bad] = []
        with open(self.name, "rb") as handle:
            lines = ((n, line) for n, line in enumerate(handle, start=1) if line.strip())
            for row, (number, line) in enumerate(itertools.islice(lines, skip, None), skip):
                text, was_replaced = decode_text(line)
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as err:
                    bad.append((f"{self.name}:{number}",
                                f"malformed JSON ({json_problem(err, line=False)})"))
                    continue
                if not isinstance(record, dict):
                    bad.append((f"{self.name}:{number}", "not a JSON object"))
                    continue
                rows.append(row)
                records.append(record)
                replaced.append(was_replaced)
                if len(rows) >= size:
                    yield _record_block(columns, rows, records, replaced, bad)
                    rows, records, replaced, bad = [], [], [], []
        yield _record_block(columns, rows, records, replaced, bad)


@dataclass(frozen=True)
class JsonArrayFile:
    """A .json file holding one array of objects: read whole (a JSON array cannot be streamed
    with the standard library; a large corpus is better as JSON lines or Parquet)."""

    name: str
    split: str | None
    format_name = "a JSON array"  # in messages (a class attribute, not a field)

    def line_of(self, row: int) -> int:
        return _array_lines(*_file_key(self.name))[row]

    def _records(self) -> list[Any]:
        text, _ = decode_text(Path(self.name).read_bytes())
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise RvlError(f"{self.name}: malformed JSON ({json_problem(err)})") from err
        if not isinstance(records, list):
            raise RvlError(f"{self.name}: not a JSON array of objects (one object a line is "
                           "a .jsonl file, or --data-format jsonl)")
        return records

    def column_names(self) -> list[str]:
        return _field_names(self._records()[:100])

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]:
        records = self._records()
        for start in range(0, len(records), size):
            chunk = range(start, min(start + size, len(records)))
            rows = [row for row in chunk if isinstance(records[row], dict)]
            bad = [(row_place(self, row), f"a {type(records[row]).__name__}, not an object")
                   for row in chunk if not isinstance(records[row], dict)]
            yield _record_block(columns, rows, [records[row] for row in rows], None, bad)


def _record_block(columns: Sequence[str], rows: list[int], records: list[dict[str, Any]],
                  replaced: list[bool] | None, bad: list[Bad]) -> Block:
    return Block(rows, {c: [record.get(c) for record in records] for c in columns}, replaced,
                 tuple(bad))


def _field_names(records: Iterable[Any]) -> list[str]:
    """The fields of the JSON objects among ``records``, in order of first appearance."""
    return list(dict.fromkeys(name for r in records if isinstance(r, dict) for name in r))


def _json_or_none(line: bytes) -> Any:
    try:
        return json.loads(decode_text(line)[0])
    except json.JSONDecodeError:
        return None


@functools.lru_cache(maxsize=8)
def _array_lines(name: str, size: int, mtime_ns: int) -> list[int]:
    """The line (from 1) where each item of a JSON array file starts (read only to name a bad
    item: the file parsed whole before, so it parses again)."""
    text, _ = decode_text(Path(name).read_bytes())
    decoder, lines = json.JSONDecoder(), []
    at = text.index("[") + 1
    line, counted = 1, 0  # newlines are counted once, up to ``counted``
    while True:
        at = _SEPARATORS.match(text, at).end()
        if at >= len(text) or text[at] == "]":
            return lines
        line, counted = line + text.count("\n", counted, at), at
        lines.append(line)
        at = decoder.raw_decode(text, at)[1]

"""Predict's records: JSON lines on standard output, or ``-o PATH`` as .jsonl, .csv or .tsv.

``RecordWriter`` takes records in batches as the model produces them. On standard output each
batch is flushed at once; a file is written beside PATH and renamed over it only when the run
ends cleanly, so a crash, Ctrl-C or full disk leaves the previous PATH as it was.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rvl_llm.atomic import remove_stale_staging, staging_path
from rvl_llm.errors import RvlError

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv"}  # -o's suffix -> format
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_SUFFIXES = ", ".join(FORMATS)
# A spreadsheet runs a cell that starts with one of these as a formula ("=cmd|calc"): such a
# text cell gets a leading ' (shown as text, the OWASP advice). Numbers are ours and never do.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Control characters: csv quotes "\n" and the delimiter but not "\r" (a reader splits the row
# there) nor the others, so a row holding any of them is written with every cell quoted.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def output_format(path: Path | str | None) -> str:
    """The format ``-o PATH`` names by its suffix ("jsonl" for standard output, no PATH)."""
    if path is None:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RvlError(f"-o {path}: the file name must end in {_SUFFIXES} (it names the format)")
    return FORMATS[suffix]


def check_output(path: Path | str | None, inputs: Sequence[str] = ()) -> str:
    """Everything about ``-o PATH`` that can be checked before a model is loaded; its format.
    ``inputs``: the INPUT arguments; PATH must not replace one of them, nor land in a folder
    being read (the next run would read the predictions as documents)."""
    if path is None:
        return output_format(None)
    path = Path(path)
    _check_not_an_input(path, inputs)
    if path.is_dir():
        raise RvlError(f"-o {path}: is a folder; name a file ending in {_SUFFIXES}")
    format_name = output_format(path)
    folder = path.parent
    if not folder.exists():
        raise RvlError(f"-o {path}: no folder {folder}")
    if not folder.is_dir():
        raise RvlError(f"-o {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):  # the temporary file is created there
        raise RvlError(f"-o {path}: cannot write in the folder {folder} (permission denied)")
    return format_name


def _check_not_an_input(path: Path, inputs: Sequence[str]) -> None:
    real = os.path.realpath(path)  # follows a symbolic link to an input
    for given in inputs:
        if given == "-" or not os.path.exists(given):
            continue  # a missing INPUT is named when it is read
        if real == os.path.realpath(given) or (
                path.exists() and os.path.samefile(path, given)):  # a hard link too
            raise RvlError(f"-o {path}: is the INPUT {given}; predictions would replace the "
                           "documents; name another output file")
        if os.path.isdir(given) and os.path.dirname(real) == os.path.realpath(given):
            raise RvlError(f"-o {path}: is inside the INPUT folder {given}, which is being read;"
                           " write the predictions outside it")


def csv_header(top_k: int) -> list[str]:
    """``id,label,probability,truncated,top1,top1_probability,...,topK,topK_probability``."""
    ranked = [name for k in range(1, top_k + 1) for name in (f"top{k}", f"top{k}_probability")]
    return ["id", "label", "probability", "truncated", *ranked]


def csv_row(record: dict[str, Any], top_k: int) -> list[str]:
    """One record as the header's cells: the first ``top_k`` ranked entries, empty cells for a
    record with fewer (a label set smaller than K)."""
    # An abstention (--min-probability) has no label: an empty cell, as JSON's null.
    label = "" if record["label"] is None else safe_cell(record["label"])
    row = [safe_cell(record["id"]), label,
           _probability(record["probability"]),
           "true" if record["truncated"] else "false"]  # as JSON writes it
    ranked = record["top_k"][:top_k]
    for entry in ranked:
        row += [safe_cell(entry["label"]), _probability(entry["probability"])]
    return row + [""] * (2 * (top_k - len(ranked)))


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``, tab or
    carriage return gets a ``'`` before it."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _probability(value: float) -> str:
    return f"{value:.6g}"  # 6 significant digits: a small probability keeps its digits too


class RecordWriter:
    """``with RecordWriter(path, top_k=3) as out: out.write(batch)``; ``path=None`` writes JSON
    lines to standard output. ``written`` counts the records written so far.

    Any OSError (a full disk, a closed pipe) becomes one ``RvlError`` line naming ``-o PATH``
    (or standard output); an exception out of the ``with`` block removes the temporary file.
    """

    def __init__(
        self, path: Path | str | None, *, top_k: int, stdout: IO[str] | None = None
    ) -> None:
        self.path = None if path is None else Path(path)
        self.format = output_format(self.path)
        self.top_k = top_k
        self.written = 0
        self._stdout = stdout  # None: sys.stdout when the writer opens (CliRunner swaps it)
        self._out: IO[str] | None = None
        self._temp: Path | None = None
        self._write_row: Callable[[Iterable[Any]], Any] | None = None  # csv and tsv only
        self._write_quoted: Callable[[Iterable[Any]], Any] | None = None  # every cell quoted
        self.removed_stale: list[Path] = []  # staging files of killed earlier runs, removed

    def __enter__(self) -> RecordWriter:
        if self.path is None:
            self._out = sys.stdout if self._stdout is None else self._stdout
            return self
        # A killed run (kill -9 skips every cleanup) left its temporary file; its pid says so.
        self.removed_stale = remove_stale_staging(self.path)
        # Beside PATH: the same file system, so the final rename is atomic.
        self._temp = staging_path(self.path)
        try:
            # backslashreplace: an id with bytes that are not UTF-8 (a file name from an old
            # system) must not end a long run, and with it every record written so far.
            self._out = open(  # closed in __exit__, once the records are in
                self._temp, "w", encoding="utf-8", errors="backslashreplace", newline="")
            if self.format in _DELIMITERS:
                writer = partial(csv.writer, self._out, delimiter=_DELIMITERS[self.format],
                                 lineterminator="\n")
                self._write_row = writer().writerow  # quotes only the fields that need it
                self._write_quoted = writer(quoting=csv.QUOTE_ALL).writerow
                self._write_row(csv_header(self.top_k))
        except OSError as err:
            self._discard()
            raise self._error(err) from err
        return self

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Write one batch; to standard output it is flushed before this returns."""
        if self._out is None:
            raise RuntimeError("RecordWriter.write outside its with block")
        try:
            if self._write_row is None:
                # ASCII JSON escapes keep any id writable whatever the terminal's encoding.
                self._out.write("".join(json.dumps(record) + "\n" for record in records))
            else:
                assert self._write_quoted is not None
                for record in records:
                    row = csv_row(record, self.top_k)
                    quoted = any(_CONTROL.search(cell) for cell in row)
                    (self._write_quoted if quoted else self._write_row)(row)
            if self.path is None:
                self._out.flush()
        except OSError as err:
            raise self._error(err) from err
        self.written += len(records)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.path is None:
            return  # standard output is the caller's; each batch is flushed already
        try:
            if exc_type is None:
                assert self._out is not None and self._temp is not None
                self._out.close()  # flushes: a full disk may only show here
                os.replace(self._temp, self.path)
        except OSError as err:
            raise self._error(err) from err
        finally:
            self._discard()

    def _discard(self) -> None:
        """Close and remove the temporary file (a no-op once it is renamed into place)."""
        if self._out is not None:
            with contextlib.suppress(OSError):  # the flush of a full disk fails again
                self._out.close()
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink(missing_ok=True)

    def _error(self, err: OSError) -> RvlError:
        where = "standard output" if self.path is None else f"-o {self.path}"
        return RvlError(f"{where}: cannot write ({err.strerror or err})")

"""Predict's inputs, read in the order given, one document at a time, through prepare's readers.

An INPUT is a file, a folder of files (not recursive, sorted by name; other files are ignored) or
``-`` (JSON lines on standard input). A file is an OCR JSON document (one object), a table of
documents (JSON lines, CSV, Parquet: one document a row), a ``.txt`` file (the whole file is the
text) or a scan (an image or a PDF, OCR'd on the fly as ``rvl-llm ocr`` would). A file name
carries no split and no label. Texts and ids follow prepare's rules (``pipeline.corpus``), so a
document gets the same id from predict, prepare, eval and a split file. What is predict's alone
lives here: standard input, ``.txt``, scans, and bounded reads (a file that never ends).

``iter_inputs`` yields each document as it is read, so memory stays flat (only a folder's names
are held). A bad input is yielded as a ``BadInput`` in its place: the caller decides whether it
stops the run or is skipped.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rvl_llm.errors import RvlError
from rvl_llm.ocr.config import OcrSettings
from rvl_llm.ocr.documents import find_ocr_settings, ocr_file
from rvl_llm.ocr.pages import DOCUMENT_SUFFIXES
from rvl_llm.pipeline.corpus import (
    TABLE_SUFFIXES,
    TEXT_FIELDS,
    BadRecord,
    decode_text,
    parse_document,
    read_problem,
)
from rvl_llm.pipeline.tables import UnlabelledRow, read_unlabelled

STDIN = "-"
# Bytes read of one .txt file, .json file or JSON line, at most: a file that never ends (a link to
# /dev/zero) must not exhaust memory. Far beyond any max-len: a .txt past it is cut (and says
# so); a .json file or a line past it cannot be parsed from a prefix and is a bad input.
MAX_DOCUMENT_BYTES = 16 << 20
LINES_SUFFIXES = tuple(s for s, kind in TABLE_SUFFIXES.items() if kind == "jsonl")
# Tables read by prepare's table layer (a .json file is one document here, as in a folder).
TABLE_KINDS = {s: kind for s, kind in TABLE_SUFFIXES.items() if kind not in ("json", "jsonl")}
FILE_KINDS = (".json", *LINES_SUFFIXES, *TABLE_KINDS, ".txt", *DOCUMENT_SUFFIXES)
KINDS_PHRASE = ".json, .txt, .jsonl, .csv, .parquet, image or .pdf"
TEXT_FIELD_HELP = (
    "The field (or column) that holds the text, in .json files, .jsonl lines, tables and "
    f"standard input (default: {', else '.join(json.dumps(f) for f in TEXT_FIELDS)})."
)


@dataclass(frozen=True)
class InputDocument:
    id: str  # the document's "id", else "path", else its name or row number (module doc)
    text: str
    source: str  # "path" or "path:LINE" ("-:LINE" for standard input): where it came from
    replaced_utf8: bool = False  # bytes that were not UTF-8 were replaced, as prepare counts
    cut: bool = False  # a .txt longer than MAX_DOCUMENT_BYTES: only its start was read


@dataclass(frozen=True)
class BadInput:
    source: str  # the file, folder or "file:LINE" that could not be used
    reason: str  # one line

    @property
    def message(self) -> str:
        return f"{self.source}: {self.reason}"


Item = InputDocument | BadInput


def no_documents(inputs: Sequence[str]) -> RvlError:
    """The error of inputs that hold no document at all (the command and the API say it alike)."""
    return RvlError(f"INPUT {' '.join(inputs)}: no documents (empty files or folders)")


def iter_inputs(
    inputs: Sequence[str], *, text_field: str | None = None, stdin: IO[str] | None = None,
    ocr_data: Path | str | None = None,
) -> Iterator[Item]:
    """Every document of ``inputs``, in order, or a ``BadInput`` in the place of each bad one.

    Usage errors (no INPUT, ``-`` twice, an empty ``text_field``) raise ``RvlError`` here, at the
    call, before anything is read; everything about the inputs' content is yielded, lazily.
    ``stdin`` defaults to ``sys.stdin`` (read as bytes when it has a buffer, so invalid UTF-8 is
    replaced as in files rather than an error). ``ocr_data``: the training data, whose OCR
    manifest gives a scan's engine settings (read at the first scan; none: the defaults).
    """
    if not inputs:
        raise RvlError("no INPUT: name files, folders, or - for JSON lines on standard input")
    if list(inputs).count(STDIN) > 1:
        raise RvlError("INPUT - is given more than once: standard input can be read only once")
    if text_field is not None and not text_field.strip():
        raise RvlError("--text-field: the field name is empty")
    # The training data's OCR settings, found once and only when a scan needs them.
    settings = functools.cache(lambda: None if ocr_data is None else find_ocr_settings(ocr_data))
    reader = _Reader(TEXT_FIELDS if text_field is None else (text_field,), settings)
    return reader.all(list(inputs), sys.stdin if stdin is None else stdin)


@dataclass(frozen=True)
class _Reader:
    fields: tuple[str, ...]
    scan_settings: Callable[[], OcrSettings | None]

    def all(self, inputs: list[str], stdin: IO[str]) -> Iterator[Item]:
        for given in inputs:
            if given == STDIN:
                yield from self.lines(getattr(stdin, "buffer", stdin), STDIN)
            else:
                yield from self.path(given)

    def path(self, path: str) -> Iterator[Item]:
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            missing = isinstance(err, FileNotFoundError) and not os.path.islink(path)
            yield BadInput(path, "no such file or folder" if missing else read_problem(path, err))
            return
        if stat.S_ISDIR(mode):
            yield from self.folder(path)
            return
        if _kind(path) is None:
            extension = os.path.splitext(path)[1]
            what = f"unknown extension {extension!r}" if extension else "no extension"
            yield BadInput(path, f"{what} (an INPUT file is {KINDS_PHRASE})")
            return
        yield from self.file(path, path)

    def folder(self, folder: str) -> Iterator[Item]:
        try:
            names = _folder_files(folder)
        except OSError as err:
            yield BadInput(folder, f"cannot list the folder ({err.strerror or err})")
            return
        if not names:  # a wrong folder should not pass as "no documents"
            yield BadInput(folder, f"the folder holds no {KINDS_PHRASE} files")
        for name in names:  # a file's id in a folder is its name, as prepare's
            yield from self.file(os.path.join(folder, name), name)

    def file(self, path: str, default_id: str) -> Iterator[Item]:
        """The documents of one file whose extension is one of ``FILE_KINDS``."""
        kind = _kind(path)
        if kind in LINES_SUFFIXES:
            yield from self.jsonl(path)
        elif kind in TABLE_KINDS:
            for row in read_unlabelled(path, TABLE_KINDS[kind], self.fields):
                if isinstance(row, UnlabelledRow):
                    yield InputDocument(row.id, row.text, row.where, row.replaced)
                else:
                    yield BadInput(*row)
        elif kind in DOCUMENT_SUFFIXES:
            yield self.scan(path, default_id)
        else:
            yield self.whole(path, default_id, kind == ".txt")

    def scan(self, path: str, default_id: str) -> Item:
        """An image or PDF, OCR'd exactly as ``rvl-llm ocr`` writes its "ocr" text."""
        try:
            return InputDocument(default_id, ocr_file(path, self.scan_settings()), path)
        except RvlError as err:
            return BadInput(path, err.message.removeprefix(f"{path}: "))
        except Exception as err:  # an engine failing on one page costs that scan, not the run
            return BadInput(path, f"the OCR engine failed ({type(err).__name__}: {err})")

    def whole(self, path: str, default_id: str, is_text: bool) -> Item:
        """A .txt file (the text) or a .json file (one document)."""
        try:
            with open(path, "rb") as file:
                raw = file.read(MAX_DOCUMENT_BYTES + 1)  # one byte more tells a cut from a fit
        except OSError as err:
            return BadInput(path, read_problem(path, err))
        cut = len(raw) > MAX_DOCUMENT_BYTES
        if cut and not is_text:
            return BadInput(path, f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB (a .json file is "
                                  "read whole); put the text in a .txt file, which is cut")
        text, replaced = decode_text(_whole_characters(raw[:MAX_DOCUMENT_BYTES]) if cut else raw)
        if is_text:
            return InputDocument(default_id, text, path, replaced, cut)
        return self.document(text, default_id, path, replaced, line=True)

    def jsonl(self, path: str) -> Iterator[Item]:
        try:
            file = open(path, "rb")  # noqa: SIM115 - the with below closes it; open's error is ours
        except OSError as err:
            yield BadInput(path, read_problem(path, err))
            return
        with file:
            yield from self.lines(file, path)

    def lines(self, stream: IO[bytes] | IO[str], name: str) -> Iterator[Item]:
        """One document a non-empty line, its id by default its row number as the table layer
        counts (from 0, blank lines not counted); each line is decoded alone, so a bad byte or a
        malformed line costs that line only. Read here, not by pyarrow: standard input, and a
        line that never ends stops at MAX_DOCUMENT_BYTES."""
        number, row = 0, 0
        try:
            while line := stream.readline(MAX_DOCUMENT_BYTES + 1):  # a longer one: stop, below
                number += 1
                if len(line) > MAX_DOCUMENT_BYTES:  # a line that never ends: stop the file here
                    yield BadInput(f"{name}:{number}", f"a line longer than "
                                   f"{MAX_DOCUMENT_BYTES >> 20} MiB; the rest of {name} is not "
                                   "read")
                    return
                text, replaced = decode_text(line) if isinstance(line, bytes) else (line, False)
                if not text.strip():
                    continue
                yield self.document(text, str(row), f"{name}:{number}", replaced, line=False)
                row += 1
        except OSError as err:  # a disk or pipe failing midway: the lines read so far stand
            yield BadInput(name, f"cannot read after line {number} ({err.strerror or err})")

    def document(self, text: str, default_id: str, source: str, replaced: bool, *,
                 line: bool) -> Item:
        try:
            doc_id, body = parse_document(text, self.fields, default_id, line=line)
        except BadRecord as err:
            return BadInput(source, str(err))
        return InputDocument(doc_id, body, source, replaced)


def _folder_files(folder: str) -> list[str]:
    """The names of the folder's input files, sorted; sub-folders are not entered."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if _kind(e.name) and not _is_folder(e))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symbolic links
    except OSError:
        return False  # then reading it names the problem


def _kind(name: str) -> str | None:
    extension = os.path.splitext(name)[1].lower()
    return extension if extension in FILE_KINDS else None


def _whole_characters(raw: bytes) -> bytes:
    """``raw`` less a UTF-8 character that a cut split (it would count as replaced bytes)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    decoder.decode(raw[-4:])  # a character cut at the end stays in the decoder's buffer
    return raw[: len(raw) - len(decoder.getstate()[0])]

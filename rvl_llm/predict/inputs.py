"""Predict's inputs, read in the order given, one document at a time.

An INPUT is an OCR JSON file (one object, text in ``"ocr"``), a ``.txt`` file (the whole file is
the text), a ``.jsonl`` file (one object a line), a folder of such files (not recursive, sorted
by name; other files are ignored) or ``-`` (JSON lines on standard input). Unlike prepare, a file
name carries no split and no label.

``iter_inputs`` yields each document as it is read, so a folder of 400k files or a jsonl of a
million lines keeps memory flat (only a folder's names are held). A bad input is yielded as a
``BadInput`` in its place: the caller decides whether it stops the run or is skipped.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.corpus import decode_text, json_problem
from rvl_llm.pipeline.ids import id_text

STDIN = "-"
# Bytes read of one .txt file, .json file or JSON line, at most: a file that never ends (a link to
# /dev/zero) must not exhaust memory. Far beyond any max-len: a .txt past it is cut (and says
# so); a .json file or a line past it cannot be parsed from a prefix and is a bad input.
MAX_DOCUMENT_BYTES = 16 << 20
DEFAULT_TEXT_FIELDS = ("ocr", "text")  # tried in this order when --text-field is not given
FILE_KINDS = (".json", ".jsonl", ".txt")
TEXT_FIELD_HELP = (
    "The JSON field that holds the text, in .json files, .jsonl lines and standard input "
    f"(default: {', else '.join(json.dumps(field) for field in DEFAULT_TEXT_FIELDS)})."
)
# JSON's own names: the person who wrote the file may never have seen Python.
_JSON_TYPES: dict[type, str] = {
    dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
    bool: "a boolean", type(None): "null",
}


@dataclass(frozen=True)
class InputDocument:
    id: str  # the object's "id", else the path as given, else "path:LINE" for a JSON line
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


def text_fields(text_field: str | None) -> tuple[str, ...]:
    """The fields tried, in order: only ``--text-field`` when given, else "ocr" then "text"."""
    if text_field is None:
        return DEFAULT_TEXT_FIELDS
    if not text_field.strip():
        raise RvlError("--text-field: the field name is empty")
    return (text_field,)


def fields_phrase(fields: Sequence[str]) -> str:
    """``"ocr" or "text"``: the fields tried, as a message names them."""
    quoted = [f'"{field}"' for field in fields]
    return " or ".join(quoted) if len(quoted) <= 2 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def iter_inputs(
    inputs: Sequence[str], *, text_field: str | None = None, stdin: IO[str] | None = None
) -> Iterator[Item]:
    """Every document of ``inputs``, in order, or a ``BadInput`` in the place of each bad one.

    Usage errors (no INPUT, ``-`` twice, an empty ``text_field``) raise ``RvlError`` here, at the
    call, before anything is read; everything about the inputs' content is yielded, lazily.
    ``stdin`` defaults to ``sys.stdin`` (read as bytes when it has a buffer, so invalid UTF-8 is
    replaced as in files rather than an error).
    """
    if not inputs:
        raise RvlError("no INPUT: name files, folders, or - for JSON lines on standard input")
    if list(inputs).count(STDIN) > 1:
        raise RvlError("INPUT - is given more than once: standard input can be read only once")
    fields = text_fields(text_field)
    return _iter_all(list(inputs), fields, sys.stdin if stdin is None else stdin)


def _iter_all(inputs: list[str], fields: tuple[str, ...], stdin: IO[str]) -> Iterator[Item]:
    for given in inputs:
        if given == STDIN:
            lines: Iterable[bytes | str] = getattr(stdin, "buffer", stdin)
            yield from _iter_lines(lines, STDIN, fields)
        else:
            yield from _iter_path(given, fields)


def _iter_path(path: str, fields: tuple[str, ...]) -> Iterator[Item]:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if isinstance(err, FileNotFoundError) and not os.path.islink(path):
            yield BadInput(path, "no such file or folder")
        else:
            yield BadInput(path, _read_problem(path, err))
        return
    if stat.S_ISDIR(mode):
        yield from _iter_folder(path, fields)
        return
    if _kind(path) is None:
        extension = os.path.splitext(path)[1]
        what = f"unknown extension {extension!r}" if extension else "no extension"
        yield BadInput(path, f"{what} (an INPUT file is .json, .jsonl or .txt)")
        return
    yield from _iter_file(path, fields)


def _iter_folder(folder: str, fields: tuple[str, ...]) -> Iterator[Item]:
    try:
        names = _folder_files(folder)
    except OSError as err:
        yield BadInput(folder, f"cannot list the folder ({err.strerror or err})")
        return
    if not names:  # a wrong folder should not pass as "no documents"
        yield BadInput(folder, "the folder holds no .json, .jsonl or .txt files")
    for name in names:
        yield from _iter_file(os.path.join(folder, name), fields)


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


def _iter_file(path: str, fields: tuple[str, ...]) -> Iterator[Item]:
    """The documents of one file whose extension is one of ``FILE_KINDS``."""
    kind = _kind(path)
    if kind == ".jsonl":
        yield from _iter_jsonl(path, fields)
        return
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_DOCUMENT_BYTES + 1)  # one byte more tells a cut from a fit
    except OSError as err:
        yield BadInput(path, _read_problem(path, err))
        return
    cut = len(raw) > MAX_DOCUMENT_BYTES
    if cut and kind != ".txt":
        yield BadInput(path, f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB (a .json file is "
                             "read whole); put the text in a .txt file, which is cut")
        return
    text, replaced = decode_text(_whole_characters(raw[:MAX_DOCUMENT_BYTES]) if cut else raw)
    if kind == ".txt":
        yield InputDocument(path, text, path, replaced, cut)
    else:
        yield _document(text, fields, default_id=path, source=path, line=True,
                        replaced=replaced)


def _whole_characters(raw: bytes) -> bytes:
    """``raw`` less a UTF-8 character that a cut split (it would count as replaced bytes)."""
    for back in range(1, min(4, len(raw)) + 1):
        byte = raw[-back]
        if byte < 0x80:
            return raw
        if byte >= 0xC0:  # a lead byte: its sequence is 2, 3 or 4 bytes long
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return raw[:-back] if length > back else raw
    return raw


def _iter_jsonl(path: str, fields: tuple[str, ...]) -> Iterator[Item]:
    try:
        file = open(path, "rb")  # noqa: SIM115 - the with below closes it; open's error is ours
    except OSError as err:
        yield BadInput(path, _read_problem(path, err))
        return
    with file:
        yield from _iter_lines(file, path, fields)


def _iter_lines(lines: Iterable[bytes | str], name: str, fields: tuple[str, ...]) -> Iterator[Item]:
    """One document a non-empty line; each line is decoded alone, so a bad byte or a malformed
    line costs that line only."""
    number = 0
    try:
        for number, line in enumerate(_bounded_lines(lines), start=1):
            if len(line) > MAX_DOCUMENT_BYTES:  # a line that never ends: stop the file here
                yield BadInput(f"{name}:{number}", f"a line longer than "
                               f"{MAX_DOCUMENT_BYTES >> 20} MiB; the rest of {name} is not read")
                return
            text, replaced = decode_text(line) if isinstance(line, bytes) else (line, False)
            if not text.strip():
                continue
            source = f"{name}:{number}"
            yield _document(text, fields, default_id=source, source=source, line=False,
                            replaced=replaced)
    except OSError as err:  # a disk or pipe failing midway: the lines read so far stand
        yield BadInput(name, f"cannot read after line {number} ({err.strerror or err})")


def _bounded_lines(lines: Iterable[bytes | str]) -> Iterator[bytes | str]:
    """The lines of a file or stream, each read up to ``MAX_DOCUMENT_BYTES + 1`` (a longer one
    is yielded at that length, and the caller stops)."""
    readline = getattr(lines, "readline", None)
    if readline is None:  # a plain iterable of lines (tests): already in memory
        yield from lines
        return
    while line := readline(MAX_DOCUMENT_BYTES + 1):
        yield line


def _document(
    text: str, fields: tuple[str, ...], *, default_id: str, source: str, line: bool,
    replaced: bool = False,
) -> Item:
    """The document in one JSON object's text; the first of ``fields`` present is its text."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as err:
        return BadInput(source, f"malformed JSON ({json_problem(err, line=line)})")
    if not isinstance(data, dict):
        return BadInput(source, f"{_json_type(data)}, not a JSON object")
    for field in fields:
        if field in data:
            value = data[field]
            if not isinstance(value, str):
                return BadInput(source, f'the "{field}" field is {_json_type(value)}, '
                                        "not a string")
            doc_id = data.get("id")
            return InputDocument(default_id if doc_id is None else id_text(doc_id), value,
                                 source, replaced)
    return BadInput(source, f"no {fields_phrase(fields)} field")


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _read_problem(path: str, err: OSError) -> str:
    if isinstance(err, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return f"cannot read ({err.strerror or err})"

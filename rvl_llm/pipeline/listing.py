"""What every document source shares, and nothing else: the listing types, split names and the
names of inputs (``hf:NAME``, table suffixes). A leaf module: the config, the sources and the
OCR stage import it, it imports none of them, so no import cycle can run through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from rvl_llm.pipeline.corpus import Document

HUB_PREFIX = "hf:"
TABLE_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                  ".parquet": "parquet"}
# Split names of other datasets -> ours.
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation",
               "valid": "validation", "dev": "validation", "test": "test"}

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


def is_hub(data: Path | str) -> bool:
    return str(data).startswith(HUB_PREFIX)


def resolved_data(data: Path) -> Path:
    """``data`` made absolute, except ``hf:NAME`` (a dataset name, not a path)."""
    return data if is_hub(data) else data.resolve()


def our_split(name: str) -> str | None:
    return SPLIT_NAMES.get(name.strip().lower())


def split_choices() -> str:
    return "train; validation, val, dev; test"


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

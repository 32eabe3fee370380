"""Where prepare's documents come from: a folder of OCR JSON files, table files, or a Hugging
Face ``datasets`` dataset, behind one small interface.

A source lists each split cheaply first (per document a selection key and a class index; bad
entries found on the way), then reads only the documents selected from that listing, a chunk at a
time. ``key_data`` is the source's part of the cache key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.cache import data_fingerprint
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import (  # noqa: F401 - re-exported: a source's whole interface
    HUB_PREFIX,
    TABLE_SUFFIXES,
    Bad,
    BadFile,
    DocChunk,
    Entry,
    Listing,
    SplitFiles,
    file_id,
    is_hub,
    our_split,
    read_document,
    resolved_data,
    scan_folder,
    split_files,
)
from rvl_llm.pipeline.hf_datasets import open_dataset
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.pipeline.tables import open_tables


class Source(Protocol):
    kind: str  # DATA_FORMATS
    unit: str  # "files" or "rows": what --skip-bad-rows/--skip-bad-files skips here
    labels: tuple[str, ...]

    def key_data(self) -> dict[str, Any]: ...

    def list_splits(self, splits: Sequence[str]) -> dict[str, Listing]: ...

    def read(self, split: str, entries: Sequence[Entry], chunk_size: int) -> Iterator[DocChunk]:
        """The documents of ``entries`` and the bad ones among them, a chunk at a time."""

    def doc_ids(self, entries: Sequence[Entry]) -> list[str]:
        """Each entry's document id, as prepare writes it (a split file may list it)."""


def _guess_format(cfg: PrepareConfig) -> tuple[str, list[str] | None]:
    """What --data is, from the path (``--data-format`` overrides the guess), and the folder's
    entry names when guessing listed them (a 400k-file folder is listed once, not twice)."""
    data = cfg.data_dir
    if cfg.data_format is not None:
        return cfg.data_format, None
    if is_hub(data):
        return "datasets", None
    if cfg.data_files:
        return _one_table_format([Path(spec.partition("=")[2]) for spec in cfg.data_files],
                                 "--data-files"), None
    if data.is_file():
        return _one_table_format([data], "--data"), None
    if not data.is_dir():
        raise RvlError(f"--data {data}: no such folder or file")
    if (data / "dataset_dict.json").is_file() or (data / "state.json").is_file():
        return "datasets", None
    # .json files in a folder are OCR documents; a folder of .json arrays needs --data-format.
    # Names, not a Path per file: at 400k files that would cost more than a cache hit's stats.
    kinds = TABLE_SUFFIXES.keys() - {".json"}
    names = os.listdir(data)
    others = [name for name in names if not name.endswith(".json")]
    tables = [data / name for name in others if os.path.splitext(name)[1].lower() in kinds]
    if tables:
        return _one_table_format(tables, f"--data {data}"), None
    return "folder", names


def _one_table_format(paths: Sequence[Path], what: str) -> str:
    kinds = set()
    for path in paths:
        kind = TABLE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise RvlError(f"{what}: {path}: unknown format {path.suffix or '(no suffix)'!r} "
                           f"(choose from {', '.join(TABLE_SUFFIXES)}, or --data-format)")
        kinds.add(kind)
    if len(kinds) > 1:
        raise RvlError(f"{what}: files of several formats ({', '.join(sorted(kinds))}); "
                       "use one, or --data-format")
    return kinds.pop()


def open_source(cfg: PrepareConfig) -> Source:
    """The source ``cfg`` names; nothing but its listing's metadata is read yet."""
    kind, names = _guess_format(cfg)
    if kind == "folder":
        return FolderSource(cfg, names)
    if kind == "datasets":
        return open_dataset(cfg)
    return open_tables(cfg, kind)


class FolderSource:
    """Today's layout: one OCR JSON file per document, split by name prefix, label in the name."""

    kind = "folder"
    unit = "files"

    def __init__(self, cfg: PrepareConfig, names: list[str] | None = None) -> None:
        """``names``: the folder's entries, when the caller listed it already."""
        for option, given in (("--text-column", cfg.text_column is not None),
                              ("--label-column", cfg.label_column != "label"),
                              ("--id-column", cfg.id_column != "id"),
                              ("--data-files", bool(cfg.data_files))):
            if given:
                raise RvlError(f"{option}: applies to table files and datasets, not to a folder "
                               f"of OCR JSON files (--data {cfg.data_dir})")
        self.cfg = cfg
        self.labels = cfg.label_names()
        folder, names = scan_folder(cfg.data_dir, names)  # resolved paths: they key the cache
        # Columns per split, no object per file: a hit needs only the key and the bad entries.
        self.splits: dict[str, SplitFiles] = {
            split: split_files(folder, names, cfg.prefix(split), cfg.suffix) for split in SPLITS
        }

    def key_data(self) -> dict[str, Any]:
        # Byte for byte what prepare keyed folders with before other sources existed.
        return {
            "dir": str(self.cfg.data_dir.resolve()),
            "prefixes": {s: self.cfg.prefix(s) for s in SPLITS},
            "suffix": self.cfg.suffix,
            "files": {s: len(self.splits[s].names) for s in SPLITS},
            "fingerprint": data_fingerprint(self.splits),
        }

    def bad_entries(self, splits: Sequence[str]) -> dict[str, list[Bad]]:
        """Each split's bad entries (a name without a label, a missing file, a label outside
        the set) without listing its documents: all a cache hit checks of a folder."""
        top = len(self.labels) - 1
        found = {}
        for split in splits:
            files = self.splits[split]
            if not files.names and not files.bad:
                raise RvlError(
                    f"--data {self.cfg.data_dir}: no files for split {split!r} "
                    f"(expected {self.cfg.prefix(split)}*_<label>{self.cfg.suffix}.json)"
                )
            bad = [(str(path), reason) for path, reason in files.bad]
            if files.labels and max(files.labels) > top:  # rare: the scan only when needed
                bad += [(files.base + name, f"label {label} is outside the label set (0..{top}, "
                                            "see --labels)")
                        for name, label in zip(files.names, files.labels, strict=True)
                        if label > top]
            found[split] = bad
        return found

    def list_splits(self, splits: Sequence[str]) -> dict[str, Listing]:
        bad = self.bad_entries(splits)
        top = len(self.labels) - 1
        listings = {}
        for split in splits:
            entries = [Entry(f.path.rpartition(os.sep)[2], f.label, f)
                       for f in self.splits[split].files() if f.label <= top]
            listings[split] = Listing(entries, bad[split])
        return listings

    def doc_ids(self, entries: Sequence[Entry]) -> list[str]:
        return [file_id(entry.ref) for entry in entries]  # read: the id is inside the file

    def read(self, split: str, entries: Sequence[Entry], chunk_size: int) -> Iterator[DocChunk]:
        for start in range(0, len(entries), chunk_size):
            docs, bad = [], []
            for entry in entries[start : start + chunk_size]:
                try:
                    docs.append(read_document(entry.ref))
                except BadFile as err:
                    bad.append((str(err.path), err.reason))
            yield docs, bad

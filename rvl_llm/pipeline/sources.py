"""Where prepare's documents come from: a folder of OCR JSON files, table files, or a Hugging
Face ``datasets`` dataset, behind one small interface.

A source lists each split cheaply first (per document a selection key and a class index; bad
entries found on the way), then reads only the documents selected from that listing, a chunk at a
time. ``key_data`` is the source's part of the cache key: for a folder exactly what it has always
been, so existing entries keep their keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.cache import data_fingerprint
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import (
    BadFile,
    SourceFile,
    file_id,
    read_document,
    scan_folder,
    split_files,
)
from rvl_llm.pipeline.hf_datasets import open_dataset
from rvl_llm.pipeline.listing import (  # noqa: F401 - re-exported: a source's whole interface
    HUB_PREFIX,
    TABLE_SUFFIXES,
    Bad,
    DocChunk,
    Entry,
    Listing,
    is_hub,
    our_split,
    resolved_data,
    split_choices,
)
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.pipeline.tables import open_tables


class Source(Protocol):
    kind: str  # DATA_FORMATS
    unit: str  # "files" or "rows": what --skip-bad-rows/--skip-bad-files skips here
    labels: tuple[str, ...]

    def key_data(self) -> dict[str, Any]: ...

    def list_splits(self, splits: Sequence[str]) -> dict[str, Listing]: ...

    def read(self, split: str, entries: Sequence[Entry], chunk_size: int) -> Iterator[DocChunk]:
        ...

    def doc_ids(self, entries: Sequence[Entry]) -> list[str]:
        """Each entry's document id, as prepare writes it (a split file may list it)."""
        ...


def guess_format(cfg: PrepareConfig) -> str:
    """What --data is, from the path (``--data-format`` overrides the guess)."""
    data = cfg.data_dir
    if cfg.data_format is not None:
        return cfg.data_format
    if is_hub(data):
        return "datasets"
    if cfg.data_files:
        return _one_table_format([Path(spec.partition("=")[2]) for spec in cfg.data_files],
                                 "--data-files")
    if data.is_file():
        kind = TABLE_SUFFIXES.get(data.suffix.lower())
        if kind is None:
            raise RvlError(f"--data {data}: unknown format {data.suffix or '(no suffix)'!r} "
                           f"(a folder, {', '.join(TABLE_SUFFIXES)}, or --data-format)")
        return kind
    if not data.is_dir():
        raise RvlError(f"--data {data}: no such folder or file")
    if (data / "dataset_dict.json").is_file() or (data / "state.json").is_file():
        return "datasets"
    # .json files in a folder are OCR documents; a folder of .json arrays needs --data-format.
    # Names, not a Path per file: at 400k files that would cost more than a cache hit's stats.
    kinds = TABLE_SUFFIXES.keys() - {".json"}
    others = [name for name in os.listdir(data) if not name.endswith(".json")]
    tables = [data / name for name in others if os.path.splitext(name)[1].lower() in kinds]
    if tables:
        return _one_table_format(tables, f"--data {data}")
    return "folder"


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
    kind = guess_format(cfg)
    if kind == "folder":
        return FolderSource(cfg)
    if kind == "datasets":
        return open_dataset(cfg)
    return open_tables(cfg, kind)


class FolderSource:
    """Today's layout: one OCR JSON file per document, split by name prefix, label in the name."""

    kind = "folder"
    unit = "files"

    def __init__(self, cfg: PrepareConfig) -> None:
        for option, given in (("--text-column", cfg.text_column is not None),
                              ("--label-column", cfg.label_column != "label"),
                              ("--id-column", cfg.id_column != "id"),
                              ("--data-files", bool(cfg.data_files))):
            if given:
                raise RvlError(f"{option}: applies to table files and datasets, not to a folder "
                               f"of OCR JSON files (--data {cfg.data_dir})")
        self.cfg = cfg
        self.labels = cfg.label_names()
        folder, names = scan_folder(cfg.data_dir)  # resolved paths: they key the cache
        self.files: dict[str, list[SourceFile]] = {}
        self.bad_names: dict[str, list[Bad]] = {}
        for split in SPLITS:
            files, bad = split_files(folder, names, cfg.prefix(split), cfg.suffix)
            self.files[split] = files
            self.bad_names[split] = [(str(p), reason) for p, reason in bad]

    def key_data(self) -> dict[str, Any]:
        # Byte for byte what prepare keyed folders with before other sources existed.
        bad = {s: [(Path(p), r) for p, r in self.bad_names[s]] for s in SPLITS}
        return {
            "dir": str(self.cfg.data_dir.resolve()),
            "prefixes": {s: self.cfg.prefix(s) for s in SPLITS},
            "suffix": self.cfg.suffix,
            "files": {s: len(self.files[s]) for s in SPLITS},
            "fingerprint": data_fingerprint(self.files, bad),
        }

    def list_splits(self, splits: Sequence[str]) -> dict[str, Listing]:
        listings = {}
        top = len(self.labels) - 1
        for split in splits:
            if not self.files[split] and not self.bad_names[split]:
                raise RvlError(
                    f"--data {self.cfg.data_dir}: no files for split {split!r} "
                    f"(expected {self.cfg.prefix(split)}*_<label>{self.cfg.suffix}.json)"
                )
            files = self.files[split]
            # Comprehensions, not appends: a cache hit lists every file of every split.
            outside = [(f.path, f"label {f.label} is outside the label set (0..{top}, see "
                                "--labels)") for f in files if f.label > top]
            entries = [Entry(f.path.rpartition(os.sep)[2], f.label, f) for f in files
                       if f.label <= top]
            listings[split] = Listing(entries, [*self.bad_names[split], *outside])
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

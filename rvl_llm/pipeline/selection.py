"""Which documents of a split a study uses: a seeded sample of train (``--train-size``,
``--train-per-class``), or the ids of published split files (``--split-file``; the flags and the
file forms are described in the README).

Pure: no tokenizer, and no file is read but the split file. ``select_split`` gets a split's
documents as selection keys in listing order (a folder's file names, a table's id column or row
number) with their class indexes, and returns the listing positions to keep. Keys are sorted
before sampling, and each class is shuffled by its own ``random.Random`` seeded with a string, so
the same settings give the same documents on every machine and Python version, whatever order
the files were listed in; a class's documents are taken from the front of its shuffled order, so
with one seed smaller subsets are contained in larger ones (160 in 800 in 1,600).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import our_split, split_file_spec
from rvl_llm.pipeline.manifest import SPLITS

# Above this many selected documents the manifest keeps the keys' sha256 only: a split file that
# lists a whole 320k-document split would otherwise make every cache hit parse megabytes.
MAX_LISTED_KEYS = 20_000
_SHOWN_MISSING = 5  # ids named in a "not found" error; the rest are counted


@dataclass(frozen=True)
class Selection:
    # Positions in the split's listing to keep, ascending; None: all of them.
    indexes: tuple[int, ...] | None
    # For the manifest: selected keys, class counts, notes (short classes); None: no selection.
    info: dict[str, Any] | None


def selection_settings(cfg: PrepareConfig) -> dict[str, Any] | None:
    """The part of the cache key that selection adds: the flags that apply and the split files'
    sha256 (their content, not their paths: a copy elsewhere is the same subset). None without
    flags."""
    flags = {"train_size": cfg.train_size, "train_per_class": cfg.train_per_class}
    settings: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    if settings:
        settings["subset_seed"] = cfg.subset_seed  # the seed matters only when sampling
    specs = [split_file_spec(spec) for spec in cfg.split_file]
    if len(specs) == 1 and specs[0][0] is None:  # one plain file: the key it always had
        settings["split_file_sha256"] = hashlib.sha256(_read_split_bytes(specs[0][1])).hexdigest()
    elif specs:
        settings["split_files"] = sorted(
            [split or "", hashlib.sha256(_read_split_bytes(path)).hexdigest()]
            for split, path in specs)
    return settings or None


def select_split(
    split: str,
    keys: Sequence[str],
    labels: Sequence[int],
    cfg: PrepareConfig,
    label_names: Sequence[str],
    *,
    doc_ids: Callable[[], Sequence[str]] | None = None,
) -> Selection:
    """The positions of ``keys`` that ``split`` keeps under ``cfg``'s selection flags.
    ``doc_ids``: each key's document id, where it differs (a folder's "id" field), read only
    when a listed id matches no key."""
    listed = read_split_files(cfg).get(split) if cfg.split_file else None
    sampling = split == "train" and (cfg.train_size is not None or cfg.train_per_class is not None)
    if listed is None and not sampling:
        return Selection(None, None)
    positions = list(range(len(keys)))
    info: dict[str, Any] = {"listed": len(keys)}
    if listed is not None:
        positions = _match_listed(split, listed, keys, cfg, doc_ids)
        info["split_file"] = ", ".join(split_file_spec(spec)[1].name for spec in cfg.split_file)
    notes: list[str] = []
    if sampling:
        positions = _sample(positions, keys, labels, cfg, label_names, notes)
        info["subset_seed"] = cfg.subset_seed
    positions.sort()  # listing order: shards keep the order prepare reads in
    chosen = [keys[p] for p in positions]
    counts = Counter(labels[p] for p in positions)
    info["selected"] = len(positions)
    info["class_counts"] = {label_names[c]: counts[c] for c in sorted(counts)}
    info["notes"] = notes
    info["keys_sha256"] = hashlib.sha256("\n".join(sorted(chosen)).encode()).hexdigest()
    if len(chosen) <= MAX_LISTED_KEYS:
        info["keys"] = chosen
    return Selection(tuple(positions), info)


def read_split_files(cfg: PrepareConfig) -> dict[str, list[str]]:
    """The ids per split that all ``--split-file`` values list, in order, duplicates dropped."""
    prefixes = {split: cfg.prefix(split) for split in SPLITS}
    merged: dict[str, list[str]] = {}
    for spec in cfg.split_file:
        split, path = split_file_spec(spec)
        for name, ids in read_split_file(path, split=split, prefixes=prefixes).items():
            merged.setdefault(name, []).extend(ids)
    return {split: list(dict.fromkeys(ids)) for split, ids in merged.items()}


def read_split_file(path: Path, *, split: str | None = None,
                    prefixes: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The ids per split a split file lists (forms: the README's --split-file), in its order,
    duplicates dropped. ``prefixes``: each split's id prefix, default ``train_`` ..."""
    raw = _read_split_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RvlError(f"--split-file {path}: not UTF-8 text ({err.reason})") from err
    form = _Form(path, split, dict(prefixes or {s: f"{s}_" for s in SPLITS}))
    listed = form.parse_json(text) if text.lstrip()[:1] in ("{", "[") else form.parse_text(text)
    if not listed:
        raise RvlError(f"--split-file {path}: lists no documents")
    for name, ids in listed.items():
        if not ids:
            raise RvlError(f"--split-file {path}: split {name!r} lists no documents "
                           "(leave it out to take the whole split)")
    return {name: list(dict.fromkeys(ids)) for name, ids in listed.items()}


def _read_split_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise RvlError(f"--split-file {path}: no such file") from err
    except OSError as err:
        raise RvlError(f"--split-file {path}: cannot read ({err.strerror or err})") from err


@dataclass(frozen=True)
class _Form:
    """One split file's parser: its path (for messages), its split if given, the prefixes."""

    path: Path
    split: str | None
    prefixes: dict[str, str]

    def parse_json(self, text: str) -> dict[str, list[str]]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RvlError(
                f"--split-file {self.path}: line {err.lineno}: not valid JSON ({err.msg})"
            ) from err
        if isinstance(data, list):  # ids alone: their split is given, or their prefix
            data = {None: data}
        if not isinstance(data, dict):
            raise RvlError(f"--split-file {self.path}: expected a JSON object "
                           '{"train": [...], "validation": [...], "test": [...]} or a list of ids')
        listed: dict[str, list[str]] = {}
        for name, ids in data.items():
            # Table ids may be numbers in JSON; keys are strings.
            if not isinstance(ids, list) or not all(
                    isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
                what = repr(name) if name is not None else "the list"
                raise RvlError(f"--split-file {self.path}: {what} must be a list of ids "
                               "(strings)")
            if name is not None:
                listed.setdefault(self.split_of("", name, ""), [])
            for doc_id in ids:
                listed.setdefault(self.split_of(str(doc_id), name, ""), []).append(str(doc_id))
        return listed

    def parse_text(self, text: str) -> dict[str, list[str]]:
        lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)
                 if line.strip() and not line.strip().startswith("#")]
        if lines and "\t" in lines[0][1]:
            header = next(csv.reader([lines[0][1]], delimiter="\t"))
            if "doc_id" in header or "id" in header:  # a predictions.tsv, or a table like it
                return self.parse_table(header, lines[1:])
        listed: dict[str, list[str]] = {}
        for number, line in lines:
            parts = line.split(maxsplit=1)
            where = f"line {number}: "
            if len(parts) == 2:
                name, doc_id = parts[0], parts[1].strip()
                if name not in SPLITS and self.split is None:
                    raise RvlError(f"--split-file {self.path}: {where}unknown split {name!r} "
                                   f"(choose from {', '.join(SPLITS)}); a line is 'split id' "
                                   "(e.g. 'train train_0007_3_aws.json') or an id alone")
                if name not in SPLITS:  # SPLIT=FILE: a line is an id, spaces and all
                    name, doc_id = self.split, line
            elif parts[0] in SPLITS:  # a split with no id: not an id named "train"
                raise RvlError(f"--split-file {self.path}: {where}expected 'split id' (e.g. "
                               f"'train train_0007_3_aws.json'), got {line[:60]!r}")
            else:
                name, doc_id = None, parts[0]
            listed.setdefault(self.split_of(doc_id, name, where), []).append(doc_id)
        return listed

    def parse_table(self, header: list[str], lines: list[tuple[int, str]]) -> dict[str, list[str]]:
        column = header.index("doc_id" if "doc_id" in header else "id")
        split_column = header.index("split") if "split" in header else None
        listed: dict[str, list[str]] = {}
        for number, line in lines:
            row = next(csv.reader([line], delimiter="\t"))
            if len(row) <= column:
                raise RvlError(f"--split-file {self.path}: line {number}: no {header[column]!r} "
                               "value")
            name = row[split_column] if split_column is not None and len(row) > split_column \
                else None
            where = f"line {number}: "
            listed.setdefault(self.split_of(row[column], name, where), []).append(row[column])
        return listed

    def split_of(self, doc_id: str, named: str | None, where: str) -> str:
        """The split of a listed id: the one its line or key names, else the file's
        (``SPLIT=FILE``), else its prefix's."""
        if named is not None:
            if named not in SPLITS:
                raise RvlError(f"--split-file {self.path}: {where}unknown split {named!r} "
                               f"(choose from {', '.join(SPLITS)})")
            if self.split is not None and named != self.split:
                raise RvlError(f"--split-file {self.split}={self.path}: {where}lists a {named} "
                               f"document ({doc_id!r}); this file is for {self.split}")
            return named
        if self.split is not None:
            return self.split
        for split, prefix in self.prefixes.items():
            if doc_id.startswith(prefix):
                return split
        split = our_split(re.split(r"[_\-./]", doc_id, maxsplit=1)[0])
        if split is None:
            raise RvlError(f"--split-file {self.path}: {where}cannot tell the split of id "
                           f"{doc_id!r} (no prefix such as {self.prefixes['train']!r}); list "
                           "'split id' lines, or name the split: --split-file SPLIT=FILE")
        return split


def _match_listed(split: str, listed: list[str], keys: Sequence[str], cfg: PrepareConfig,
                  doc_ids: Callable[[], Sequence[str]] | None) -> list[int]:
    """Listing positions of the listed ids. An id matches, in this order: a key (a folder's
    file name, a table's id or row number), a file name without ``.json``, a file name without
    ``--suffix`` and ``.json`` (``train_0000_13``), a document's own id (its "id", else "path",
    as predict, eval and the manifest print it). An id that names several documents (row
    numbers of a split in several files) is refused: the file cannot say which one it means."""
    ending = cfg.suffix + ".json"
    aliases: list[dict[str, list[int]]] = [{}, {}, {}]
    for p, key in enumerate(keys):
        aliases[0].setdefault(key, []).append(p)
        if key.endswith(".json"):
            aliases[1].setdefault(key.removesuffix(".json"), []).append(p)
        if cfg.suffix and key.endswith(ending):
            aliases[2].setdefault(key.removesuffix(ending), []).append(p)
    found: set[int] = set()

    def take(doc_id: str, levels: list[dict[str, list[int]]]) -> bool:
        positions = next((level[doc_id] for level in levels if doc_id in level), None)
        if positions is None:
            return False
        if len(positions) > 1:
            raise RvlError(f"--split-file {_where(cfg)}: id {doc_id!r} names {len(positions)} "
                           f"{split} documents of --data; give each document of a split its own "
                           "id (an id column)")
        found.update(positions)
        return True

    missing = [doc_id for doc_id in listed if not take(doc_id, aliases)]
    if missing and doc_ids is not None:  # ids the documents hold: read only when needed
        by_id: dict[str, list[int]] = {}
        for p, doc_id in enumerate(doc_ids()):
            by_id.setdefault(doc_id, []).append(p)
        missing = [doc_id for doc_id in missing if not take(doc_id, [by_id])]
    if missing:
        shown = ", ".join(missing[:_SHOWN_MISSING])
        more = f" and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
        raise RvlError(f"--split-file {_where(cfg)}: {len(missing)} {split} ids not found in "
                       f"--data: {shown}{more}")
    return sorted(found)


def _where(cfg: PrepareConfig) -> str:
    return " ".join(cfg.split_file)


def _sample(
    positions: list[int],
    keys: Sequence[str],
    labels: Sequence[int],
    cfg: PrepareConfig,
    label_names: Sequence[str],
    notes: list[str],
) -> list[int]:
    """A seeded sample of ``positions``: per class, the front of that class's shuffled keys."""
    by_class: dict[int, list[int]] = {}
    for p in sorted(positions, key=lambda p: keys[p]):  # sorted: listing order must not matter
        by_class.setdefault(labels[p], []).append(p)
    for label, members in by_class.items():
        # One generator per class, seeded by a string (hashed the same on every platform):
        # a class's sample does not depend on which other classes are present.
        random.Random(f"rvl-llm-subset:{cfg.subset_seed}:{label}").shuffle(members)
    if cfg.train_per_class is not None:
        take = {label: min(cfg.train_per_class, len(m)) for label, m in by_class.items()}
        for label in sorted(by_class):
            if len(by_class[label]) < cfg.train_per_class:
                notes.append(f"{label_names[label]}: only {len(by_class[label])} train documents, "
                             f"fewer than --train-per-class {cfg.train_per_class}; all kept")
    else:
        assert cfg.train_size is not None
        take = _allocate(cfg.train_size, {label: len(m) for label, m in by_class.items()})
    return [p for label, members in by_class.items() for p in members[: take[label]]]


def _allocate(total: int, sizes: dict[int, int]) -> dict[int, int]:
    """Share ``total`` over classes by size: largest remainder, then at least one per class."""
    available = sum(sizes.values())
    if total > available:
        raise RvlError(f"--train-size {total}: the train split has only {available} documents")
    if total < len(sizes):
        raise RvlError(f"--train-size {total}: smaller than the {len(sizes)} classes present in "
                       "train, and a stratified sample keeps at least one of each")
    # Exact integer arithmetic: quota_c = total * size_c / available.
    take = {c: total * n // available for c, n in sizes.items()}
    by_remainder = sorted(sizes, key=lambda c: (-(total * sizes[c] % available), c))
    for c in by_remainder[: total - sum(take.values())]:
        take[c] += 1
    for c in sorted(sizes):
        if take[c] == 0:
            # The donor is the class furthest above its quota (ties: lowest index).
            donor = max((d for d in sorted(sizes) if take[d] > 1),
                        key=lambda d: (take[d] * available - total * sizes[d], -d))
            take[donor] -= 1
            take[c] = 1
    return take

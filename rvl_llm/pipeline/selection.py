"""Which documents of a split a study uses: a seeded sample of train, or a published split file.

Pure: no tokenizer, and no file is read but the split file. ``select_split`` gets a split's
documents as selection keys in listing order (a folder's file names, a table's id column or row
number) with their class indexes, and returns the listing positions to keep.

- ``--train-size N``: a stratified sample of train. N is shared over the classes present by
  their share (largest remainder), at least one each.
- ``--train-per-class N``: N per class, all of a class that has fewer (noted in the manifest).
- ``--subset-seed S``: keys are sorted before sampling, and each class is shuffled by its own
  ``random.Random`` seeded with a string, so the same settings give the same documents on every
  machine and Python version, whatever order the files were listed in. A class's documents are
  taken from the front of its shuffled order, so with one seed smaller subsets are contained in
  larger ones (160 in 800 in 1,600).
- ``--split-file FILE``: the documents of each split it lists; a split it does not list is taken
  whole. The sampling flags then sample from the train documents it lists.

Split file forms. JSON: ``{"train": ["id", ...], "validation": [...], "test": [...]}``. Text:
one ``split id`` line per document (tab or spaces between), ``#`` comments and blank lines
skipped. An id is a document key, for a folder of OCR files its file name with or without
``.json``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.config import PrepareConfig
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
    """The part of the cache key that selection adds: the flags that apply and the split file's
    sha256 (its content, not its path: a copy elsewhere is the same subset). None without flags."""
    settings: dict[str, Any] = {}
    if cfg.train_size is not None:
        settings["train_size"] = cfg.train_size
    if cfg.train_per_class is not None:
        settings["train_per_class"] = cfg.train_per_class
    if settings:
        settings["subset_seed"] = cfg.subset_seed  # the seed matters only when sampling
    if cfg.split_file is not None:
        content = _read_split_bytes(cfg.split_file)
        settings["split_file_sha256"] = hashlib.sha256(content).hexdigest()
    return settings or None


def select_split(
    split: str,
    keys: Sequence[str],
    labels: Sequence[int],
    cfg: PrepareConfig,
    label_names: Sequence[str],
) -> Selection:
    """The positions of ``keys`` that ``split`` keeps under ``cfg``'s selection flags."""
    if len(keys) != len(labels):
        raise ValueError(f"{len(keys)} keys but {len(labels)} labels")
    listed = read_split_file(cfg.split_file).get(split) if cfg.split_file is not None else None
    sampling = split == "train" and (cfg.train_size is not None or cfg.train_per_class is not None)
    if listed is None and not sampling:
        return Selection(None, None)
    positions = list(range(len(keys)))
    info: dict[str, Any] = {"listed": len(keys)}
    if listed is not None:
        assert cfg.split_file is not None
        positions = _match_listed(split, listed, keys, cfg.split_file)
        info["split_file"] = cfg.split_file.name
    notes: list[str] = []
    if sampling:
        positions = _sample(positions, keys, labels, cfg, label_names, notes)
        info["subset_seed"] = cfg.subset_seed
    positions.sort()  # listing order: shards keep the order prepare reads in
    chosen = [keys[p] for p in positions]
    counts = [0] * len(label_names)
    for p in positions:
        counts[labels[p]] += 1
    info["selected"] = len(positions)
    info["class_counts"] = {label_names[c]: n for c, n in enumerate(counts) if n}
    info["notes"] = notes
    info["keys_sha256"] = hashlib.sha256("\n".join(sorted(chosen)).encode()).hexdigest()
    if len(chosen) <= MAX_LISTED_KEYS:
        info["keys"] = chosen
    return Selection(tuple(positions), info)


def read_split_file(path: Path) -> dict[str, list[str]]:
    """The ids per split a split file lists, in its order, duplicates dropped."""
    raw = _read_split_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RvlError(f"--split-file {path}: not UTF-8 text ({err.reason})") from err
    if text.lstrip().startswith(("{", "[")):
        listed = _parse_json(path, text)
    else:
        listed = _parse_text(path, text)
    for split, ids in listed.items():
        if not ids:
            raise RvlError(f"--split-file {path}: split {split!r} lists no documents "
                           "(leave it out to take the whole split)")
    return {split: list(dict.fromkeys(ids)) for split, ids in listed.items()}


def _read_split_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise RvlError(f"--split-file {path}: no such file") from err
    except OSError as err:
        raise RvlError(f"--split-file {path}: cannot read ({err.strerror or err})") from err


def _parse_json(path: Path, text: str) -> dict[str, list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RvlError(
            f"--split-file {path}: line {err.lineno}: not valid JSON ({err.msg})"
        ) from err
    if not isinstance(data, dict):
        raise RvlError(f"--split-file {path}: expected a JSON object "
                       '{"train": [...], "validation": [...], "test": [...]}')
    listed: dict[str, list[str]] = {}
    for split, ids in data.items():
        _check_split_name(path, split, where="")
        # Table ids may be numbers in JSON; keys are strings.
        if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
            raise RvlError(f"--split-file {path}: {split!r} must be a list of ids (strings)")
        listed[split] = [str(i) for i in ids]
    return listed


def _parse_text(path: Path, text: str) -> dict[str, list[str]]:
    listed: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise RvlError(f"--split-file {path}: line {number}: expected 'split id' (e.g. "
                           f"'train train_0007_3_aws.json'), got {line[:60]!r}")
        split, doc_id = parts
        _check_split_name(path, split, where=f"line {number}: ")
        listed.setdefault(split, []).append(doc_id.strip())
    if not listed:
        raise RvlError(f"--split-file {path}: lists no documents")
    return listed


def _check_split_name(path: Path, split: str, *, where: str) -> None:
    if split not in SPLITS:
        raise RvlError(f"--split-file {path}: {where}unknown split {split!r} "
                       f"(choose from {', '.join(SPLITS)})")


def _match_listed(split: str, listed: list[str], keys: Sequence[str], path: Path) -> list[int]:
    """Listing positions of the listed ids: an exact key, else a key without ``.json``. An id
    that names several documents (row numbers of a split in several files) is refused: the file
    cannot say which one it means."""
    exact: dict[str, list[int]] = {}
    stem: dict[str, list[int]] = {}
    for p, key in enumerate(keys):
        exact.setdefault(key, []).append(p)
        if key.endswith(".json"):
            stem.setdefault(key.removesuffix(".json"), []).append(p)
    found: set[int] = set()
    missing: list[str] = []
    for doc_id in listed:
        positions = exact.get(doc_id) or stem.get(doc_id)
        if positions is None:
            missing.append(doc_id)
        elif len(positions) > 1:
            raise RvlError(f"--split-file {path}: id {doc_id!r} names {len(positions)} {split} "
                           "documents of --data; give each document of a split its own id "
                           "(an id column)")
        else:
            found.update(positions)
    if missing:
        shown = ", ".join(missing[:_SHOWN_MISSING])
        more = f" and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
        raise RvlError(f"--split-file {path}: {len(missing)} {split} ids not found in --data: "
                       f"{shown}{more}")
    return sorted(found)


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

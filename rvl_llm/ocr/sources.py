"""What ``rvl-llm ocr`` reads: documents as ``Item``s, listed lazily (flat memory at any size).

- A folder of images and PDFs (walked recursively, sorted). A file named like prepare's layout,
  ``train_0000_13.png`` (split prefix, label as the last ``_`` number), is labelled; any other
  is unlabelled (for predict).
- The RVL-CDIP layout: ``images/`` plus ``labels/{train,val,test}.txt``, lines
  ``<path under images/> <label>``.
- A table (.jsonl, .csv, .parquet, read by prepare's readers) or a Hugging Face dataset with an
  image column: bytes, a path (relative to the table), or an image feature.

Bad entries are yielded as ``BadItem`` in their place; the caller counts and names them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.labels import load_labels
from rvl_llm.ocr.config import IMPORTERS, OcrConfig
from rvl_llm.ocr.pages import DOCUMENT_SUFFIXES
from rvl_llm.pipeline.corpus import document_file_name, id_text
from rvl_llm.pipeline.hf_datasets import DatasetSplit
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.pipeline.sources import HUB_PREFIX, TABLE_SUFFIXES, is_hub, our_split
from rvl_llm.pipeline.tables import CsvFile, JsonLinesFile, LabelMap, ParquetFile, Part

SUFFIX = "_aws"  # prepare's default --suffix: its folder reader needs no flag
PREFIXES = {split: f"{split}_" for split in SPLITS}  # prepare's default prefixes
_LABELLED_NAME = re.compile(r"^(train|validation|test)_(.+)_(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
TABLE_ROWS = 256  # rows per record batch of a table with images


@dataclass(frozen=True)
class Item:
    id: str  # the source path under SOURCE (or a table's id): "imagesa/a/a/80035521.tif"
    name: str  # its output file name in the folder layout
    suffix: str  # the document's kind: ".tif", ".pdf", ".json" (Textract) ...
    split: str | None  # None: unlabelled
    label: int | None
    path: str | None = None  # the file to read, or
    data: bytes | None = None  # its bytes (a table's image cell)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        with open(self.path, "rb") as handle:
            return handle.read()


@dataclass(frozen=True)
class BadItem:
    where: str
    reason: str


Listed = Item | BadItem


def safe_stem(doc_id: str) -> str:
    """A file-name stem for an id, one to one: '/' becomes '~', other unsafe bytes %XX."""
    out = []
    for char in doc_id:
        if char == "/":
            out.append("~")
        elif _UNSAFE.match(char):
            out.extend(f"%{b:02X}" for b in char.encode("utf-8"))
        else:
            out.append(char)
    stem = "".join(out)
    if len(stem) > 180:  # file names stop at 255 bytes: keep it readable and unique
        stem = f"{stem[:160]}-{hashlib.sha256(doc_id.encode()).hexdigest()[:16]}"
    return stem


def output_name(doc_id: str, split: str | None, label: int | None) -> str:
    """``scan-01.pdf`` -> ``scan-01.json``; labelled: ``train_{stem}_{label}_aws.json``, the
    name prepare's folder reader takes apart. The id keeps the full path."""
    path = Path(doc_id)
    known = path.suffix.lower() in (*DOCUMENT_SUFFIXES, *IMPORTERS.values())
    stem = safe_stem(doc_id[: -len(path.suffix)] if known else doc_id)
    if split is None or label is None:
        return f"{stem}.json"
    return document_file_name(PREFIXES[split], stem, label, SUFFIX)


def guess_kind(cfg: OcrConfig) -> str:
    source = cfg.source
    if cfg.source_format is not None:
        return cfg.source_format
    if is_hub(source):
        return "datasets"
    if source.is_file():
        kind = TABLE_SUFFIXES.get(source.suffix.lower())
        if kind not in ("jsonl", "csv", "parquet"):
            raise RvlError(f"SOURCE {source}: not a folder, a .jsonl, .csv or .parquet table, "
                           "or a dataset (--source-format)")
        return kind
    if not source.is_dir():
        raise RvlError(f"SOURCE {source}: no such folder or file")
    if (source / "dataset_dict.json").is_file() or (source / "state.json").is_file():
        return "datasets"
    if (source / "labels").is_dir() and any((source / "labels").glob("*.txt")):
        return "rvl-cdip"
    return "folder"


def list_items(cfg: OcrConfig) -> Iterator[Listed]:
    """Every document of SOURCE in a fixed order, or why an entry cannot be used."""
    labels = load_labels(cfg.labels_file)
    kind = guess_kind(cfg)
    suffixes = (IMPORTERS[cfg.settings.engine],) if cfg.settings.engine in IMPORTERS \
        else DOCUMENT_SUFFIXES
    if kind == "folder":
        return _folder(cfg.source, suffixes, len(labels))
    if kind == "rvl-cdip":
        return _rvl_cdip(cfg.source, labels, cfg.settings.engine)
    return _table(cfg, kind, labels)


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of the files under ``root``, sorted, hidden ones left out."""
    with os.scandir(root) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for sub in _walk(Path(entry.path)):
                yield f"{entry.name}/{sub}"
        else:
            yield entry.name


def _folder(root: Path, suffixes: tuple[str, ...], n_labels: int) -> Iterator[Listed]:
    for rel in _walk(root):
        path = root / rel
        suffix = path.suffix.lower()
        if suffix not in suffixes:
            yield BadItem(str(path), f"unsupported file kind {suffix or '(no suffix)'!r} "
                                     f"(reads {', '.join(suffixes)})")
            continue
        split, label, stem = None, None, rel
        match = _LABELLED_NAME.match(path.stem) if "/" not in rel else None
        if match:
            split, stem, label = match.group(1), match.group(2), int(match.group(3))
            if label >= n_labels:
                yield BadItem(str(path), f"label {label} is outside the label set "
                                         f"(0..{n_labels - 1}, see --labels)")
                continue
        yield Item(rel, output_name(stem, split, label), suffix, split, label, path=str(path))


def _rvl_cdip(root: Path, labels: tuple[str, ...], engine: str) -> Iterator[Listed]:
    images = root / "images"
    if not images.is_dir():
        raise RvlError(f"SOURCE {root}: an RVL-CDIP layout needs images/ beside labels/")
    label_map = LabelMap(labels)
    files = sorted((root / "labels").glob("*.txt"))
    for file in files:
        split = our_split(file.stem)
        if split is None:
            yield BadItem(str(file), f"not a split name (train, val, test): {file.stem!r}")
            continue
        with open(file, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                where = f"{file}:{number}"
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    yield BadItem(where, "not a '<path under images/> <label>' line")
                    continue
                rel, value = parts
                label = label_map(int(value) if value.isdigit() else value)
                if isinstance(label, str):
                    yield BadItem(where, f"{rel}: {label}")
                    continue
                path = images / rel
                if engine in IMPORTERS:  # the OCR file beside the image: x.tif -> x.xml
                    path = path.with_suffix(IMPORTERS[engine])
                if not path.is_file():
                    yield BadItem(where, f"{rel}: no such file {path}")
                    continue
                yield Item(rel, output_name(rel, split, label), path.suffix.lower(), split,
                           label, path=str(path))


def _table(cfg: OcrConfig, kind: str, labels: tuple[str, ...]) -> Iterator[Listed]:
    parts, base, class_names = _parts(cfg, kind)
    label_map = LabelMap(labels, class_names)
    for part in parts:
        names = part.column_names()
        if cfg.image_column not in names:
            raise RvlError(f"--image-column {cfg.image_column}: no such column in {part.name} "
                           f"(has: {', '.join(names)})")
        wanted = [cfg.image_column] + [c for c in (cfg.label_column, cfg.id_column, "split")
                                       if c in names]
        for block in part.blocks(wanted, TABLE_ROWS):
            for where, reason in block.bad:
                yield BadItem(where, reason)
            for i, row in enumerate(block.rows):
                values = {c: block.values[c][i] for c in wanted}
                yield _row_item(part, row, values, cfg, base, label_map)


def _row_item(part: Part, row: int, values: dict[str, Any], cfg: OcrConfig, base: Path,
              label_map: LabelMap) -> Listed:
    where = f"{part.name}:{row}"
    cell = values[cfg.image_column]
    path, data = None, None
    if isinstance(cell, dict):  # a datasets Image feature: {"bytes": ..., "path": ...}
        data, path = cell.get("bytes"), cell.get("path")
    elif isinstance(cell, bytes):
        data = cell
    elif isinstance(cell, str):
        path = cell
    if data is None and path is None:
        return BadItem(where, f"no image in column {cfg.image_column!r}")
    if data is None and not (base / str(path)).is_file():
        return BadItem(where, f"no such image file {base / str(path)}")
    doc_id = id_text(values[cfg.id_column]) if values.get(cfg.id_column) is not None \
        else (str(path) if path else f"{Path(part.name).name}:{row}")
    split = part.split or (our_split(str(values.get("split") or "")) if values.get("split")
                           else None)
    label = None
    if values.get(cfg.label_column) is not None:
        mapped = label_map(values[cfg.label_column])
        if isinstance(mapped, str):
            return BadItem(where, mapped)
        label = mapped
    if label is None or split is None:
        split, label = None, None  # unlabelled, for predict
    suffix = Path(str(path)).suffix.lower() if path else _sniff(data or b"")
    return Item(doc_id, output_name(doc_id, split, label), suffix, split, label,
                path=None if data is not None else str(base / str(path)), data=data)


def _sniff(data: bytes) -> str:
    """A suffix for image bytes without a name, from their magic number."""
    for magic, suffix in ((b"%PDF", ".pdf"), (b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"),
                          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"GIF8", ".gif"),
                          (b"BM", ".bmp")):
        if data.startswith(magic):
            return suffix
    return ""


def _parts(cfg: OcrConfig, kind: str) -> tuple[list[Part], Path, tuple[str, ...] | None]:
    if kind == "datasets":
        return _dataset_parts(cfg)
    source = cfg.source
    files = [source] if source.is_file() else sorted(
        p for p in source.iterdir() if TABLE_SUFFIXES.get(p.suffix.lower()) == kind)
    if not files:
        raise RvlError(f"SOURCE {source}: no {kind} files")
    reader = {"jsonl": JsonLinesFile, "csv": CsvFile, "parquet": ParquetFile}[kind]
    parts: list[Part] = [reader(str(f), our_split(re.split(r"[-_.]", f.name)[0]))
                         for f in files]
    return parts, files[0].parent, None


def _dataset_parts(cfg: OcrConfig) -> tuple[list[Part], Path, tuple[str, ...] | None]:
    import datasets  # heavy: only for a dataset source

    where = str(cfg.source)
    try:
        if is_hub(where):
            name, _, config = where[len(HUB_PREFIX):].partition(":")
            loaded = datasets.load_dataset(name, config or None)
        else:
            loaded = datasets.load_from_disk(where)
    except Exception as err:  # offline, unknown name, not a dataset folder: all one line
        raise RvlError(f"SOURCE {where}: cannot load the dataset ({str(err).splitlines()[0]}); "
                       "offline it must be in the HF cache or a save_to_disk folder") from err
    named = {"": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
    parts: list[Part] = []
    class_names = None
    for name, dataset in named.items():
        feature = dataset.features.get(cfg.image_column)
        if isinstance(feature, datasets.Image):  # bytes and path, not decoded pixels
            dataset = dataset.cast_column(cfg.image_column, datasets.Image(decode=False))
        label = dataset.features.get(cfg.label_column)
        if isinstance(label, datasets.ClassLabel) and cfg.labels_file is None:
            class_names = tuple(label.names)
        parts.append(DatasetSplit(f"{where}[{name}]" if name else where,
                                  our_split(name) if name else None, dataset))
    return parts, Path(where), class_names

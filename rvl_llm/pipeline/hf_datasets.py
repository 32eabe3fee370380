"""Documents from a Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder, or
``hf:NAME[:CONFIG]`` through ``datasets.load_dataset`` (the user's HF cache and network).

Each split becomes a table part (``tables.TableSource`` lists and reads it in record batches). A
``ClassLabel`` label feature gives the label set and its order, unless --labels names them: then
every class name must be in that set, and rows map by name. The cache key holds each split's
``datasets`` fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import HUB_PREFIX, is_hub, our_split, resolved_data
from rvl_llm.pipeline.tables import Block, TableSource


@dataclass(frozen=True)
class DatasetSplit:
    name: str  # hf:NAME[train] or FOLDER[train]
    split: str | None
    dataset: Any  # datasets.Dataset

    def column_names(self) -> list[str]:
        return list(self.dataset.column_names)

    def blocks(self, columns: Sequence[str], size: int) -> Iterator[Block]:
        table = self.dataset.select_columns(list(columns))
        row = 0
        for batch in table.iter(batch_size=size):
            n = len(batch[columns[0]])
            yield Block(list(range(row, row + n)), {c: batch[c] for c in columns})
            row += n


def open_dataset(cfg: PrepareConfig) -> TableSource:
    import datasets

    loaded, where = _load(cfg)
    # One table (its split column says), or a DatasetDict of splits.
    named = {"": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
    parts: list[DatasetSplit] = []
    for name, dataset in named.items():
        split = our_split(name) if name else None
        if name and split is None:
            continue  # a split of theirs with no counterpart here ("unsupervised", ...)
        if any(p.split == split for p in parts) and split is not None:
            raise RvlError(f"--data {where}: two splits map to {split!r} "
                           f"({', '.join(named)}); keep one")
        parts.append(DatasetSplit(f"{where}[{name}]" if name else where, split, dataset))
    if all(p.split is not None for p in parts):
        for split in cfg.splits:
            if not any(p.split == split for p in parts):
                raise RvlError(f"--data {where}: no {split} split (has: {', '.join(named)}); "
                               "pass --splits with the ones it has")
    class_names = _class_names(parts, cfg.label_column)
    labels = _labels(cfg, class_names, where)
    key = {
        "kind": "datasets",
        "location": str(where),
        "splits": [[p.split, p.name, p.dataset._fingerprint, p.dataset.num_rows] for p in parts],
        "columns": {"text": cfg.text_column, "label": cfg.label_column, "id": cfg.id_column},
    }
    return TableSource("datasets", parts, cfg, labels, key, class_names)


def _load(cfg: PrepareConfig) -> tuple[Any, str]:
    import datasets

    if is_hub(cfg.data_dir):
        name, _, config = str(cfg.data_dir).removeprefix(HUB_PREFIX).partition(":")
        try:
            return datasets.load_dataset(name, config or None), str(cfg.data_dir)
        except Exception as err:  # offline, unknown name, gated: all one line
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RvlError(
                f"--data {cfg.data_dir}: cannot load the dataset ({reason}); offline it must be "
                f"in the HF cache: run once with network, or `huggingface-cli download {name} "
                "--repo-type dataset`, or save_to_disk it and pass the folder"
            ) from err
    folder = resolved_data(cfg.data_dir)
    try:
        return datasets.load_from_disk(str(folder)), str(folder)
    except Exception as err:
        raise RvlError(f"--data {cfg.data_dir}: not a datasets save_to_disk folder "
                       f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from err


def _class_names(parts: Sequence[DatasetSplit], column: str) -> tuple[str, ...] | None:
    import datasets

    features = [part.dataset.features.get(column) for part in parts]
    return next((tuple(f.names) for f in features if isinstance(f, datasets.ClassLabel)), None)


def _labels(cfg: PrepareConfig, class_names: tuple[str, ...] | None, where: str) -> tuple[str, ...]:
    if class_names is None:
        return cfg.label_names()
    if cfg.labels is None and cfg.labels_file is None:
        return class_names
    labels = cfg.label_names()
    unknown = [n for n in class_names if n not in labels]
    if unknown:
        raise RvlError(f"--labels: the ClassLabel names of {where} {', '.join(map(repr, unknown))} "
                       "are not in it (the names must match)")
    return labels

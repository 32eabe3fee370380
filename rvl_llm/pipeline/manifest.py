"""The shard schema and the manifest: the one contract between prepare, train and evaluate.

A cache entry is a folder ``<cache-dir>/<key>/`` holding ``manifest.json`` and one folder per split
with uncompressed Arrow IPC stream shards. A split exists only once the manifest lists it; the
manifest is replaced atomically after the split's folder is in place, so a reader never sees half.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm.dataclass_json import SchemaError, from_json
from rvl_llm.errors import RvlError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

# Bump when the shard layout or the meaning of a column changes: it is part of every cache key.
FORMAT_VERSION = 3
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "validation", "test")
IGNORE_INDEX = -100  # label value outside the completion: ignored by the loss


def shard_schema(generative: bool) -> pa.Schema:
    """Columns of every shard; ``labels`` exists in generative mode only."""
    import pyarrow as pa

    columns = [pa.field("input_ids", pa.list_(pa.int32()))]
    if generative:
        columns.append(pa.field("labels", pa.list_(pa.int32())))
    columns += [
        pa.field("prompt_len", pa.int32()),  # tokens before the completion (all, in classifier)
        pa.field("label", pa.int32()),  # class index
        pa.field("length", pa.int32()),  # len(input_ids): drives length-grouped batching
        pa.field("doc_id", pa.string()),
        pa.field("truncated", pa.bool_()),
    ]
    return pa.schema(columns)


@dataclass(frozen=True)
class TemplateIds:
    """The token segments every row is built from, recorded so no later stage re-tokenises.

    generative: ``prefix + document + directive | completion[label]`` (completion = " name" + EOS)
    classifier: ``prefix + document + suffix`` (the tokenizer's own special tokens)
    """

    mode: str
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    directive: tuple[int, ...]
    completions: tuple[tuple[int, ...], ...]
    document_budget: int  # document tokens kept at most; the same for every class

    @property
    def max_completion_len(self) -> int:
        return max((len(c) for c in self.completions), default=0)

    def prompt(self, document: list[int] | tuple[int, ...]) -> list[int]:
        """The ids a model sees before the completion (generative) or in total (classifier)."""
        after = self.directive if self.mode == "generative" else self.suffix
        return [*self.prefix, *document[: self.document_budget], *after]


@dataclass(frozen=True)
class ShardInfo:
    file: str  # relative to the split's folder
    rows: int
    bytes: int
    sha256: str
    # The file's st_mtime_ns when sha256 was computed from it: a hit trusts a shard of this size
    # and mtime without reading it. Not part of its identity: a byte-identical rebuild is equal.
    mtime_ns: int = field(compare=False)


@dataclass(frozen=True)
class SkippedFile:
    """A file --skip-bad-files left out of a split."""

    name: str  # the file name inside the data folder
    reason: str  # why it could not be used, as the error without the flag would say


@dataclass(frozen=True)
class SplitInfo:
    rows: int
    shards: tuple[ShardInfo, ...]
    truncated: int
    empty: int  # documents whose text is empty or whitespace only (kept)
    replaced_utf8: int  # files whose bytes were not valid UTF-8 (decoded with replacement)
    skipped_files: tuple[SkippedFile, ...]  # --skip-bad-files: the files left out
    class_counts: dict[str, int]
    length: dict[str, float]  # token-length summary: min, mean, median, p90, p99, max
    seconds: float = 0.0
    selection: dict[str, Any] | None = None  # a subset's keys, class counts, notes; None: all

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["selection"] is None:  # manifests without a subset read as before
            del data["selection"]
        return data


@dataclass(frozen=True)
class Manifest:
    root: Path
    key: str
    settings: dict[str, Any]  # every part of the cache key, in clear text
    template: TemplateIds
    splits: dict[str, SplitInfo]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.settings["labels"])

    @property
    def mode(self) -> str:
        return self.settings["mode"]

    @property
    def generative(self) -> bool:
        return self.mode == "generative"

    @property
    def max_len(self) -> int:
        return int(self.settings["max_len"])

    def shard_paths(self, split: str) -> list[Path]:
        return [self.root / split / s.file for s in self.split_info(split).shards]

    def split_info(self, split: str) -> SplitInfo:
        if split not in self.splits:
            raise RvlError(f"cache entry {self.root} has no split {split!r} "
                           f"(has: {', '.join(self.splits)})")
        return self.splits[split]

    def dataset(self, split: str) -> datasets.Dataset:
        """The split as a memory-mapped ``datasets.Dataset`` (no copy into Python objects)."""
        import datasets

        parts = [datasets.Dataset.from_file(str(p)) for p in self.shard_paths(split)]
        if not parts:  # a split whose every file was skipped: no rows, the same column types
            schema = shard_schema(self.generative)
            features = datasets.Features.from_arrow_schema(schema)
            return datasets.Dataset.from_dict({n: [] for n in schema.names}, features=features)
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)

    def to_json(self) -> dict[str, Any]:
        splits = {name: info.to_json() for name, info in self.splits.items()}
        return {"format_version": FORMAT_VERSION, "key": self.key, "settings": self.settings,
                "template": asdict(self.template), "splits": splits}

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise RvlError(f"{path}: no manifest (not a prepared cache entry)") from err
        except (OSError, ValueError) as err:
            raise RvlError(f"{path}: unreadable manifest ({err})") from err
        if not isinstance(data, dict):
            raise RvlError(f"{path}: unreadable manifest (not a JSON object)")
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise RvlError(f"{path}: shard format {version} is not this version's "
                           f"{FORMAT_VERSION}; run prepare again")
        if isinstance(data.get("splits"), dict):  # to_json drops a None selection
            data["splits"] = {k: {"selection": None, **v} if isinstance(v, dict) else v
                              for k, v in data["splits"].items()}
        try:  # every field checked against its type: a hand edit fails here, not in a reader
            manifest: Manifest = from_json(cls, {**data, "root": str(root)})
        except SchemaError as err:  # the message names the field
            raise RvlError(f"{path}: unreadable manifest ({err})") from err
        problem = _settings_problem(manifest.settings) or _splits_problem(manifest.splits)
        if problem:
            raise RvlError(f"{path}: unreadable manifest ({problem})")
        return manifest


def _settings_problem(settings: dict[str, Any]) -> str | None:
    """What is wrong with the settings fields this module and ``cache ls`` read, or None."""
    if settings.get("mode") not in ("generative", "classifier"):
        return f"settings.mode {settings.get('mode')!r} is not generative or classifier"
    max_len = settings.get("max_len")
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
        return f"settings.max_len {max_len!r} is not a positive number"
    labels = settings.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels):
        return "settings.labels is not a list of names"
    source = settings.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("model"), str):
        return "settings.source.model is missing"
    return None


def _splits_problem(splits: dict[str, SplitInfo]) -> str | None:
    """Split or shard names that would make readers look outside the entry, counts no build
    writes (negative, or rows that are not the shards' sum), or None."""
    for name, info in splits.items():
        if name not in SPLITS:
            return f"unknown split {name!r}"
        counts = {"rows": info.rows, "truncated": info.truncated, "empty": info.empty,
                  "replaced_utf8": info.replaced_utf8, **info.class_counts}
        negative = next((k for k, v in counts.items() if v < 0), None)
        if negative is not None:
            return f"splits.{name}.{negative} is negative"
        for shard in info.shards:
            # A name with a separator or a dot entry would resolve outside the split's folder.
            if shard.file in ("", ".", "..") or any(c in shard.file for c in "/\\\0"):
                return f"shard file {shard.file!r} of split {name} is not a plain file name"
            if shard.rows < 0 or shard.bytes < 0:
                return f"shard {shard.file} of split {name} has a negative count"
        if info.rows != sum(s.rows for s in info.shards):
            return f"splits.{name}.rows {info.rows} is not the sum of its shards' rows"
    return None

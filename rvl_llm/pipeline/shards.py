"""Writing rows into uncompressed Arrow IPC stream shards (memory-mappable by ``datasets``)."""

from __future__ import annotations

import contextlib
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rvl_llm.pipeline.cache import file_sha256
from rvl_llm.pipeline.chunks import RowMeta
from rvl_llm.pipeline.manifest import ShardInfo, shard_schema
from rvl_llm.pipeline.template import Row

ROWS_PER_SHARD = 25_000  # ~50 MB at 512 tokens: small enough to verify, few enough to list


class ShardWriter:
    """Appends record batches to ``shard-NNNNN.arrow`` files, starting a new one when full,
    and keeps the per-split statistics the manifest records."""

    def __init__(self, folder: Path, *, generative: bool, labels: Sequence[str]) -> None:
        self.folder = folder
        self.generative = generative
        self.labels = labels
        self.schema = shard_schema(generative)
        self.shards: list[ShardInfo] = []
        self.lengths = array("i")
        self.class_counts: Counter[int] = Counter()
        self.truncated = 0
        self.empty = 0
        self.replaced_utf8 = 0
        self._writer: Any = None
        self._sink: Any = None
        self._path: Path | None = None
        self._rows_in_shard = 0

    def write(self, rows: Sequence[Row], docs: Sequence[RowMeta]) -> None:
        import pyarrow as pa

        if not rows:
            return
        if self._writer is None or self._rows_in_shard >= ROWS_PER_SHARD:
            self._finish_shard()
            self._path = self.folder / f"shard-{len(self.shards):05d}.arrow"
            self._sink = pa.OSFile(str(self._path), "wb")
            self._writer = pa.ipc.new_stream(self._sink, self.schema)
        ids_type = pa.list_(pa.int32())
        columns: dict[str, Any] = {"input_ids": pa.array([r.input_ids for r in rows], ids_type)}
        if self.generative:
            columns["labels"] = pa.array([r.labels for r in rows], ids_type)
        lengths = [len(r.input_ids) for r in rows]
        columns |= {
            "prompt_len": pa.array([r.prompt_len for r in rows], pa.int32()),
            "label": pa.array([d.label for d in docs], pa.int32()),
            "length": pa.array(lengths, pa.int32()),
            "doc_id": pa.array([d.doc_id for d in docs], pa.string()),
            "truncated": pa.array([r.truncated for r in rows], pa.bool_()),
        }
        self._writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self._rows_in_shard += len(rows)
        self.lengths.extend(lengths)
        self.class_counts.update(d.label for d in docs)
        self.truncated += sum(r.truncated for r in rows)
        self.empty += sum(d.empty for d in docs)
        self.replaced_utf8 += sum(d.replaced_utf8 for d in docs)

    def close(self) -> list[ShardInfo]:
        self._finish_shard()
        return self.shards

    def abort(self) -> None:
        """Let go of the open shard after a failure; the caller deletes the folder."""
        if self._writer is not None:
            # Closing writes the stream's end marker, which fails again on a full disk: the
            # first error is the one to report, and the file is deleted anyway.
            with contextlib.suppress(Exception):
                self._writer.close()
            with contextlib.suppress(Exception):
                self._sink.close()
            self._writer = None

    def _finish_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        path = self._path
        assert path is not None
        stat = path.stat()
        self.shards.append(ShardInfo(path.name, self._rows_in_shard, stat.st_size,
                                     file_sha256(path), stat.st_mtime_ns))
        self._writer = None
        self._rows_in_shard = 0

    def length_summary(self) -> dict[str, float]:
        import numpy as np

        if not self.lengths:
            return {}
        values = np.frombuffer(self.lengths, dtype=np.int32)
        median, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
        return {"min": int(values.min()), "mean": round(float(values.mean()), 1),
                "median": median, "p90": p90, "p99": p99, "max": int(values.max())}

    def named_class_counts(self) -> dict[str, int]:
        return {name: self.class_counts.get(i, 0) for i, name in enumerate(self.labels)}

"""The per-chunk work of prepare: read files, tokenise prefixes, build rows.

Runs in worker processes (one per core, each with its own copy of the Rust tokenizer) for big
splits, in-process for small ones. Processes rather than the tokenizer's threads: measured on
Mistral's SentencePiece tokenizer, its batch threads ran slower than one plain loop, while two
processes also parse the JSON in parallel.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rvl_llm.pipeline.corpus import BadFile, SourceFile, read_document
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import Row, build_row

MAX_WORKERS = 8
# Below this many chunks, starting processes (each parses the tokenizer) costs more than it saves.
MIN_CHUNKS_FOR_WORKERS = 8


@dataclass(frozen=True)
class RowMeta:
    doc_id: str
    label: int
    empty: bool  # the text is empty or whitespace only
    replaced_utf8: bool


@dataclass(frozen=True)
class Chunk:
    rows: list[Row]
    meta: list[RowMeta]
    bad: list[tuple[Path, str]]  # files that could not be read, with the reason


_state: dict[str, object] = {}


def _exit_with(parent: int) -> None:
    """A pool worker outlives a SIGKILLed prepare (it holds its own end of the task queue):
    leave as soon as the parent is gone."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(tokenizer_json: str, template: TemplateIds) -> None:
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    _init(tokenizer_json, template)


def _init(tokenizer_json: str, template: TemplateIds) -> None:
    from rvl_llm.pipeline.tokenize import backend_from_json, loop_encoder

    _state["encode"] = loop_encoder(backend_from_json(tokenizer_json))
    _state["template"] = template


def process_chunk(files: list[SourceFile]) -> Chunk:
    from rvl_llm.pipeline.tokenize import encode_documents

    template: TemplateIds = _state["template"]  # type: ignore[assignment]
    docs, bad = [], []
    for source in files:
        try:
            docs.append(read_document(source))
        except BadFile as err:
            bad.append((err.path, err.reason))
    ids = encode_documents(_state["encode"], [d.text for d in docs], template.document_budget)  # type: ignore[arg-type]
    rows = [build_row(i, d.label, template) for i, d in zip(ids, docs, strict=True)]
    meta = [RowMeta(d.doc_id, d.label, not d.text.strip(), d.replaced_utf8) for d in docs]
    return Chunk(rows, meta, bad)


class ChunkRunner:
    """Maps ``process_chunk`` over chunks in order: in worker processes when there is enough
    work to pay for starting them, else in this process."""

    def __init__(self, tokenizer_json: str, template: TemplateIds, *, workers: int) -> None:
        self.tokenizer_json = tokenizer_json
        self.template = template
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, chunks: list[list[SourceFile]]) -> Iterator[Chunk]:
        if self.workers < 2 or len(chunks) < MIN_CHUNKS_FOR_WORKERS:
            if _state.get("template") is not self.template:  # parse the tokenizer once per build
                _init(self.tokenizer_json, self.template)
            yield from map(process_chunk, chunks)
            return
        if self._pool is None:
            # spawn: a clean interpreter (no forked tokenizer threads); it imports only pipeline
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.tokenizer_json, self.template),
            )
        # In order, with at most two chunks per worker in flight: memory stays flat in corpus size.
        pending: deque[Future[Chunk]] = deque()
        for chunk in chunks:
            pending.append(self._pool.submit(process_chunk, chunk))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))

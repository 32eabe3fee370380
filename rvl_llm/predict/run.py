"""``run_predict``: a checkpoint + unlabelled documents -> one record per document, in input order.

Read top to bottom: check the output and the checkpoint's recipe; make sure there is input at
all; load the checkpoint once as a :class:`Classifier`; then stream the documents in chunks
(read, cut and tokenised by the pipeline, scored, written), so memory stays flat whatever the
input's size. Under ``accelerate launch`` every process reads the same chunk, scores a contiguous
share of it and the shares are gathered in order on rank 0, which alone writes. A bad input is
reported by name and skipped; the others are kept.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from rvl_llm.errors import RvlError
from rvl_llm.predict.classifier import TEXTS_PER_PASS
from rvl_llm.predict.config import PredictConfig
from rvl_llm.predict.inputs import STDIN, BadInput, InputDocument, iter_inputs

if TYPE_CHECKING:
    from rvl_llm.pipeline.template import Row

Log = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class PredictResult:
    documents: int  # records written
    skipped: tuple[BadInput, ...]  # inputs that could not be used, in input order
    truncated: int  # documents cut to fit max-len
    seconds: float  # from the model loaded to the last record written
    out: Path | None  # None: standard output
    is_main: bool = True  # False on the other processes of a launch (they write nothing)

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


def run_predict(cfg: PredictConfig, log: Log | None = None, *, stdin: IO[str] | None = None,
                stdout: IO[str] | None = None) -> PredictResult:
    say = log or (lambda _msg: None)
    from rvl_llm.inference.checkpoint import weights_folder
    from rvl_llm.inference.distributed import contiguous_share, gather_in_rank_order
    from rvl_llm.predict.classifier import Classifier
    from rvl_llm.predict.outputs import RecordWriter, check_output
    from rvl_llm.recipe import Recipe

    if cfg.out is not None:
        check_output(cfg.out)
    checkpoint = weights_folder(cfg.checkpoint)
    Recipe.read(checkpoint)  # a bad -c is named before any input is read (the weights: at load)
    state = _process_state()
    world, rank, is_main = state.num_processes, state.process_index, state.is_main_process
    if STDIN in cfg.inputs and world > 1:
        raise RvlError("INPUT -: standard input reaches one process only; under a "
                       "multi-process launch pass files or folders")
    items = iter_inputs(cfg.inputs, text_field=cfg.text_field, stdin=stdin)
    first = next(items, None)
    if first is None:
        raise RvlError(f"INPUT {' '.join(cfg.inputs)}: no documents (empty files or folders)")
    classifier = Classifier.from_checkpoint(
        checkpoint, device=str(state.device) if world > 1 else None, max_len=cfg.max_len,
        batch_size=cfg.batch_size, class_chunk=cfg.class_chunk,
        trust_remote_code=cfg.trust_remote_code)
    say(f"predict: {checkpoint} ({classifier.recipe.mode}, {len(classifier.labels)} labels, "
        f"max-len {classifier.max_len}"
        + (f", {world} processes" if world > 1 else "") + ")")
    start = time.perf_counter()
    documents, truncated, skipped = 0, 0, []
    chunks = _chunks(itertools.chain([first], items), TEXTS_PER_PASS * world)

    def read_next() -> _Chunk | None:
        """The next chunk: every item, and this process's share as prompt rows."""
        chunk = next(chunks, None)
        if chunk is None:
            return None
        docs = [item for item in chunk if isinstance(item, InputDocument)]
        begin, end = contiguous_share(len(docs), rank, world)
        mine = docs[begin:end]
        return _Chunk(chunk, mine, classifier.rows.prompt_rows([d.text for d in mine]))

    writer = RecordWriter(cfg.out, top_k=cfg.top_k, stdout=stdout) if is_main else nullcontext()
    # One chunk is read and tokenised ahead by a thread while the model scores this one (both
    # release the GIL): on a GPU the tokenising costs no time; memory holds two chunks at most.
    with writer as sink, _progress(cfg.progress if is_main else False) as bar, \
            ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(read_next)
        while (current := ahead.result()) is not None:
            ahead = reader.submit(read_next)
            mine = current.mine
            scored = classifier.score_rows(current.rows) if mine else None
            predictions = classifier.predictions(scored, cfg.top_k) if scored else []
            records = [p.record(d.id) for d, p in zip(mine, predictions, strict=True)]
            shares = gather_in_rank_order(records, state)  # every process, every chunk
            if not is_main:
                continue
            gathered = [record for share in shares for record in share]
            sink.write(gathered)
            documents += len(gathered)
            truncated += sum(record["truncated"] for record in gathered)
            for bad in (item for item in current.items if isinstance(item, BadInput)):
                skipped.append(bad)
                say(f"skipped {bad.source}: {bad.reason}")
            bar.update(len(current.items))
        if is_main and documents == 0:  # raised inside: nothing is written
            raise RvlError(f"INPUT {' '.join(cfg.inputs)}: no document could be read "
                           f"({len(skipped)} skipped, listed above)")
    return PredictResult(documents, tuple(skipped), truncated, time.perf_counter() - start,
                         cfg.out, is_main)


@dataclass(frozen=True)
class _Chunk:
    items: list[InputDocument | BadInput]  # as read, in input order
    mine: list[InputDocument]  # this process's contiguous share of the documents
    rows: list[Row]  # their prompt rows


def _process_state() -> Any:
    from rvl_llm.inference.distributed import process_state

    return process_state()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    # No total: the input is a stream (standard input, a JSON lines file being read).
    return tqdm(desc="predict", unit="doc", disable=None if enabled is None else not enabled)

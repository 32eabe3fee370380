"""``run_predict``: a checkpoint + unlabelled documents -> one record per document, in input order.

The documents stream in chunks (read, cut and tokenised, scored, written), so memory stays flat
whatever the input's size. Under ``accelerate launch`` every process reads the same chunk and
scores a contiguous share of it; rank 0 gathers the shares in order and alone writes. A bad input
is reported by name and skipped; the others are kept.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rvl_llm.errors import RvlError
from rvl_llm.inference.checkpoint import weights_folder
from rvl_llm.inference.distributed import contiguous_share, gather_in_rank_order, process_state
from rvl_llm.logs import Log, quiet
from rvl_llm.pipeline.corpus import is_empty_text
from rvl_llm.predict.classifier import TEXTS_PER_PASS, Classifier
from rvl_llm.predict.config import PredictConfig
from rvl_llm.predict.inputs import (
    MAX_DOCUMENT_BYTES,
    STDIN,
    BadInput,
    InputDocument,
    iter_inputs,
    no_documents,
)
from rvl_llm.predict.outputs import RecordWriter, check_output
from rvl_llm.recipe import Recipe

if TYPE_CHECKING:
    from rvl_llm.pipeline.rows import PromptRows

SHOWN_DUPLICATES = 10  # duplicate ids named one a line; the summary counts them all


@dataclass(frozen=True)
class PredictResult:
    documents: int  # records written
    skipped: tuple[BadInput, ...]  # inputs that could not be used, in input order
    truncated: int  # documents cut to fit max-len
    seconds: float  # from the model loaded to the last record written
    out: Path | None  # None: standard output
    is_main: bool  # False on the other processes of a launch (they write nothing)
    counts: DocumentCounts  # what prepare counts too, and repeated ids

    def summary(self) -> str:
        """The closing line on standard error."""
        where = str(self.out) if self.out is not None else "standard output"
        c = self.counts
        rate = self.documents / self.seconds if self.seconds > 0 else 0.0
        return (f"predict: {self.documents} documents to {where} in {self.seconds:.1f}s "
                f"({rate:.1f} docs/s), {self.truncated} truncated, "
                f"{c.empty} empty, {c.replaced_utf8} not UTF-8 (bytes replaced), "
                f"{c.cut} cut at read, {c.duplicate_ids} duplicate ids, "
                f"{len(self.skipped)} skipped")


def run_predict(cfg: PredictConfig, log: Log = quiet, *, stdin: IO[str] | None = None,
                stdout: IO[str] | None = None) -> PredictResult:
    if cfg.out is not None:
        check_output(cfg.out, cfg.inputs)
    checkpoint = weights_folder(cfg.checkpoint)
    recipe = Recipe.read(checkpoint)  # a bad -c is named before any input is read
    state = process_state()
    world, rank, is_main = state.num_processes, state.process_index, state.is_main_process
    if STDIN in cfg.inputs and world > 1:
        raise RvlError("INPUT -: standard input reaches one process only; under a "
                       "multi-process launch pass files or folders")
    # Scans are OCR'd with the engine settings of the training data's OCR manifest, if any.
    items = iter_inputs(cfg.inputs, text_field=cfg.text_field, stdin=stdin,
                        ocr_data=recipe.data.data_dir)
    first = next(items, None)
    if first is None:
        raise no_documents(cfg.inputs)
    classifier = Classifier.from_checkpoint(
        checkpoint, device=str(state.device) if world > 1 else None, max_len=cfg.max_len,
        batch_size=cfg.batch_size, class_chunk=cfg.class_chunk,
        trust_remote_code=cfg.trust_remote_code)
    log(f"predict: {checkpoint} ({classifier.recipe.mode}, {len(classifier.labels)} labels, "
        f"max-len {classifier.max_len}"
        + (f", {world} processes" if world > 1 else "") + ")")
    start = time.perf_counter()
    documents, truncated, skipped, counts = 0, 0, [], DocumentCounts()
    stream = itertools.chain([first], items)
    chunks = iter(lambda: list(itertools.islice(stream, TEXTS_PER_PASS * world)), [])

    def read_next() -> tuple[list[Any], list[InputDocument], PromptRows] | None:
        """The next chunk: every item as read, this process's contiguous share of its documents
        and their prompt rows (one per document, or its windows)."""
        chunk = next(chunks, None)
        if chunk is None:
            return None
        docs = [item for item in chunk if isinstance(item, InputDocument)]
        begin, end = contiguous_share(len(docs), rank, world)
        mine = docs[begin:end]
        return chunk, mine, classifier.rows.prompt_rows([d.text for d in mine])

    writer = RecordWriter(cfg.out, top_k=cfg.top_k, stdout=stdout) if is_main else nullcontext()
    # One chunk is read and tokenised ahead by a thread while the model scores this one (both
    # release the GIL): on a GPU the tokenising costs no time; memory holds two chunks at most.
    with writer as sink, _progress(cfg.progress if is_main else False) as bar, \
            ThreadPoolExecutor(max_workers=1) as reader:
        for stale in sink.removed_stale if is_main else []:
            log(f"removed {stale}: the temporary file of a predict run that was killed")
        ahead = reader.submit(read_next)
        while (current := ahead.result()) is not None:
            ahead = reader.submit(read_next)
            items_read, mine, rows = current
            scored = classifier.score_rows(rows) if mine else None
            predictions = (classifier.predictions(scored, cfg.top_k, cfg.min_probability)
                           if scored else [])
            # A document cut at read is truncated whatever its row says.
            records = [p.record(d.id) | ({"truncated": True} if d.cut else {})
                       for d, p in zip(mine, predictions, strict=True)]
            shares = gather_in_rank_order(records, state)  # every process, every chunk
            if not is_main:
                continue
            gathered = [record for share in shares for record in share]
            sink.write(gathered)
            documents += len(gathered)
            truncated += sum(record["truncated"] for record in gathered)
            for item in items_read:
                if isinstance(item, BadInput):
                    skipped.append(item)
                    log(f"skipped {item.source}: {item.reason}")
                else:
                    counts.add(item, log)
            bar.update(len(items_read))
        if is_main and documents == 0:  # raised inside: nothing is written
            raise RvlError(f"INPUT {' '.join(cfg.inputs)}: no document could be read "
                           f"({len(skipped)} skipped, listed above)")
    return PredictResult(documents, tuple(skipped), truncated, time.perf_counter() - start,
                         cfg.out, is_main, counts)


@dataclass
class DocumentCounts:
    """Documents labelled all the same, counted by prepare's rules (``empty``: empty or
    whitespace only; ``replaced_utf8``: bytes that were not UTF-8, binary or Latin-1, decoded
    with replacement), plus what predict alone meets."""

    empty: int = 0
    replaced_utf8: int = 0
    cut: int = 0  # .txt files longer than inputs.MAX_DOCUMENT_BYTES: their start was read
    duplicate_ids: int = 0  # documents whose id an earlier document had (records keep both)
    # hash() of every id seen: 8 bytes each rather than the id, for a million-document run
    _seen: set[int] = field(default_factory=set, repr=False)

    def add(self, doc: InputDocument, say: Log) -> None:
        self.empty += is_empty_text(doc.text)
        self.replaced_utf8 += doc.replaced_utf8
        if doc.cut:
            self.cut += 1
            say(f"cut {doc.source}: longer than {MAX_DOCUMENT_BYTES >> 20} MiB; its start "
                "was read and labelled (truncated)")
        key = hash(doc.id)
        if key in self._seen:
            self.duplicate_ids += 1
            if self.duplicate_ids <= SHOWN_DUPLICATES:
                say(f"warning: duplicate id {doc.id!r} at {doc.source} (an earlier document "
                    "has it); both records are written")
        self._seen.add(key)


def _progress(enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    # No total: the input is a stream (standard input, a JSON lines file being read).
    return tqdm(desc="predict", unit="doc", disable=None if enabled is None else not enabled)

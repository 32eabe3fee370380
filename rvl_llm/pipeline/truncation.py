"""How a document longer than its budget becomes rows: pure functions over token ids.

- ``head`` (the default): the first ``budget`` tokens, as ``template.build_row`` always cut.
- ``head+tail``: the first ``budget - keep_tail`` and the last ``keep_tail`` tokens of the whole
  document's ids (closing pages often name the kind of document: "Sincerely", a total due).
- ``chunks``: the document cut into windows of the budget, consecutive windows sharing
  ``chunk_overlap`` tokens; with ``chunk_by="page"`` each OCR page (pages are joined by a form
  feed) starts its own windows. Every window is a row with the document's ``doc_id``; eval and
  predict aggregate the windows' class log-probabilities per document
  (``rvl_llm.inference.aggregate``). Training takes every window, or the first only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import Row, build_row
from rvl_llm.pipeline.tokenize import EncodeBatch, encode_documents

STRATEGIES = ("head", "head+tail", "chunks")
AGGREGATES = ("mean", "max")
TRAIN_CHUNKS = ("all", "first")
CHUNK_BY = ("tokens", "page")
PAGE_BREAK = "\f"  # how the OCR stage joins the pages of one document


@dataclass(frozen=True)
class Truncation:
    """The row-shaping settings of long documents (checked on construction)."""

    strategy: str = "head"
    keep_tail: int | None = None  # head+tail: tokens kept from the end [half the budget]
    chunk_overlap: int = 0  # chunks: tokens two consecutive windows share
    chunk_by: str = "tokens"  # chunks: "page" starts new windows at each form feed
    train_chunks: str = "all"  # chunks: train on every window, or on the first only

    def __post_init__(self) -> None:
        for option, value, allowed in (("--truncation", self.strategy, STRATEGIES),
                                       ("--chunk-by", self.chunk_by, CHUNK_BY),
                                       ("--train-chunks", self.train_chunks, TRAIN_CHUNKS)):
            if value not in allowed:
                raise RvlError(f"{option} {value}: choose from {', '.join(allowed)}")
        if self.keep_tail is not None and self.keep_tail < 1:
            raise RvlError(f"--keep-tail {self.keep_tail}: must be a positive number of tokens")
        if self.chunk_overlap < 0:
            raise RvlError(f"--chunk-overlap {self.chunk_overlap}: must not be negative")
        if self.keep_tail is not None and self.strategy != "head+tail":
            raise RvlError(f"--keep-tail: only for --truncation head+tail, not {self.strategy}")
        chunked = {"--chunk-overlap": self.chunk_overlap != 0,
                   "--chunk-by": self.chunk_by != "tokens",
                   "--train-chunks": self.train_chunks != "all"}
        for option, given in chunked.items():
            if given and self.strategy != "chunks":
                raise RvlError(f"{option}: only for --truncation chunks, not {self.strategy}")

    def check_budget(self, budget: int) -> None:
        """What needs the template's document budget (known once the tokenizer is loaded)."""
        if self.keep_tail is not None and self.keep_tail >= budget:
            raise RvlError(f"--keep-tail {self.keep_tail}: must leave the head at least one of "
                           f"the document's {budget} tokens (lower it, or raise --max-len)")
        if self.chunk_overlap >= budget:
            raise RvlError(f"--chunk-overlap {self.chunk_overlap}: must be below the document "
                           f"budget of {budget} tokens (lower it, or raise --max-len)")


HEAD = Truncation()


def head_tail(ids: Sequence[int], budget: int, keep_tail: int | None = None) -> list[int]:
    """The first ``budget - keep_tail`` and last ``keep_tail`` ids; the whole of a document that
    fits. ``keep_tail`` None: half the budget (rounded down)."""
    if len(ids) <= budget:
        return list(ids)
    tail = budget // 2 if keep_tail is None else keep_tail
    if not 0 < tail < budget:
        raise RvlError(f"--keep-tail {tail}: must leave the head at least one of the "
                       f"document's {budget} tokens")
    return [*ids[: budget - tail], *ids[len(ids) - tail :]]


def windows(ids: Sequence[int], budget: int, overlap: int = 0) -> list[list[int]]:
    """Windows of ``budget`` ids that cover ``ids`` in order, each starting ``budget - overlap``
    after the one before; the last ends at the document's end. An empty document is one empty
    window (it still gets a prediction)."""
    if not 0 <= overlap < budget:
        raise RvlError(f"--chunk-overlap {overlap}: must be below the document budget of "
                       f"{budget} tokens")
    # A window starts wherever the one before it ended short of the document's end.
    starts = range(0, max(len(ids) - overlap, 1), budget - overlap)
    return [list(ids[start : start + budget]) for start in starts]


def page_windows(pages: Sequence[Sequence[int]], budget: int, overlap: int = 0) -> list[list[int]]:
    """Windows of each page's ids in turn (a window never spans two pages); empty pages give
    none, unless every page is empty."""
    out = [w for page in pages if page for w in windows(page, budget, overlap)]
    return out or [[]]


def encode_for(truncation: Truncation, encode: EncodeBatch, texts: Sequence[str],
               budget: int) -> list[list[list[int]]]:
    """Each text's token ids as the strategy needs them: one list (head: the first
    ``budget + 1`` ids; head+tail, chunks: all of them), or one per page (chunks by page)."""
    if truncation.strategy == "head":
        return [[ids] for ids in encode_documents(encode, texts, budget)]
    if truncation.strategy == "chunks" and truncation.chunk_by == "page":
        pages = [text.split(PAGE_BREAK) for text in texts]
        flat = iter(encode([p for text_pages in pages for p in text_pages]) if texts else [])
        return [list(islice(flat, len(text_pages))) for text_pages in pages]
    return [[ids] for ids in encode(list(texts))] if texts else []


def document_rows(pieces: Sequence[Sequence[int]], label: int | None, template: TemplateIds,
                  truncation: Truncation = HEAD, *, train: bool = False) -> list[Row]:
    """The rows of one document from ``encode_for``'s ids (``train``: the train split, where
    ``train_chunks`` applies). ``truncated`` says whether tokens of the document are in none of
    its rows."""
    budget = template.document_budget
    if truncation.strategy == "head":
        return [build_row(pieces[0], label, template)]
    if truncation.strategy == "head+tail":
        ids = pieces[0]
        row = build_row(head_tail(ids, budget, truncation.keep_tail), label, template)
        return [replace(row, truncated=len(ids) > budget)]
    if truncation.chunk_by == "page":
        cut = page_windows(pieces, budget, truncation.chunk_overlap)
    else:
        cut = windows(pieces[0], budget, truncation.chunk_overlap)
    dropped = train and truncation.train_chunks == "first" and len(cut) > 1
    return [replace(build_row(w, label, template), truncated=dropped)
            for w in (cut[:1] if dropped else cut)]

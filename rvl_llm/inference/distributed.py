"""Inference over several processes (``accelerate launch``, DDP): each process scores a
contiguous share of the documents with its own full model copy, and the shares are gathered in
rank order on the main process, which alone writes. One process is the same code with a share
of everything.

Contiguous shares keep the input order without sorting: concatenating the gathered shares in rank
order gives the documents back as they came.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from rvl_llm.inference.base_model import cpu_only, cuda_available
from rvl_llm.inference.scoring import Predictions

T = TypeVar("T")


def process_state() -> Any:
    """accelerate's PartialState, on CPU when there is no GPU (gloo between CPU processes)."""
    from accelerate import PartialState

    return PartialState(cpu=cpu_only())


def contiguous_share(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of process ``rank``'s share of ``n`` items; shares differ by one at most,
    the first ``n % world`` processes taking the larger."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of {world} processes")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def share_of(dataset: Any, rank: int, world: int) -> Any:
    """Process ``rank``'s contiguous share of a ``datasets.Dataset``; the dataset itself when
    the share is all of it."""
    start, end = contiguous_share(len(dataset), rank, world)
    if (start, end) == (0, len(dataset)):
        return dataset
    # An empty share (fewer rows than processes) is an empty list: datasets refuses range(n, n)
    # at the end of the split.
    return dataset.select(range(start, end) if end > start else [])


def concatenate_predictions(shares: list[Predictions]) -> Predictions:
    """One Predictions from the processes' contiguous shares, in rank (= input) order."""
    if len(shares) == 1:
        return shares[0]

    def joined(name: str) -> Any:
        parts = [getattr(s, name) for s in shares]
        return None if parts[0] is None else np.concatenate(parts)

    generated = [s.generated for s in shares]
    return Predictions(
        doc_ids=[d for s in shares for d in s.doc_ids],
        true=joined("true"),
        predicted=joined("predicted"),
        probs=joined("probs"),
        generated=None if generated[0] is None else [g for part in generated for g in part],
        invalid=sum(s.invalid for s in shares),
        scores=joined("scores"),
    )


def gather_in_rank_order(share: T, state: Any) -> list[T]:
    """Every process's ``share`` in rank order (each process gets the list). A collective: every
    process must call it, the same number of times."""
    if state.num_processes == 1:
        return [share]
    from accelerate.utils import gather_object

    return list(gather_object([share]))


def device_map(device: str | None = None, state: Any = None) -> Any:
    """``from_pretrained``'s device_map: the one rule train, eval, predict and export load by.

    ``device`` as asked: "auto" spreads the layers over every visible GPU; "cpu" is None (plain
    tensors, nothing dispatched); another device ("cuda:1") holds the whole model. None chooses:
    under a multi-process launch (``state``) each process's own device; else every visible GPU,
    or the CPU when there is none.
    """
    if device is None and state is not None and state.num_processes > 1:
        device = str(state.device)
    if device is None:
        device = "auto" if cuda_available() else "cpu"
    if device == "auto":
        return "auto"
    return None if device == "cpu" else {"": device}

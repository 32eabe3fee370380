"""Inference over several processes (``accelerate launch``, DDP): each process scores a
contiguous share of the documents with its own full model copy, and the shares are gathered in
rank order on the main process, which alone writes. One process is the same code with a share
of everything.

Contiguous shares keep the input order without sorting: concatenating the gathered shares in rank
order gives the documents back as they came.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def process_state() -> Any:
    """accelerate's PartialState, on CPU when there is no GPU (gloo between CPU processes)."""
    from accelerate import PartialState

    from rvl_llm.inference.base_model import cpu_only

    return PartialState(cpu=cpu_only())


def contiguous_share(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of process ``rank``'s share of ``n`` items; shares differ by one at most,
    the first ``n % world`` processes taking the larger."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of {world} processes")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def gather_in_rank_order(share: T, state: Any) -> list[T]:
    """Every process's ``share`` in rank order (each process gets the list). A collective: every
    process must call it, the same number of times."""
    if state.num_processes == 1:
        return [share]
    from accelerate.utils import gather_object

    return list(gather_object([share]))


def inference_device_map(state: Any) -> Any:
    """Where a process puts its model: its own device under a multi-process launch; one process
    spreads layers over every visible GPU (only if one is too small); None on CPU."""
    if state.num_processes > 1:
        return {"": state.device}
    import torch

    return "auto" if torch.cuda.is_available() else None

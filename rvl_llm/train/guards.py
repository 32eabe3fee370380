"""Stop a run whose loss or weights stop being finite, before it saves, validates or finishes:
without this, ``-l inf`` or any diverging run ends with exit 0 and a ``final/`` of NaN weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.train.run_folder import resume_point

CHUNK = 1 << 24  # elements per finiteness check: at most 16 MiB of temporary booleans
LOGGED = (("loss", "the loss"), ("grad_norm", "the gradient norm"))


class NonFiniteTraining(RvlError):
    """The loss, the gradient norm or a trainable weight became NaN or infinite."""


def divergence_message(run_dir: Path, step: int, what: str) -> str:
    """One line: where it diverged, what to try, and what is left on disk."""
    last, _ = resume_point(run_dir)
    kept = (f"kept the last good checkpoint {last}" if last is not None
            else "no checkpoint was saved before it")
    return (f"training diverged at step {step}: {what} (lower --lr, or check --mixed-precision); "
            f"{kept}; final/ was not written")


def non_finite_logs(logs: dict[str, Any]) -> str | None:
    """'the loss is nan' for the first logged loss or gradient norm that is not finite."""
    for key, label in LOGGED:
        value = logs.get(key)
        if value is not None and not math.isfinite(float(value)):
            return f"{label} is {float(value)}"
    return None


def weights_finite(model: Any) -> bool:
    """True when every trainable parameter is finite: one flag per chunk, one sync per device
    (isfinite, not a sum: a sum of large finite bf16/fp16 values can overflow to inf)."""
    import torch

    flags: dict[Any, list[Any]] = {}
    for p in model.parameters():
        if p.requires_grad:
            local = p.to_local() if hasattr(p, "to_local") else p  # FSDP2 DTensor: own shard
            # In chunks: isfinite makes a boolean copy, a GiB for a full fine-tune's embedding.
            for chunk in local.detach().reshape(-1).split(CHUNK):
                flags.setdefault(local.device, []).append(torch.isfinite(chunk).all())
    finite = all(bool(torch.stack(device_flags).all()) for device_flags in flags.values())
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Sharded weights (FSDP): each process sees its shard; all must stop together or the
        # others hang in the next collective.
        on_gpu = torch.cuda.is_available() and torch.distributed.get_backend() != "gloo"
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu"
        bad = torch.tensor(0 if finite else 1, device=device)
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        finite = not bool(bad)
    return finite


def finite_guard(run_dir: Path) -> Any:
    """A TrainerCallback raising NonFiniteTraining. Put it last in ``callbacks`` so flags set by
    other callbacks (a save at the end) are seen; needs ``logging_nan_inf_filter=False``."""
    from transformers import TrainerCallback

    class FiniteGuard(TrainerCallback):
        checked_step = -1  # on_step_end and on_epoch_end may both come for one step

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            problem = non_finite_logs(logs or {})
            if problem is None:
                return
            # fp16's loss scaler skips steps whose gradients overflowed and logs their norm as
            # inf: only the weights tell whether this run is lost.
            if getattr(args, "fp16", False) and problem.startswith("the gradient norm"):
                model = kwargs.get("model")
                if model is None or weights_finite(model):
                    return
                problem = "trainable weights are nan or infinite"
            raise NonFiniteTraining(divergence_message(run_dir, state.global_step, problem))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._check_weights(state, control, kwargs.get("model"))

        on_epoch_end = on_step_end

        def _check_weights(self, state: Any, control: Any, model: Any) -> None:
            due = (control.should_save or control.should_evaluate
                   or state.global_step >= state.max_steps)
            if not due or model is None or self.checked_step == state.global_step:
                return
            if not weights_finite(model):
                raise NonFiniteTraining(divergence_message(
                    run_dir, state.global_step, "trainable weights are nan or infinite"))
            self.checked_step = state.global_step

    return FiniteGuard()

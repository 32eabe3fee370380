"""Every use of transformers' private or renamed API, in one place, each with a named test in
``tests/test_compat.py``. pyproject pins the transformers range these were tested on; when a new
release breaks one, that test names the shim to change.

Heavy: imports transformers when called. Only training and scoring code imports this module.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

# -- the KV cache (scoring) -------------------------------------------------------------------


def cache_kwarg() -> str:
    """The forward keyword of the KV cache: ``past_key_values``, renamed ``cache`` in 5.2x."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def new_cache(model: Any) -> Any:
    """An empty dynamic cache for ``model`` (sliding-window layers where its config has them)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def fork_cache(cache: Any) -> Any:
    """A cache sharing the prompt's key/value tensors. A layer's update and repeat rebind its
    tensors rather than write into them (``DynamicLayer`` internals), so every fork starts from the
    untouched prompt cache without a copy (``crop()`` would not undo a sliding-window layer's
    trimming)."""
    forked = copy.copy(cache)
    forked.layers = [copy.copy(layer) for layer in cache.layers]
    return forked


# -- TrainingArguments ------------------------------------------------------------------------


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing under the name this transformers uses (renamed "activation_" in
    5.2x; 5.17 knows the old name only)."""
    if not enabled:
        return {}
    from transformers import TrainingArguments

    new = "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
    name = "activation_checkpointing" if new else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


# -- Trainer internals ------------------------------------------------------------------------


def close_progress_bars(trainer: Any) -> None:
    """Close the bars ``ProgressCallback`` left open when training stopped with an error: an open
    bar would put the error message on its own line, and a log search for it would miss it."""
    for callback in trainer.callback_handler.callbacks:
        for name in ("training_bar", "prediction_bar"):
            bar = getattr(callback, name, None)
            if bar is not None:
                bar.close()
                setattr(callback, name, None)


class TrainerOverrides:
    """Overrides of private ``Trainer`` methods; mixed in before ``Trainer``. The subclass sets
    ``head_only``."""

    head_only: bool = False

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """The Trainer's length-grouped sampler, given the lengths as a list: it reads them one
        by one, which from a ``datasets`` Column costs a minute an epoch on RVL-CDIP."""
        dataset = self.train_dataset if train_dataset is None else train_dataset  # type: ignore[attr-defined]
        args = self.args  # type: ignore[attr-defined]
        if args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(dataset)  # type: ignore[misc]
        from transformers.trainer_pt_utils import LengthGroupedSampler

        lengths = dataset.with_format("arrow")[args.length_column_name].to_pylist()
        batch = args.train_batch_size * args.gradient_accumulation_steps
        return LengthGroupedSampler(batch, lengths=lengths)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """In head-only classifier mode a checkpoint holds the head, not the frozen base."""
        if self.head_only and state_dict is None:
            model = self.accelerator.unwrap_model(self.model)  # type: ignore[attr-defined]
            trained = {name for name, p in model.named_parameters() if p.requires_grad}
            state_dict = {k: v for k, v in model.state_dict().items() if k in trained}
        super()._save(output_dir, state_dict)  # type: ignore[misc]

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """A head-only checkpoint leaves out the frozen base on purpose, and a tied output layer
        (``lm_head.weight`` = the embeddings) is never saved: neither is a missing key."""
        if self.head_only:
            load_result = load_result._replace(missing_keys=[])
        tied = tied_weight_names(self.model)  # type: ignore[attr-defined]
        missing = [k for k in load_result.missing_keys
                   if not any(k == t or k.endswith("." + t) for t in tied)]
        super()._issue_warnings_after_load(  # type: ignore[misc]
            load_result._replace(missing_keys=missing))


def tied_weight_names(model: Any) -> tuple[str, ...]:
    """Parameters that are another parameter (tied embeddings), as ``_tied_weights_keys`` (a
    private attribute: a dict target -> source in transformers 5, a list before) names them,
    found on the model or on the model a peft wrapper holds."""
    inner = getattr(model, "get_base_model", lambda: model)()
    tied = getattr(inner, "_tied_weights_keys", None) or ()
    if not getattr(getattr(inner, "config", None), "tie_word_embeddings", False):
        return ()
    return tuple(tied)


# -- names transformers knows -----------------------------------------------------------------


def reporting_integrations() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every tracker ``report_to`` can name, the ones installed here): transformers' registry
    ``INTEGRATION_TO_CALLBACK`` (not exported) and ``get_available_reporting_integrations``."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return tuple(sorted(INTEGRATION_TO_CALLBACK)), tuple(get_available_reporting_integrations())


def attention_implementations() -> tuple[str, ...]:
    """The ``attn_implementation`` names of this transformers: eager (built into every model)
    and the registered kernels (``ALL_ATTENTION_FUNCTIONS`` in ``modeling_utils``)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ("eager", *sorted(ALL_ATTENTION_FUNCTIONS.valid_keys()))

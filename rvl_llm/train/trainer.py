"""The Trainer subclass: completion-only loss on the last positions, validation by real accuracy.

Generative runs ask the model for logits at the last ``K + 1`` positions only (K = the longest
completion): with left padding every completion lies there, and full logits of a Llama 3 batch
(128k vocabulary) would cost GiBs for 3-5 useful tokens per document. ``evaluate`` scores the
validation split with exact label scoring (the Trainer's eval loop would reorder rows by length
and hold full logits), so ``load_best_model_at_end`` keeps the most accurate epoch. The
private-method overrides live in ``rvl_llm.compat``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from transformers import Trainer

from rvl_llm.compat import TrainerOverrides
from rvl_llm.inference.aggregate import aggregate_predictions
from rvl_llm.inference.distributed import concatenate_predictions, gather_in_rank_order, share_of
from rvl_llm.inference.metrics import compute_metrics
from rvl_llm.inference.scoring import predict
from rvl_llm.pipeline.manifest import IGNORE_INDEX, TemplateIds
from rvl_llm.train.run_folder import save_failure

if TYPE_CHECKING:
    import datasets

# Classes scored together per document in validation: the prompt's KV cache is repeated this
# many times, which bounds the extra memory next to the training state.
VALIDATION_CLASS_CHUNK = 4


def completion_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    completion_len: int,
    num_items_in_batch: torch.Tensor | int | None = None,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """Cross-entropy of the completion tokens from logits at the last ``completion_len + 1``
    positions; equal to the full causal-LM loss because no label lies before them.
    ``token_weights`` ([batch, completion_len], from ``completion_weights``) weighs each token's
    term; the sum is still divided by the count of labelled tokens."""
    k = completion_len
    outputs = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        position_ids=inputs["position_ids"],
        logits_to_keep=k + 1,
    )
    logits = outputs.logits[:, -(k + 1) :]  # a model that ignores logits_to_keep still works
    logits = logits[:, :-1].float()  # position t predicts token t + 1
    target = inputs["labels"][:, -k:].to(logits.device)
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="none",
    )
    if token_weights is not None:
        per_token = per_token * token_weights.to(per_token.device).reshape(-1)
    total = per_token.sum()
    count = (target != IGNORE_INDEX).sum() if num_items_in_batch is None else num_items_in_batch
    return total / count, outputs


def completion_weights(
    labels: torch.Tensor, completions: Sequence[Sequence[int]], class_weights: Sequence[float]
) -> torch.Tensor:
    """[batch, K] weights of the last K label positions (K = the longest completion): each
    row's class weight on its completion's tokens. The class is read from the completion the
    row's labels hold (completions are distinct per class), so rows need no extra column."""
    k = max(len(c) for c in completions)
    classes = {tuple(c): i for i, c in enumerate(completions)}
    tail = labels[:, -k:].cpu()
    weights = torch.zeros(tail.shape, dtype=torch.float32)
    for b, row in enumerate(tail.tolist()):
        completion = tuple(t for t in row if t != IGNORE_INDEX)
        if completion not in classes:
            raise ValueError("a row's completion is none of the template's: the shards do not "
                             "match the manifest's template")
        weights[b] = float(class_weights[classes[completion]])
    return weights


def classifier_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    num_items_in_batch: torch.Tensor | int | None = None,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """Cross-entropy of the head's logits; with ``class_weights`` each row's term is weighted
    by its class, and the sum divided by the count of rows (not of weights)."""
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    labels = inputs["labels"].to(outputs.logits.device)
    weight = None if class_weights is None else class_weights.to(outputs.logits.device)
    total = F.cross_entropy(outputs.logits.float(), labels, weight=weight, reduction="sum")
    count = labels.numel() if num_items_in_batch is None else num_items_in_batch
    return total / count, outputs


class RvlTrainer(TrainerOverrides, Trainer):
    def __init__(
        self,
        *args: Any,
        template: TemplateIds,
        class_names: Sequence[str],
        pad_token_id: int,
        head_only: bool = False,
        class_weights: Sequence[float] | None = None,
        chunk_aggregate: str = "mean",
        say: Callable[[str], None] = print,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.template = template
        self.class_names = tuple(class_names)
        self.pad_token_id = pad_token_id
        self.head_only = head_only
        self.class_weights = None if class_weights is None else tuple(class_weights)
        self.chunk_aggregate = chunk_aggregate  # windows of one document -> one prediction
        self.say = say  # the stage's reporter (not Trainer.log, which records metrics)
        # Our losses are sums divided by num_items_in_batch: the Trainer must count the items
        # (it only does for models that "accept loss kwargs") and must not divide again.
        self.model_accepts_loss_kwargs = True

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """A save that fails (a full disk: OSError from the tokenizer, SafetensorError from the
        weights, RuntimeError from torch.save) ends the run in one line naming the folder; the
        half-written folder goes and the last complete checkpoint stays."""
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError, SafetensorError) as err:
            run_dir = Path(self.args.output_dir)
            raise save_failure(run_dir / f"checkpoint-{self.state.global_step}", run_dir,
                               err) from err

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        weights = self.class_weights
        if self.template.mode == "generative":
            token_weights = None if weights is None else completion_weights(
                inputs["labels"], self.template.completions, weights)
            loss, outputs = completion_loss(model, inputs, self.template.max_completion_len,
                                            num_items_in_batch, token_weights)
        else:
            tensor = None if weights is None else torch.tensor(weights, dtype=torch.float32)
            loss, outputs = classifier_loss(model, inputs, num_items_in_batch, tensor)
        if (
            num_items_in_batch is not None
            and self.args.average_tokens_across_devices
            and self.accelerator.num_processes > 1
        ):
            # num_items_in_batch counts the labels of every process; DDP averages the gradients
            # over processes, so undo that average (as Trainer.compute_loss does).
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def evaluate(
        self,
        eval_dataset: datasets.Dataset | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        true, predicted = self._predict_validation(dataset)
        # predict returns rows in dataset order with their own labels: never pair predictions
        # with labels from another pass over the data (the Trainer's eval sampler reorders).
        scores = compute_metrics(true, predicted, self.class_names)
        accuracy, macro_f1 = float(scores["accuracy"]), float(scores["macro_f1"])
        if self.is_world_process_zero():
            self.say(f"epoch {self.state.epoch or 0.0:.2f}: validation accuracy {accuracy:.4f}"
                       f"  macro-F1 {macro_f1:.4f}  ({len(true)} documents)")
        metrics = {f"{metric_key_prefix}_accuracy": accuracy,
                   f"{metric_key_prefix}_macro_f1": macro_f1}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control,
                                                         metrics)
        return metrics

    def _predict_validation(self, dataset: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(true, predicted) class indices of every validation row, in dataset order.

        DDP: each process scores its contiguous share with the unwrapped model (no collective
        in a forward, so shares may differ in size) and the shares are gathered in rank order.
        FSDP: every forward needs every process, so all of them score the whole split.
        """
        shared = self.args.world_size > 1 and not self.is_fsdp_enabled
        share = share_of(dataset, self.args.process_index, self.args.world_size) if shared \
            else dataset
        model = self.model if self.is_fsdp_enabled else self.accelerator.unwrap_model(self.model)
        with self.accelerator.autocast():
            predictions = predict(
                model,
                share,
                self.template,
                pad_token_id=self.pad_token_id,
                batch_size=self.args.per_device_eval_batch_size,
                class_chunk=VALIDATION_CLASS_CHUNK,
                progress=False,
            )
        if shared:  # a collective: every process gathers, whatever its share
            predictions = concatenate_predictions(gather_in_rank_order(predictions,
                                                                       self.accelerator))
            assert len(predictions.true) == len(dataset), "validation shares do not add up"
        # Windows of one document (--truncation chunks) become one prediction, as in eval.
        predictions = aggregate_predictions(predictions, self.chunk_aggregate)
        return predictions.true, predictions.predicted

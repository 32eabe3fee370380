"""Predictions from a model over one prepared split: scored, generated or classified.

Generative models are scored, not sampled: for each document, log P(completion_c | prompt) for
every class c, where completion_c is the class name's tokens + EOS from the manifest's template.
That costs one forward over the prompt (cached, only the last position's logits kept) and one short
forward over the completion tokens per completion length (two or three), on the prompt cache
repeated once per class of that length. ``decode="generate"`` keeps the old greedy generation for
comparison. Rows are batched by length for throughput and
every result is put back in dataset order, so doc ids, labels and predictions always line up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from rvl_llm.compat import cache_kwarg, fork_cache, new_cache
from rvl_llm.errors import RvlError
from rvl_llm.inference import DECODES, Decode
from rvl_llm.pipeline.manifest import TemplateIds

if TYPE_CHECKING:
    import datasets
    import torch

INVALID = -1  # predicted class of a generation that is not a class name
# Row indices of one batch -> their prompts (read from shards, or taken from a list)
PromptsOf = Callable[[np.ndarray], list[list[int]]]


class NonFiniteScores(RvlError):
    """Scores with NaN or inf: no prediction, and no metric, can be made from them."""


@dataclass(frozen=True)
class Predictions:
    doc_ids: list[str]  # dataset order
    true: np.ndarray  # int class index, dataset order
    predicted: np.ndarray  # int class index, dataset order; INVALID for an invalid generation
    probs: np.ndarray | None  # [n, C] class probabilities (score / classifier), else None
    generated: list[str] | None  # decoded outputs for decode="generate", else None
    invalid: int  # generations that were not a class name
    # [n, C] natural-log scores: log P(completion_c | prompt) (score) or log-softmax (classifier)
    scores: np.ndarray | None = None


def predict(
    model: Any,
    dataset: datasets.Dataset,
    template: TemplateIds,
    *,
    pad_token_id: int,
    batch_size: int = 8,
    decode: str = Decode.SCORE,
    tokenizer: Any = None,
    labels: Sequence[str] | None = None,
    class_chunk: int | None = None,
    progress: bool | None = None,
) -> Predictions:
    """Predict every row of ``dataset`` (a split from ``Manifest.dataset``), in dataset order.

    ``decode`` matters in generative mode only; "generate" needs ``tokenizer`` and ``labels``.
    ``class_chunk`` bounds how many classes share one completion forward (memory: the prompt
    cache is repeated that many times); None scores all classes at once.
    """
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {DECODES}, got {decode!r}")
    generative = template.mode == "generative"
    if generative and decode == Decode.GENERATE and (tokenizer is None or labels is None):
        raise ValueError('decode="generate" needs the tokenizer and the label names')
    columns = dataset.select_columns(["prompt_len", "label", "doc_id"]).with_format("numpy")[:]
    lengths = np.asarray(columns["prompt_len"], dtype=np.int64)
    true = np.asarray(columns["label"], dtype=np.int64)
    doc_ids = [str(d) for d in columns["doc_id"]]
    ids_only = dataset.select_columns(["input_ids"])

    def prompts_of(batch: np.ndarray) -> list[list[int]]:  # rows read a batch at a time
        rows = ids_only[batch.tolist()]["input_ids"]
        return [list(r[:k]) for r, k in zip(rows, lengths[batch], strict=True)]

    if generative and decode == Decode.GENERATE:
        step = partial(_generate, model, template, pad_token_id, tokenizer)
        generated = list(_in_batches(model, lengths, prompts_of, batch_size, progress, step,
                                     np.empty(len(lengths), dtype=object)))
        index = {name: i for i, name in enumerate(labels or ())}
        predicted = np.array([index.get(text, INVALID) for text in generated], dtype=np.int64)
        return Predictions(doc_ids, true, predicted, None, generated,
                           int((predicted == INVALID).sum()))
    scores = _class_scores(model, template, lengths, prompts_of, pad_token_id, batch_size,
                           class_chunk, progress)
    return Predictions(doc_ids, true, scores.argmax(axis=1).astype(np.int64),
                       class_probabilities(scores), None, 0, scores)


def score_prompts(
    model: Any,
    prompts: Sequence[Sequence[int]],
    template: TemplateIds,
    *,
    pad_token_id: int,
    batch_size: int = 8,
    class_chunk: int | None = None,
    progress: bool | None = False,
) -> np.ndarray:
    """[n, C] natural-log class scores of prompts built by the pipeline (``Row.input_ids`` of
    unlabelled rows), in the given order: what ``predict`` computes for a prepared split."""
    lengths = np.array([len(p) for p in prompts], dtype=np.int64)
    return _class_scores(model, template, lengths, lambda batch: [list(prompts[i]) for i in batch],
                         pad_token_id, batch_size, class_chunk, progress)


def class_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the classes only (in score mode the model's mass outside the class names is
    dropped, which is what choosing among the classes means). NaN or inf scores are refused:
    argmax over NaN picks class 0, an answer that means nothing."""
    bad = int((~np.isfinite(scores)).any(axis=1).sum())
    if bad:
        raise NonFiniteScores(
            f"the class scores of {bad} of {len(scores)} documents are not finite: the "
            "model's weights hold NaN or inf (a diverged run?)"
        )
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _class_scores(model: Any, template: TemplateIds, lengths: np.ndarray,
                  prompts_of: PromptsOf, pad_token_id: int, batch_size: int,
                  class_chunk: int | None, progress: bool | None) -> np.ndarray:
    """[rows, C] natural-log class scores: completions scored, or a classifier's head."""
    if template.mode == "generative":
        step = partial(_score, model, template, pad_token_id, class_chunk)
        n_classes = len(template.completions)
    else:
        step = partial(_classify, model, pad_token_id)
        n_classes = int(model.config.num_labels)
    out = np.zeros((len(lengths), n_classes), np.float32)
    return _in_batches(model, lengths, prompts_of, batch_size, progress, step, out)


def _in_batches(model: Any, lengths: np.ndarray, prompts_of: PromptsOf, batch_size: int,
                progress: bool | None, step: Callable[[list[list[int]], Any], Any],
                out: np.ndarray) -> np.ndarray:
    """``out[rows] = step(prompts, device)`` for each length-sorted batch of rows, under
    inference mode: results land in the rows' order."""
    import torch
    from tqdm.auto import tqdm

    device = model.get_input_embeddings().weight.device
    was_training = model.training
    model.eval()
    disable = None if progress is None else not progress
    bar = tqdm(total=len(lengths), desc="eval", unit="doc", disable=disable)
    try:
        with torch.inference_mode():
            for batch in _length_batches(lengths, batch_size):
                out[batch] = step(prompts_of(batch), device)
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return out


def _length_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of similar length, longest first (an OOM shows up at once)."""
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _pad(
    prompts: list[list[int]], pad_token_id: int, *, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        span = slice(width - len(p), width) if left else slice(0, len(p))
        ids[i, span] = torch.tensor(p, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _classify(
    model: Any, pad_token_id: int, prompts: list[list[int]], device: torch.device
) -> np.ndarray:
    import torch

    # Right padding: HF sequence classification pools the last token that is not
    # config.pad_token_id, which train set to the same pad id.
    ids, mask = _pad(prompts, pad_token_id, left=False)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def _score(
    model: Any,
    template: TemplateIds,
    pad_token_id: int,
    class_chunk: int | None,
    prompts: list[list[int]],
    device: torch.device,
) -> np.ndarray:
    """[B, C] log P(completion_c | prompt): one cached prompt forward, then the completions."""
    import torch

    ids, mask = _pad(prompts, pad_token_id, left=True)
    ids, mask = ids.to(device), mask.to(device)
    # Positions count real tokens only, so left padding does not shift a prompt's positions.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = new_cache(model)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **{cache_kwarg(): cache})
    first = torch.log_softmax(out.logits[:, -1], dim=-1, dtype=torch.float32)  # [B, V]
    completions = template.completions
    firsts = torch.tensor([c[0] for c in completions], device=first.device)
    scores = first[:, firsts]  # [B, C]: each class's first token
    for group in _class_groups(completions, class_chunk):
        rest = _score_rest(model, fork_cache(cache), mask, [completions[c] for c in group])
        scores[:, group] += rest.to(scores.device)
    return scores.cpu().numpy()


def _class_groups(
    completions: Sequence[Sequence[int]], class_chunk: int | None
) -> list[list[int]]:
    """Classes whose completions have the same length (so no forward computes a padding
    position's full-vocabulary logits), at most ``class_chunk`` a group; single-token ones need
    no second forward."""
    by_length: dict[int, list[int]] = {}
    for c, tokens in enumerate(completions):
        if len(tokens) > 1:
            by_length.setdefault(len(tokens), []).append(c)
    groups = []
    for length in sorted(by_length):
        classes = by_length[length]
        size = class_chunk or len(classes)
        groups += [classes[i : i + size] for i in range(0, len(classes), size)]
    return groups


def _score_rest(
    model: Any, cache: Any, mask: torch.Tensor, completions: list[Sequence[int]]
) -> torch.Tensor:
    """[B, k] log P(c[1:] | prompt, c[0]) for k completions of one length, in one forward over
    c[:-1] on the prompt cache repeated k times (row b*k + j: document b, completion j)."""
    import torch

    batch, k, steps = mask.shape[0], len(completions), len(completions[0]) - 1
    device = mask.device
    feed = torch.tensor([list(c[:-1]) for c in completions], device=device).repeat(batch, 1)
    target = torch.tensor([list(c[1:]) for c in completions]).repeat(batch, 1)
    cache.batch_repeat_interleave(k)
    rows_mask = torch.cat([mask.repeat_interleave(k, 0), mask.new_ones((batch * k, steps))], 1)
    # Completion token j sits right after the prompt's real tokens, whatever the padding.
    rows_pos = mask.sum(-1).repeat_interleave(k)[:, None] + torch.arange(steps, device=device)
    out = model(input_ids=feed, attention_mask=rows_mask, position_ids=rows_pos, use_cache=True,
                logits_to_keep=steps, **{cache_kwarg(): cache})
    logp = torch.log_softmax(out.logits, dim=-1, dtype=torch.float32)  # [B*k, steps, V]
    picked = logp.gather(-1, target[..., None].to(logp.device))[..., 0]
    return picked.sum(-1).view(batch, k)


def _generate(
    model: Any,
    template: TemplateIds,
    pad_token_id: int,
    tokenizer: Any,
    prompts: list[list[int]],
    device: torch.device,
) -> list[str]:
    """Greedy continuations of the prompts, decoded and stripped (the old eval, for comparison)."""
    import torch

    ids, mask = _pad(prompts, pad_token_id, left=True)
    eos = sorted({c[-1] for c in template.completions})
    out = model.generate(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        max_new_tokens=template.max_completion_len + 3,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=pad_token_id,
        return_dict_in_generate=True,
        output_logits=True,  # a few steps' logits: enough to tell a diverged model
    )
    if not all(bool(torch.isfinite(step).all()) for step in out.logits):
        raise NonFiniteScores(
            "the generation's logits are not finite: the model's weights hold NaN or inf "
            "(a diverged run?)"
        )
    new = out.sequences[:, ids.shape[1] :].cpu().tolist()
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in new]

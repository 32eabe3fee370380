"""Pure functions from token ids to rows: budgets, truncation and completion-only label masks.

Nothing here sees a tokenizer or a string. The mask comes from segment boundaries: the
completion starts where the prompt's segments end, so no token search can miss it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import IGNORE_INDEX, TemplateIds


@dataclass(frozen=True)
class Row:
    input_ids: list[int]
    labels: list[int] | None  # generative, labelled: IGNORE_INDEX outside the completion
    prompt_len: int
    truncated: bool


def make_template(mode: str, max_len: int, *, prefix: Sequence[int], suffix: Sequence[int] = (),
                  directive: Sequence[int] = (),
                  completions: Sequence[Sequence[int]] = ()) -> TemplateIds:
    """The segments, and the document tokens that fit beside them: the longest label is reserved
    so the prompt a document gets is the same whatever its class (train and eval see one prompt)."""
    longest = max((len(c) for c in completions), default=0)
    fixed = len(prefix) + len(suffix) + len(directive) + longest
    if max_len - fixed < 1:
        raise RvlError(f"--max-len {max_len}: too small for the template, which needs {fixed} "
                       f"tokens ({len(prefix) + len(suffix)} special, {len(directive)} directive, "
                       f"{longest} longest label + EOS) and at least one document token")
    return TemplateIds(mode, tuple(prefix), tuple(suffix), tuple(directive),
                       tuple(tuple(c) for c in completions), document_budget=max_len - fixed)


def build_row(document: Sequence[int], label: int | None, template: TemplateIds) -> Row:
    """One row: the document cut to the budget, never the directive or the completion.

    ``document`` may be longer than the budget (the tokeniser keeps a few spare tokens so it can
    tell a cut from a fit); ``truncated`` says whether anything was dropped. Without a label (a
    document to predict) the row is the prompt alone, the same prompt a labelled row starts with.
    """
    truncated = len(document) > template.document_budget
    prompt = template.prompt(document)
    if template.mode != "generative" or label is None:
        return Row(prompt, None, len(prompt), truncated)
    completion = list(template.completions[label])
    return Row(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion, len(prompt),
               truncated)

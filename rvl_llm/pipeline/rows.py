"""Rows for documents that arrive as text. Prepare (labelled rows into shards) and predict
(unlabelled rows on the fly) both build from here, so a document gets the same prompt and
truncation from either, at the same max-len.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.pipeline.template import Row
from rvl_llm.pipeline.tokenize import (
    EncodeBatch,
    Log,
    TokenizerFiles,
    batch_encoder,
    load_tokenizer_files,
)
from rvl_llm.pipeline.truncation import HEAD, Truncation, document_rows, encode_for


@dataclass(frozen=True)
class PromptRows:
    """The prompt rows of some texts, in order: one per text, or (``--truncation chunks``) one
    per window, ``owner[i]`` naming the text of row ``i``."""

    rows: list[Row]
    owner: list[int]
    texts: int  # how many texts the rows are of


@dataclass(frozen=True)
class RowBuilder:
    template: TemplateIds
    encode: EncodeBatch  # the raw Rust tokenizer's batch call (special-token text stays text)
    truncation: Truncation = HEAD  # how a document longer than the budget becomes rows

    def prompt_rows(self, texts: Sequence[str]) -> PromptRows:
        """Each text's prompt rows (no completion, no label), in order."""
        pieces = encode_for(self.truncation, self.encode, texts, self.template.document_budget)
        per_text = [document_rows(doc, None, self.template, self.truncation) for doc in pieces]
        return PromptRows([row for rows in per_text for row in rows],
                          [i for i, rows in enumerate(per_text) for _ in rows], len(texts))


def load_row_builder(prompt: PromptSpec, tokenizer_dir: Path, *, trust_remote_code: bool = False,
                     log: Log | None = None) -> RowBuilder:
    """The template and encoder of ``prompt`` with the tokenizer in ``tokenizer_dir``."""
    files = load_tokenizer_files(tokenizer_dir, trust_remote_code=trust_remote_code, log=log)
    return row_builder(prompt, files)


def row_builder(prompt: PromptSpec, tokenizer: TokenizerFiles | Any) -> RowBuilder:
    """``load_row_builder`` for a tokenizer already loaded (a transformers one: a checkpoint's)."""
    if not isinstance(tokenizer, TokenizerFiles):
        tokenizer = TokenizerFiles.from_transformers(tokenizer)
    template = prompt.template_ids(tokenizer)
    truncation = prompt.settings.truncation_rule()
    truncation.check_budget(template.document_budget)  # --keep-tail, --chunk-overlap fit
    return RowBuilder(template, batch_encoder(tokenizer.backend), truncation)

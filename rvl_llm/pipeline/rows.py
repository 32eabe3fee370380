"""Rows for documents that arrive as text: the prompt a checkpoint's model sees for each one.

Prepare builds labelled rows into shards; predict builds unlabelled rows on the fly. Both go
through here (template from the tokenizer, documents cut to the budget, rows from segments), so
a document gets the same prompt and truncation from either, at the same max-len.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import Row, build_row
from rvl_llm.pipeline.tokenize import EncodeBatch, Log, TokenizerFiles, encode_documents

if TYPE_CHECKING:
    from rvl_llm.pipeline.chat import ChatPrompt


@dataclass(frozen=True)
class RowBuilder:
    template: TemplateIds
    encode: EncodeBatch  # the raw Rust tokenizer's batch call (special-token text stays text)

    def prompt_rows(self, texts: Sequence[str]) -> list[Row]:
        """Each text's prompt row (no completion, no label), in order."""
        documents = encode_documents(self.encode, texts, self.template.document_budget)
        return [build_row(document, None, self.template) for document in documents]


def load_row_builder(cfg: PrepareConfig, tokenizer_dir: Path, log: Log | None = None) -> RowBuilder:
    """The template and encoder ``cfg`` (mode, response template, labels, max-len) makes with
    the tokenizer in ``tokenizer_dir``: what prepare builds its shards with. The tokenizer is
    read from its files without transformers or torch where they allow (``log`` says if not)."""
    from rvl_llm.pipeline.tokenize import load_tokenizer_files

    files = load_tokenizer_files(tokenizer_dir, trust_remote_code=cfg.trust_remote_code, log=log)
    return row_builder(cfg, files)


def row_builder(cfg: PrepareConfig, tokenizer: TokenizerFiles | Any) -> RowBuilder:
    """``load_row_builder`` for a tokenizer already loaded: ``TokenizerFiles``, or a
    transformers tokenizer (a checkpoint's)."""
    from rvl_llm.pipeline.tokenize import batch_encoder, build_template

    labels = cfg.label_names()
    chat = _chat_prompt(cfg, tokenizer, labels)
    if not isinstance(tokenizer, TokenizerFiles):
        tokenizer = TokenizerFiles.from_transformers(tokenizer)
    encode = batch_encoder(tokenizer.backend)
    template = build_template(
        tokenizer,
        encode,
        generative=cfg.generative,
        response_template=cfg.response_template,
        labels=labels,
        max_len=cfg.max_len,
        chat=chat,
    )
    return RowBuilder(template, encode)


def _chat_prompt(
    cfg: PrepareConfig, tokenizer: TokenizerFiles | Any, labels: Sequence[str]
) -> ChatPrompt | None:
    """The chat prompt ``cfg`` resolves to (None: plain), with the tokenizer's own template:
    read from its folder (prepare), or from a loaded checkpoint's tokenizer (predict)."""
    from rvl_llm.pipeline import chat
    from rvl_llm.presets import load_presets

    # Prepare and recipes pass the resolved style; else --model's preset decides (a folder or a
    # hub id has none: plain), looked up by name so that no folder need exist.
    preset = load_presets().get(cfg.model) if cfg.prompt is None else None
    if chat.resolve_prompt(cfg, preset) != "chat":
        return None
    if isinstance(tokenizer, TokenizerFiles):
        template = chat.template_from_files(Path(tokenizer.name))
    else:
        template = chat.template_from_transformers(tokenizer)
    return chat.chat_prompt(cfg, template, labels)

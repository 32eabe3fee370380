"""The prompt: its settings (the flags), and the resolved prompt every stage renders from.

``PromptSettings`` is where a prompt setting is added: one field, with its ``cli`` metadata.
``resolve_prompt`` turns it, the model's preset, its tokenizer and the label set into a
``PromptSpec`` once; the spec nests the settings whole, so a new field reaches the cache key, the
recipe and the code that builds rows (``PromptSpec.template_ids``) with no other edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.options import DEFAULT_MAX_LEN, cli, max_len_field
from rvl_llm.pipeline.cache import tokenizer_fingerprint
from rvl_llm.pipeline.chat import ChatPrompt, chat_prompt, chat_template_ids
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.tokenize import TokenizerFiles, batch_encoder, build_template
from rvl_llm.pipeline.truncation import CHUNK_BY, STRATEGIES, TRAIN_CHUNKS, Truncation
from rvl_llm.presets import Preset

DEFAULT_RESPONSE_TEMPLATE = "\n\n### Classification:"
PROMPT_STYLES = ("plain", "chat")


@dataclass(frozen=True, kw_only=True)
class PromptSettings:
    """Every setting that shapes a document's row (besides the tokenizer and the label set)."""

    max_len: int = max_len_field(DEFAULT_MAX_LEN)
    generative: bool = field(default=False, metadata=cli(
        "-g", "--generative",
        help="Prompt + ' class name' + EOS with a completion-only loss mask (else a classifier)."))
    response_template: str = field(default=DEFAULT_RESPONSE_TEMPLATE, metadata=cli(
        "--response-template", help="Directive after the document in generative mode."))
    prompt: str | None = field(default=None, metadata=cli(
        "--prompt", type=click.Choice(PROMPT_STYLES),
        help="Generative prompt: plain (document + response template) or chat (the tokenizer's "
        "chat template) [the preset's, else plain]."))
    instruction: str | None = field(default=None, metadata=cli(
        "--instruction", help="Chat prompt: the user turn's instruction before the document "
        "[names the label set]."))
    # Read by ``resolve_prompt`` into ``instruction``: the resolved settings (cache key, recipe)
    # carry the text, so an edited file is a new prompt and a checkpoint needs no file.
    instruction_file: Path | None = field(default=None, metadata=cli(
        "--instruction-file", metavar="FILE", help="Chat prompt: the instruction read from a "
        "UTF-8 file (as --instruction; e.g. a paper's prompt listing the classes)."))
    label_descriptions: Path | None = field(default=None, metadata=cli(
        "--label-descriptions",
        help="Chat prompt: a file of 'class name: description' lines added to the instruction."))
    # Long documents (rvl_llm.pipeline.truncation): checked together by ``truncation_rule``.
    truncation: str = field(default="head", metadata=cli(
        "--truncation", type=click.Choice(STRATEGIES),
        help="A document longer than max-len: its head; its head and tail (--keep-tail); or "
        "chunks, windows of max-len scored apart and aggregated per document."))
    keep_tail: int | None = field(default=None, metadata=cli(
        "--keep-tail", metavar="M", help="head+tail: the document's last M tokens, the head "
        "gets the rest of the budget [half the budget]."))
    chunk_overlap: int = field(default=0, metadata=cli(
        "--chunk-overlap", metavar="N", help="chunks: tokens two consecutive windows share."))
    chunk_by: str = field(default="tokens", metadata=cli(
        "--chunk-by", type=click.Choice(CHUNK_BY),
        help="chunks: windows of the whole text, or of each OCR page (form feeds) apart."))
    train_chunks: str = field(default="all", metadata=cli(
        "--train-chunks", type=click.Choice(TRAIN_CHUNKS),
        help="chunks: train on every window of a document (its class each), or the first."))

    def __post_init__(self) -> None:
        """What needs no preset: a chat prompt is generative; an instruction is a chat prompt's
        (a preset's plain prompt with --instruction is refused by ``resolve_prompt``)."""
        if self.max_len < 1:
            raise RvlError(f"--max-len {self.max_len}: must be a positive number of tokens")
        if self.generative and not self.response_template.strip():
            raise RvlError("--response-template: must not be empty in generative mode")
        if self.prompt is not None and self.prompt not in PROMPT_STYLES:
            raise RvlError(f"--prompt {self.prompt}: choose from {', '.join(PROMPT_STYLES)}")
        if self.prompt == "chat" and not self.generative:
            raise RvlError("--prompt chat: a prompt is for generative mode; add -g (a classifier "
                           "reads the document alone)")
        if self.instruction is not None and self.instruction_file is not None:
            raise RvlError(f"--instruction-file {self.instruction_file}: not with --instruction "
                           "(both give the instruction); drop one")
        if self.chat_options() and (not self.generative or self.prompt == "plain"):
            raise RvlError(f"{self.chat_options()[0]}: only a chat prompt has an instruction; "
                           "pass -g --prompt chat (or a preset whose prompt is chat)")
        if self.instruction_file is not None:
            # Read here too, so a bad file stops a command before any write (train's run lock);
            # ``resolve_prompt`` reads it again into the resolved instruction.
            read_instruction(self.instruction_file)
        if self.instruction is not None and not self.instruction.strip():
            raise RvlError("--instruction: must not be empty")
        self.truncation_rule()  # refuses a bad combination of the long-document flags

    def truncation_rule(self) -> Truncation:
        """The long-document settings as one checked object (``document_rows`` takes it)."""
        return Truncation(self.truncation, keep_tail=self.keep_tail,
                          chunk_overlap=self.chunk_overlap, chunk_by=self.chunk_by,
                          train_chunks=self.train_chunks)

    @property
    def mode(self) -> str:
        return "generative" if self.generative else "classifier"

    def chat_options(self) -> list[str]:
        """The chat prompt's options given (none of them is a plain prompt's)."""
        return [option for option, value in (("--instruction", self.instruction),
                                             ("--instruction-file", self.instruction_file),
                                             ("--label-descriptions", self.label_descriptions))
                if value is not None]


@dataclass(frozen=True)
class PromptSpec:
    """The resolved prompt: what a row is made of, in clear text. The cache key hashes it, the
    recipe stores it, and ``template_ids`` turns it into token segments."""

    settings: PromptSettings  # as given, with the style resolved (``prompt``: plain or chat)
    tokenizer: dict[str, str]  # sha256 of each file of the tokenizer it was resolved with
    labels: tuple[str, ...]
    chat: ChatPrompt | None = None  # the chat style's template and instruction (descriptions in)

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def generative(self) -> bool:
        return self.settings.generative

    @property
    def style(self) -> str:
        return self.settings.prompt or "plain"

    @property
    def max_len(self) -> int:
        return self.settings.max_len

    def with_max_len(self, max_len: int | None) -> PromptSpec:
        """The same prompt cut to another max-len (eval's and predict's --max-len)."""
        if max_len in (None, self.max_len):
            return self
        return replace(self, settings=replace(self.settings, max_len=max_len))

    def template_ids(self, files: TokenizerFiles) -> TemplateIds:
        """The token segments of this prompt with the tokenizer ``files``."""
        if self.chat is not None:
            return chat_template_ids(files.backend, self.chat, labels=self.labels,
                                     max_len=self.max_len, model=files.name)
        return build_template(files, batch_encoder(files.backend), generative=self.generative,
                              response_template=self.settings.response_template,
                              labels=self.labels, max_len=self.max_len)


def resolve_prompt(settings: PromptSettings, *, model: str, preset: Preset | None,
                   tokenizer_dir: Path, labels: Sequence[str]) -> PromptSpec:
    """The one place a prompt is resolved: the style (--prompt, else the preset's, else plain; a
    classifier's is plain, the document alone), the chat template from the tokenizer's files and
    the instruction with the label descriptions."""
    style = "plain"
    if settings.generative:
        style = settings.prompt or (preset.prompt if preset is not None else "plain")
    given = settings.chat_options()
    if style != "chat" and settings.generative and given:
        raise RvlError(f"{given[0]}: only a chat prompt has an instruction, and --model "
                       f"{model}'s prompt is {style}; add --prompt chat")
    instruction = settings.instruction
    if settings.instruction_file is not None:
        instruction = read_instruction(settings.instruction_file)
    descriptions = settings.label_descriptions
    chat = (chat_prompt(tokenizer_dir, instruction=instruction, label_descriptions=descriptions,
                        labels=labels, model=model)
            if style == "chat" else None)
    # Only a plain generative prompt reads the response template: elsewhere it is the default,
    # so that it cannot split cache entries.
    template = settings.response_template if style == "plain" and settings.generative else None
    resolved = replace(settings, prompt=style, instruction=instruction, instruction_file=None,
                       response_template=template or DEFAULT_RESPONSE_TEMPLATE,
                       label_descriptions=descriptions.resolve() if descriptions else None)
    return PromptSpec(resolved, tokenizer_fingerprint(tokenizer_dir), tuple(labels), chat)


def read_instruction(path: Path) -> str:
    """An instruction file's text, refused in one line when it is missing, unreadable or blank."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise RvlError(f"--instruction-file {path}: cannot read ({reason}); give a UTF-8 text "
                       "file") from err
    if not text.strip():
        raise RvlError(f"--instruction-file {path}: the file is empty; write the instruction "
                       "in it")
    return text.strip()

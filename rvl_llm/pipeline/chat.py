"""Chat prompts: the document in a user turn of the tokenizer's chat template, the class name as
the assistant's reply, cut into the segments every row is built from (``TemplateIds``).

The conversation is rendered once, as transformers renders it, with sentinel strings in place
of the document and of the class name, and split at them; each piece is tokenised with special
tokens recognised. Documents are tokenised apart, special-token text as text, exactly as in the
plain prompt. So masks, truncation and scoring stay those of ``template.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import make_template
from rvl_llm.pipeline.tokenize import (
    batch_encoder,
    encode_after,
    encode_segment,
    resolved_config,
    token_content,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# The user turn's instruction unless --instruction replaces it; "{labels}" (here or in
# --instruction) becomes the label set, comma-separated.
DEFAULT_INSTRUCTION = "Classify this document as one of: {labels}. Answer with the class name only."
# Between the instruction and the document. It ends in one newline after a word, so the document
# tokenises the same alone as after it (a blank line before it would merge with a document's
# first whitespace in byte-level BPE).
DOCUMENT_HEADING = "\n\nDocument:\n"
# Tokens the template sees, as transformers passes them. Not pad_token: a checkpoint's tokenizer
# carries the pad token training chose, and predict must render the prompt prepare rendered.
TEMPLATE_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "cls_token", "mask_token")
_DOCUMENT = "\u27e6rvl-document\u27e7"  # sentinels: text no template or label contains
_ANSWER = "\u27e6rvl-answer\u27e7"


@dataclass(frozen=True)
class ChatTemplate:
    """A tokenizer's chat template and the special tokens it is rendered with."""

    text: str  # the jinja source
    tokens: tuple[tuple[str, str], ...]  # (name, content): bos_token, eos_token, ...


@dataclass(frozen=True)
class ChatPrompt:
    """Everything a chat prompt is made of, in clear text."""

    template: ChatTemplate
    instruction: str  # the user turn before the document: instruction, descriptions, heading


def chat_prompt(folder: Path, *, instruction: str | None, label_descriptions: Path | None,
                labels: Sequence[str], model: str) -> ChatPrompt:
    """The chat template transformers would load from the tokenizer ``folder`` (chat_template.jinja,
    else tokenizer_config.json's ``chat_template``, its "default" when it lists several) and the
    instruction, with the label descriptions folded in."""
    config = resolved_config(folder)
    text: Any = None
    if (folder / "chat_template.jinja").is_file():
        text = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif "chat_template" in config:
        text = config["chat_template"]
        if isinstance(text, list):
            text = {t.get("name"): t.get("template") for t in text if isinstance(t, dict)}
        if isinstance(text, dict):
            text = text.get("default")
    if not isinstance(text, str) or not text:
        raise RvlError(f"--prompt chat: --model {model}'s tokenizer has no chat template "
                       "(no chat_template.jinja, none in tokenizer_config.json); use --prompt "
                       "plain")
    tokens = tuple((n, c) for n in TEMPLATE_TOKENS if (c := token_content(config.get(n))))
    # The user turn before the document: the instruction, a line per described class (in class
    # order) and the heading the document follows.
    descriptions = load_descriptions(label_descriptions, labels)
    head = (instruction or DEFAULT_INSTRUCTION).replace("{labels}", ", ".join(labels)).strip()
    lines = [head, *(f"- {name}: {descriptions[name]}" for name in labels if name in descriptions)]
    return ChatPrompt(ChatTemplate(text, tokens), "\n".join(lines) + DOCUMENT_HEADING)


def load_descriptions(path: Path | None, labels: Sequence[str]) -> dict[str, str]:
    """``class name: description`` lines (blank lines skipped); every name must be a class."""
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise RvlError(f"--label-descriptions {path}: cannot read ({reason})") from err
    found: dict[str, str] = {}
    where: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, colon, description = line.partition(":")
        name, description = name.strip(), description.strip()
        if not colon or not name or not description:
            raise RvlError(f"{path}:{number}: expected 'class name: description', got "
                           f"{line.strip()[:60]!r}")
        if name not in labels:
            raise RvlError(f"{path}:{number}: {name!r} is not a class ({', '.join(labels)})")
        if name in found:
            raise RvlError(f"{path}:{number}: {name!r} is described twice (first on line "
                           f"{where[name]})")
        found[name], where[name] = description, number
    return found


def render(template: ChatTemplate, messages: list[dict[str, str]], *,
           add_generation_prompt: bool = False) -> str:
    """The conversation as transformers' ``apply_chat_template(..., tokenize=False)`` renders it."""
    import jinja2  # lazy, as the imports below: only a chat prompt renders a template
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # {% generation %} marks the assistant's text: render it as is
        tags: ClassVar[set[str]] = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, loopcontrols])
    env.filters["tojson"] = partial(json.dumps, ensure_ascii=False)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template.text).render(
        messages=messages, tools=None, documents=None,
        add_generation_prompt=add_generation_prompt, **dict(template.tokens),
    )


def segments(prompt: ChatPrompt, special_tokens: Sequence[str],
             model: str) -> tuple[str, str, str]:
    """The rendered conversation cut at the document and at the class name: everything before
    the document, from after it to the class name, and the end of the assistant's turn (up to
    and including its end-of-turn token)."""
    messages = [{"role": "user", "content": prompt.instruction + _DOCUMENT},
                {"role": "assistant", "content": _ANSWER}]
    try:
        text = render(prompt.template, messages)
    except Exception as err:  # a template error, or a template that raises on our messages
        raise RvlError(f"--prompt chat: --model {model}'s chat template fails "
                       f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                       ) from err
    if (text.count(_DOCUMENT) != 1 or text.count(_ANSWER) != 1
            or text.index(_DOCUMENT) > text.index(_ANSWER)):
        raise RvlError(f"--prompt chat: --model {model}'s chat template does not show the user's "
                       "message and then the assistant's once each; use --prompt plain")
    prefix, rest = text.split(_DOCUMENT)
    directive, after = rest.split(_ANSWER)
    ends = [(after.find(t), t) for t in special_tokens if t and t in after]
    if not ends:
        raise RvlError(f"--prompt chat: --model {model}'s chat template ends the assistant's "
                       "turn with no special token; use --prompt plain")
    start, token = min(ends, key=lambda found: (found[0], -len(found[1])))
    return prefix, directive, after[: start + len(token)]


def chat_template_ids(backend: Tokenizer, prompt: ChatPrompt, *, labels: Sequence[str],
                      max_len: int, model: str) -> TemplateIds:
    """The template of ``prompt``: prefix + document + directive | class name + end of turn."""
    from tokenizers import Tokenizer  # lazy: a Rust extension, loaded with the tokenizer

    template_backend = Tokenizer.from_str(backend.to_str())  # a copy: documents keep theirs
    template_backend.encode_special_tokens = False  # the template's special tokens are tokens
    specials = [t.content for t in backend.get_added_tokens_decoder().values() if t.special]
    before, after, end_of_turn = segments(prompt, specials, model)
    encode = batch_encoder(template_backend)
    prefix = encode([before])[0]
    directive = encode_segment(encode, after)
    completions = []
    for name in labels:
        named = encode_after(encode, after, name)
        end = encode_after(encode, after + name, end_of_turn)
        if named is None or end is None:
            raise RvlError(f"--prompt chat: class {name!r} merges with --model {model}'s chat "
                           "template into one token; use --prompt plain")
        completions.append([*named, *end])
    return make_template("generative", max_len, prefix=prefix, directive=directive,
                         completions=completions)

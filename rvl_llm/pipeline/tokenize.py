"""Tokenizer-facing pieces of prepare: the tokenizer read from its own files, segments of the
template, and documents cut to a budget.

Prepare reads a tokenizer with the ``tokenizers`` library alone, as transformers 5 resolves it,
in about 0.5 s instead of the 5 s that importing transformers and torch costs; only files that
ask for something transformers alone does (remote code, tokens it would add) load through it.

Documents are tokenised only as far as the budget needs: a character prefix cut at whitespace,
grown until it yields ``budget + SLACK`` tokens. Pre-tokenisers of BPE/SentencePiece/WordPiece
tokenizers act locally, so the first ``budget`` tokens equal those of the whole text (the tests
prove it on both sample tokenizers); the slack absorbs the last word's context.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm.errors import RvlError
from rvl_llm.logs import Log
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import make_template

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SLACK = 8  # tokens past the budget that a prefix must yield before it counts as long enough
CHARS_PER_TOKEN = 6  # first window: above the p99 of OCR text (Llama 3: 5.8, Mistral: 5.2)
# A plain word placed before a segment, so the segment tokenises as a continuation of text
# (SentencePiece would otherwise prepend a word-start marker to it).
_ANCHORS = ("a", "a ", "")
_PROBE = "probe text"  # a text without special tokens: what the scheme adds around it shows
# tokenizer_class values transformers 5 loads as TokenizersBackend, tokenizer.json as written.
# Mistral's files name LlamaTokenizer, yet AutoTokenizer loads the Mistral model types the same way
# (another class is registered for them; tests check it on the installed transformers). Any other
# class may rebuild the backend from the vocabulary with its own pre-tokenizer (Llama 2's does).
_GENERIC_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")
_LLAMA_CLASSES = ("LlamaTokenizer", "LlamaTokenizerFast")
_MISTRAL_TYPES = ("mistral", "mixtral", "ministral", "ministral3", "mistral3")

EncodeBatch = Callable[[list[str]], list[list[int]]]


@dataclass(frozen=True)
class TokenizerFiles:
    """What prepare and predict need of a tokenizer: its Rust backend, BOS/EOS and the ids its
    scheme adds around a text (read from its files, or ``from_transformers``: a checkpoint's)."""

    name: str  # the tokenizer's folder (transformers' name_or_path): errors name it
    backend: Tokenizer = field(repr=False, compare=False)  # special-token text stays text
    bos_token: str | None
    bos_token_id: int | None
    eos_token: str | None
    eos_token_id: int | None
    prefix: tuple[int, ...]  # ids the scheme puts before a text (BOS; CLS)
    suffix: tuple[int, ...]  # ... and after it (SEP; an EOS some tokenizers append)
    loaded_by: str  # "tokenizers", or "transformers (<why it was needed>)"

    @classmethod
    def from_transformers(cls, tokenizer: Any, loaded_by: str = "transformers") -> TokenizerFiles:
        backend = backend_from_json(tokenizer.backend_tokenizer.to_str())
        name = str(tokenizer.name_or_path)
        return cls(name, backend, tokenizer.bos_token, tokenizer.bos_token_id, tokenizer.eos_token,
                   tokenizer.eos_token_id, *_scheme_ids(backend, name), loaded_by)


def load_tokenizer_files(folder: Path, *, trust_remote_code: bool = False,
                         log: Log | None = None) -> TokenizerFiles:
    """The tokenizer in ``folder`` as transformers 5 would load it, read with ``tokenizers``
    alone; through transformers only when the files need it (said in a log line)."""
    config = resolved_config(folder)
    backend, reason = None, "no tokenizer.json, only a sentencepiece or vocabulary file"
    if (folder / "tokenizer.json").is_file():
        try:
            backend = backend_from_json((folder / "tokenizer.json").read_text(encoding="utf-8"))
        except Exception as err:
            raise RvlError(f"--model {folder}: cannot load its tokenizer ({err})") from err
        reason = _needs_transformers(folder, config, backend)
    if backend is None or reason is not None:
        if log is not None:
            log(f"tokenizer: {folder}: {reason}; loading it with transformers")
        try:
            tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        except RvlError as err:
            raise RvlError(f"{err.message} [loaded with transformers: {reason}]") from err
        return TokenizerFiles.from_transformers(tokenizer, f"transformers ({reason})")
    bos, eos = token_content(config.get("bos_token")), token_content(config.get("eos_token"))
    bos_id = None if bos is None else backend.token_to_id(bos)
    eos_id = None if eos is None else backend.token_to_id(eos)
    return TokenizerFiles(str(folder), backend, bos, bos_id, eos, eos_id,
                          *_scheme_ids(backend, str(folder)), "tokenizers")


def resolved_config(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json, with special_tokens_map.json over it where transformers 5 reads
    that legacy file (a config without ``added_tokens_decoder``)."""
    config = _read_json(folder / "tokenizer_config.json")
    if "added_tokens_decoder" not in config:
        config.update(_read_json(folder / "special_tokens_map.json"))
    if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
        config["extra_special_tokens"] = config.pop("additional_special_tokens")
    return config


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RvlError(f"--model {path.parent}: cannot read {path.name} ({err})") from err
    if not isinstance(value, dict):
        raise RvlError(f"--model {path.parent}: {path.name} is not a JSON object")
    return value


def token_content(value: Any) -> str | None:
    """A special token as the config writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _needs_transformers(folder: Path, config: dict[str, Any], backend: Tokenizer) -> str | None:
    """Why transformers must load these files (it would not use tokenizer.json as written, or
    would add to it), or None."""
    if "auto_map" in config:
        return "tokenizer_config.json names remote code (auto_map)"
    if config.get("fix_mistral_regex"):
        return "tokenizer_config.json sets fix_mistral_regex"
    if (folder / "tekken.json").is_file():
        return "tekken.json (transformers may load it with mistral-common)"
    reason = _class_reason(config.get("tokenizer_class"), _read_json(folder / "config.json"))
    if reason is not None:
        return reason
    if "added_tokens_decoder" not in config and (folder / "added_tokens.json").is_file():
        return "added_tokens.json (legacy added tokens, which transformers may add anew)"
    # transformers adds every token the config names that tokenizer.json lacks (new ids), and
    # re-adds a listed token whose flags differ: the documents' tokens would change.
    added = {token.content: (i, token) for i, token in backend.get_added_tokens_decoder().items()}
    named = [token_content(v) for k, v in config.items() if k.endswith("_token")]
    extra = config.get("extra_special_tokens") or []
    named += [token_content(v) for v in (extra.values() if isinstance(extra, dict) else extra)]
    for token in named:
        if token is not None and token not in added:
            return f"tokenizer_config.json names {token!r}, not an added token of tokenizer.json"
    for index, entry in (config.get("added_tokens_decoder") or {}).items():
        content = token_content(entry)
        same = content in added and added[content][0] == int(index) and all(
            getattr(added[content][1], flag) == value
            for flag, value in entry.items() if flag not in ("content", "__type")
        )
        if not same:
            return f"tokenizer_config.json's added token {index} differs from tokenizer.json's"
    return None


def _class_reason(tokenizer_class: str | None, model_config: dict[str, Any]) -> str | None:
    """None where transformers 5 loads tokenizer.json as written (its TokenizersBackend class);
    a model's own tokenizer class may rebuild the backend from the vocabulary instead."""
    model_type = model_config.get("model_type")
    # (Mistral's LlamaTokenizer: the Mistral types are not registered to that class.)
    if (tokenizer_class in _GENERIC_CLASSES or (tokenizer_class is None and model_type is None)
            or (tokenizer_class in _LLAMA_CLASSES and model_type in _MISTRAL_TYPES)):
        return None
    if tokenizer_class is None:
        return f"no tokenizer_class: transformers picks model_type {model_type}'s own class"
    return f"tokenizer_class {tokenizer_class}, which transformers may rebuild from its vocabulary"


def _scheme_ids(backend: Tokenizer, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids transformers 5 puts around a text: those of tokenizer.json's post-processor.
    With a tokenizer.json, transformers drops tokenizer_config.json's add_bos_token and
    add_eos_token before building the tokenizer (``_from_pretrained``, in an early 5.x and in
    5.24 alike), so those flags never rewrite the post-processor (``update_post_processor``);
    a file without one gets "$A", nothing around the text."""
    with_specials = backend.encode(_PROBE, add_special_tokens=True).ids
    plain = backend.encode(_PROBE, add_special_tokens=False).ids
    for start in range(len(with_specials) - len(plain) + 1):
        if with_specials[start : start + len(plain)] == plain:
            return tuple(with_specials[:start]), tuple(with_specials[start + len(plain) :])
    raise RvlError(f"cannot tell the special tokens of tokenizer {name}")


def load_tokenizer(folder: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer  # lazy: imports torch (start-up time)

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise RvlError(f"--model {folder}: cannot load its tokenizer ({err})") from err
    if not getattr(tokenizer, "is_fast", False):
        raise RvlError(f"--model {folder}: needs a fast (Rust) tokenizer, got {type(tokenizer)}")
    return tokenizer


def backend_from_json(tokenizer_json: str) -> Tokenizer:
    """A Rust tokenizer that treats special-token text in documents as plain text (an OCR'd
    "</s>" must not end the sequence) and never truncates or pads."""
    from tokenizers import Tokenizer  # lazy: a Rust extension, loaded when a tokenizer is

    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = True
    return backend


def batch_encoder(backend: Tokenizer) -> EncodeBatch:
    def encode(texts: list[str]) -> list[list[int]]:
        # encode_batch_fast skips offsets and runs on every core (Rust threads, GIL released).
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]

    return encode


def encode_after(encode: EncodeBatch, context: str, text: str) -> list[int] | None:
    """Tokens of ``text`` as it tokenises after ``context``, or None if the two merge."""
    full, ctx = encode([context + text, context])
    return full[len(ctx) :] if full[: len(ctx)] == ctx else None


def encode_segment(encode: EncodeBatch, text: str, after: str = "") -> list[int]:
    """Tokens of a template segment as a continuation of text (first anchor that does not merge)."""
    for anchor in _ANCHORS:
        ids = encode_after(encode, anchor + after, text)
        if ids is not None:
            return ids
    raise RvlError(f"cannot tokenise {text!r} apart from the text before it")  # pragma: no cover


def build_template(tokenizer: TokenizerFiles | Any, encode: EncodeBatch, *, generative: bool,
                   response_template: str, labels: Sequence[str], max_len: int) -> TemplateIds:
    """The plain template ``tokenizer`` (a ``TokenizerFiles`` or a transformers tokenizer) makes:
    the document alone (a classifier), or document + response template | " class name" + EOS.
    The chat prompt's is ``rvl_llm.pipeline.chat.chat_template_ids``."""
    if not isinstance(tokenizer, TokenizerFiles):
        tokenizer = TokenizerFiles.from_transformers(tokenizer)
    prefix, eos_id = tokenizer.prefix, tokenizer.eos_token_id
    if not generative:
        return make_template("classifier", max_len, prefix=prefix, suffix=tokenizer.suffix)
    if eos_id is None:
        raise RvlError(f"--model {tokenizer.name}: the tokenizer has no EOS token")
    directive = encode_segment(encode, response_template)
    completions = [[*encode_segment(encode, " " + label, after=response_template), eos_id]
                   for label in labels]
    # The generative prompt is BOS + document + directive: the scheme's trailing tokens (an EOS
    # some tokenizers append) would sit before the directive, so only the leading ones are kept.
    return make_template("generative", max_len, prefix=prefix, directive=directive,
                         completions=completions)


def encode_documents(encode: EncodeBatch, texts: Sequence[str], budget: int) -> list[list[int]]:
    """Each text's first ``budget + 1`` tokens (one more than fits tells a cut from a fit),
    identical to the start of tokenising the whole text, from as little text as possible."""
    limit = budget + SLACK
    window = [limit * CHARS_PER_TOKEN] * len(texts)
    result: list[list[int]] = [[] for _ in texts]
    pending = list(range(len(texts)))
    while pending:
        pieces = [_cut(texts[i], window[i]) for i in pending]
        still = []
        for i, piece, ids in zip(pending, pieces, encode(pieces), strict=True):
            if len(piece) == len(texts[i]) or len(ids) > limit:
                result[i] = ids[: budget + 1]
            else:  # too few tokens: grow in proportion to the shortfall, at least double
                window[i] = int(window[i] * max(2.0, 1.25 * limit / max(len(ids), 1)))
                still.append(i)
        pending = still
    return result


def _cut(text: str, chars: int) -> str:
    """The text, or its first ``chars`` characters cut back to the last whitespace."""
    if len(text) <= chars:
        return text
    cut = max(text.rfind(" ", 0, chars), text.rfind("\n", 0, chars))
    return text[: cut if cut > chars // 2 else chars]

"""Tokenizer-facing pieces of prepare: segments of the template, and documents cut to a budget.

Documents are tokenised only as far as the budget needs: a character prefix cut at whitespace,
grown until it yields ``budget + SLACK`` tokens. Pre-tokenisers of BPE/SentencePiece/WordPiece
tokenizers act locally, so the first ``budget`` tokens equal those of the whole text (the tests
prove it on both sample tokenizers); the slack absorbs the last word's context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import TemplateIds
from rvl_llm.pipeline.template import make_template

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SLACK = 8  # tokens past the budget that a prefix must yield before it counts as long enough
CHARS_PER_TOKEN = 6  # first window: above the p99 of OCR text (Llama 3: 5.8, Mistral: 5.2)
# A plain word placed before a segment, so the segment tokenises as a continuation of text
# (SentencePiece would otherwise prepend a word-start marker to it).
_ANCHORS = ("a", "a ", "")

EncodeBatch = Callable[[list[str]], list[list[int]]]


def load_tokenizer(folder: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

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
    from tokenizers import Tokenizer

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
    if full[: len(ctx)] != ctx:
        return None
    return full[len(ctx) :]


def encode_segment(encode: EncodeBatch, text: str, after: str = "") -> list[int]:
    """Tokens of a template segment as a continuation of text (first anchor that does not merge)."""
    for anchor in _ANCHORS:
        ids = encode_after(encode, anchor + after, text)
        if ids is not None:
            return ids
    raise RvlError(f"cannot tokenise {text!r} apart from the text before it")  # pragma: no cover


def special_tokens_around(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's own scheme puts before and after a text (BOS; CLS/SEP; ...)."""
    probe = "probe text"
    with_specials = tokenizer(probe)["input_ids"]
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for start in range(len(with_specials) - len(plain) + 1):
        if with_specials[start : start + len(plain)] == plain:
            return with_specials[:start], with_specials[start + len(plain) :]
    raise RvlError(f"cannot tell the special tokens of tokenizer {tokenizer.name_or_path}")


def build_template(
    tokenizer: Any,
    encode: EncodeBatch,
    *,
    generative: bool,
    response_template: str,
    labels: Sequence[str],
    max_len: int,
) -> TemplateIds:
    prefix, suffix = special_tokens_around(tokenizer)
    if not generative:
        return make_template("classifier", max_len, prefix=prefix, suffix=suffix)
    if tokenizer.eos_token_id is None:
        raise RvlError(f"--model {tokenizer.name_or_path}: the tokenizer has no EOS token")
    directive = encode_segment(encode, response_template)
    completions = [
        [*encode_segment(encode, " " + name, after=response_template), tokenizer.eos_token_id]
        for name in labels
    ]
    # The generative prompt is BOS + document + directive: the scheme's trailing tokens (an EOS
    # some tokenizers append) would sit before the directive, so only the leading ones are kept.
    return make_template(
        "generative", max_len, prefix=prefix, directive=directive, completions=completions
    )


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

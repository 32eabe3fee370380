"""tokenize.py on the real Mistral (SentencePiece) and Llama 3 (tiktoken-style) tokenizers:
templates, completion-only masks per class, truncation, and prefix == full tokenisation."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import pytest

from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.manifest import IGNORE_INDEX
from rvl_llm.pipeline.template import build_row
from rvl_llm.pipeline.tokenize import (
    build_template,
    encode_documents,
    load_tokenizer_files,
)
from rvl_llm.sample.corpus import generate_document

TEMPLATES = ("\n\n### Classification:", " ### Classification:")
DOCUMENT = "Dear Mr. Smith,\nplease find enclosed the invoice No. 4711 for $1,250.00.\n"
BUDGETS = (1, 7, 64, 500)


def generative(tok, response_template=TEMPLATES[0], max_len=512, labels=RVL_CDIP_CLASSES):
    return build_template(
        tok.tokenizer,
        tok.encode,
        generative=True,
        response_template=response_template,
        labels=labels,
        max_len=max_len,
    )


def test_the_tokenizers_scheme_puts_only_bos_before_a_text(tok) -> None:
    assert tok.bos is not None and tok.eos is not None
    plain = tok.tokenizer("probe text", add_special_tokens=False)["input_ids"]
    assert tok.tokenizer("probe text")["input_ids"] == [tok.bos, *plain]


def test_the_tokenizer_files_alone_give_the_same_scheme_and_template(tok) -> None:
    files = load_tokenizer_files(tok.folder)  # no transformers: tokenizer.json and its config
    assert (files.prefix, files.suffix) == ((tok.bos,), ())
    assert (files.bos_token_id, files.eos_token_id) == (tok.bos, tok.eos)
    for response_template in TEMPLATES:
        assert build_template(
            files, tok.encode, generative=True, response_template=response_template,
            labels=RVL_CDIP_CLASSES, max_len=512,
        ) == generative(tok, response_template)


@pytest.mark.parametrize("response_template", TEMPLATES, ids=["default", "leading-space"])
def test_generative_rows_mask_all_but_class_name_and_eos(tok, response_template: str) -> None:
    template = generative(tok, response_template)
    assert template.prefix == (tok.bos,)
    assert template.suffix == ()
    assert tok.decode(template.directive) in (response_template, response_template.lstrip(" "))
    doc_ids = encode_documents(tok.encode, [DOCUMENT], template.document_budget)[0]
    assert doc_ids == tok.full(DOCUMENT)  # fits: the whole document
    for label, name in enumerate(RVL_CDIP_CLASSES):
        row = build_row(doc_ids, label, template)
        prompt = [tok.bos, *doc_ids, *template.directive]
        assert row.prompt_len == len(prompt)
        assert row.input_ids[: row.prompt_len] == prompt
        assert row.labels[: row.prompt_len] == [IGNORE_INDEX] * row.prompt_len
        completion = row.input_ids[row.prompt_len :]
        assert row.labels[row.prompt_len :] == completion
        assert completion == list(template.completions[label])
        assert completion[-1] == tok.eos
        assert tok.eos not in completion[:-1]
        assert tok.decode(completion[:-1]).removeprefix(" ") == name
        # The name is tokenised as the word after the directive: " name", not "name".
        directive = list(template.directive)
        assert tok.decode(directive + completion[:-1]) == tok.decode(directive) + " " + name


def test_truncation_cuts_only_the_document(tok) -> None:
    text = generate_document(random.Random(3), 5, words=3000)
    template = generative(tok, max_len=40)
    fixed = 1 + len(template.directive) + template.max_completion_len
    assert template.document_budget == 40 - fixed
    full = tok.full(text)
    # Two documents with the same text, tokenised separately, get different classes.
    first, second = encode_documents(tok.encode, [text, text], template.document_budget)
    rows = [build_row(first, label, template) for label in range(16)]
    rows += [build_row(second, label, template) for label in range(16)]
    prompt = [tok.bos, *full[: template.document_budget], *template.directive]
    for row, label in zip(rows, [*range(16), *range(16)], strict=True):
        completion = list(template.completions[label])
        assert row.truncated
        assert row.input_ids[: row.prompt_len] == prompt
        assert row.input_ids[row.prompt_len :] == completion
        assert row.labels == [IGNORE_INDEX] * len(prompt) + completion
        assert len(row.input_ids) <= 40
    assert max(len(r.input_ids) for r in rows) == 40  # the longest label fills max-len


@pytest.mark.parametrize("response_template", TEMPLATES, ids=["default", "leading-space"])
def test_max_len_must_hold_bos_directive_longest_label_eos_and_one_token(
    tok, response_template: str
) -> None:
    roomy = generative(tok, response_template)
    fixed = 1 + len(roomy.directive) + roomy.max_completion_len
    assert generative(tok, response_template, max_len=fixed + 1).document_budget == 1
    with pytest.raises(RvlError) as err:
        generative(tok, response_template, max_len=fixed)
    assert err.value.message.startswith(f"--max-len {fixed}: too small")


def test_classifier_template_is_bos_plus_document(tok) -> None:
    template = build_template(
        tok.tokenizer, tok.encode, generative=False, response_template=TEMPLATES[0],
        labels=RVL_CDIP_CLASSES, max_len=32,
    )
    assert (template.mode, template.prefix, template.suffix) == ("classifier", (tok.bos,), ())
    assert template.directive == () and template.completions == ()
    assert template.document_budget == 31
    text = generate_document(random.Random(4), 0, words=500)
    row = build_row(encode_documents(tok.encode, [text], 31)[0], 0, template)
    assert row.labels is None
    assert row.input_ids == [tok.bos, *tok.full(text)[:31]]
    assert row.prompt_len == len(row.input_ids) == 32


@functools.cache
def adversarial_texts() -> dict[str, str]:
    rng = random.Random(0)
    words = [f"w{rng.randrange(10**6)}" for _ in range(200)]
    return {
        "50k-words": generate_document(random.Random(1), 7, words=50_000),
        "plain-words": " ".join(rng.choice(words) for _ in range(5_000)),
        "space-runs": " ".join("word" + " " * rng.randrange(1, 400) for _ in range(300)),
        "newline-runs": "".join("line\n" * rng.randrange(1, 3) + "\n" * rng.randrange(0, 300)
                                for _ in range(300)),
        "mixed-whitespace": "".join(rng.choice(["a", "b ", "  ", "\n", "\t", " \n ", "\r\n", "."])
                                    for _ in range(20_000)),
        "one-long-space-run": "start " + " " * 20_000 + "end",
        "digits": "".join(str(rng.randrange(10)) for _ in range(20_000)),
        "spaced-digits": " ".join(str(i) for i in range(10_000)),
        "no-whitespace-letters": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                          for _ in range(20_000)),
        "no-whitespace-mixed": "".join(rng.choice("abcXYZ0123.,;:-_/()'\"é—")
                                        for _ in range(20_000)),
        "non-ascii": " ".join(rng.choice(["café", "résumé", "naïve", "“quoted”", "—", "½", "東京",
                                          "日本語の文書", "Привет", "مرحبا", "😀", "ß", "İ"])
                              for _ in range(5_000)),
        "cjk-no-whitespace": "".join(rng.choice("日本語文書東京都市") for _ in range(20_000)),
        "special-token-text": " ".join(rng.choice(["</s>", "<s>", "<unk>", "<|end_of_text|>",
                                                   "<|begin_of_text|>", "<|eot_id|>", "text"])
                                       for _ in range(5_000)),
        "empty": "",
        "blank": " \n\t \n",
        "one-word": "hello",
    }


@pytest.fixture(scope="module")
def many_texts(sample_data: Path) -> list[str]:
    # Every 4th sample document (256 of all classes and lengths) keeps the full tokenisation the
    # reference needs to about a second; the adversarial texts cover the extremes.
    corpus = [json.loads(p.read_text(encoding="utf-8"))["ocr"]
              for p in sorted(sample_data.glob("*.json"))[::4]]
    return corpus + list(adversarial_texts().values())


@pytest.fixture(scope="module")
def full_ids(tok, many_texts: list[str]) -> list[list[int]]:
    return tok.full_batch(many_texts)


@pytest.mark.parametrize("budget", BUDGETS)
def test_prefix_tokenisation_equals_full_tokenisation(
    tok, many_texts: list[str], full_ids: list[list[int]], budget: int
) -> None:
    got = encode_documents(tok.encode, many_texts, budget)
    names = [f"corpus[{i}]" for i in range(len(many_texts) - len(adversarial_texts()))]
    names += list(adversarial_texts())
    wrong = [name for name, ids, full in zip(names, got, full_ids, strict=True)
             if ids != full[: budget + 1]]
    assert wrong == []


def test_only_a_prefix_of_a_long_document_is_tokenised(tok) -> None:
    long_text = adversarial_texts()["50k-words"]
    seen: list[int] = []

    def recording(texts: list[str]) -> list[list[int]]:
        seen.extend(len(t) for t in texts)
        return tok.encode(texts)

    ids = encode_documents(recording, [long_text, "short text"], 64)[0]
    assert ids == tok.full(long_text)[:65]
    assert len(long_text) not in seen
    assert max(seen) < len(long_text) // 50


def test_special_token_text_in_a_document_stays_text(tok) -> None:
    text = "Total due. </s> <s> <|end_of_text|> <|begin_of_text|> Signed."
    template = generative(tok)
    doc_ids = encode_documents(tok.encode, [text], template.document_budget)[0]
    specials = set(tok.tokenizer.all_special_ids)
    assert not specials & set(doc_ids)
    assert tok.decode(doc_ids).strip() == text
    row = build_row(doc_ids, 0, template)
    assert row.input_ids.count(tok.eos) == 1 and row.input_ids[-1] == tok.eos
    assert row.input_ids.count(tok.bos) == 1 and row.input_ids[0] == tok.bos

"""predict(): exact class scores against a brute force, dataset order, classifier argmax."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from rvl_llm.inference.scoring import INVALID, predict  # noqa: E402
from rvl_llm.pipeline.manifest import IGNORE_INDEX, TemplateIds  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PAD, BOS, EOS = 0, 1, 2
# Completions share first tokens (10: like "scientific report"/"scientific publication"), share
# a whole name prefix (10, 11 ...) and differ in length, as multi-token class names do.
COMPLETIONS = ((10, 11, EOS), (10, 12, EOS), (13, EOS), (14, 15, 16, EOS), (10, 11, 17, EOS))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """2-layer, 32-wide models run fastest on one thread; several only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_llama(vocab: int = 40, *, classes: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
    )
    if classes is None:
        return transformers.LlamaForCausalLM(config).eval()
    config.num_labels = classes
    return transformers.LlamaForSequenceClassification(config).eval()


def generative_template(completions=COMPLETIONS) -> TemplateIds:
    return TemplateIds("generative", (BOS,), (), (5, 6), completions, document_budget=64)


def make_split(template: TemplateIds, docs: list[list[int]], labels: list[int]):
    """A split with the shard columns, as prepare writes it."""
    rows: dict[str, list] = {k: [] for k in ("input_ids", "labels", "prompt_len", "label",
                                             "length", "doc_id", "truncated")}
    generative = template.mode == "generative"
    for i, (doc, label) in enumerate(zip(docs, labels, strict=True)):
        prompt = template.prompt(doc)
        completion = list(template.completions[label]) if generative else []
        rows["input_ids"].append(prompt + completion)
        rows["labels"].append([IGNORE_INDEX] * len(prompt) + completion)
        rows["prompt_len"].append(len(prompt))
        rows["label"].append(label)
        rows["length"].append(len(prompt) + len(completion))
        rows["doc_id"].append(f"doc-{i:03d}")
        rows["truncated"].append(False)
    if not generative:
        del rows["labels"]
    return datasets.Dataset.from_dict(rows)


def random_docs(n: int, vocab: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(20, vocab, size=int(rng.integers(1, 30))).tolist() for _ in range(n)]


def brute_force_scores(model, prompts: list[list[int]], completions) -> np.ndarray:
    """log P(completion | prompt) from one unpadded forward per (document, class), no cache."""
    out = np.zeros((len(prompts), len(completions)))
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            for c, completion in enumerate(completions):
                ids = torch.tensor([prompt + list(completion)])
                # Logits of the positions that predict the completion (the last prompt token on).
                logits = model(input_ids=ids, logits_to_keep=len(completion) + 1).logits[0, :-1]
                logp = torch.log_softmax(logits.double(), dim=-1)
                out[i, c] = sum(logp[j, t].item() for j, t in enumerate(completion))
    return out


def test_score_equals_brute_force_with_left_padding_and_shared_prefixes() -> None:
    model, template = tiny_llama(), generative_template()
    docs = random_docs(11, 40)
    labels = [i % len(COMPLETIONS) for i in range(len(docs))]
    split = make_split(template, docs, labels)
    preds = predict(model, split, template, pad_token_id=PAD, batch_size=4)
    expected = brute_force_scores(model, [template.prompt(d) for d in docs], COMPLETIONS)
    np.testing.assert_allclose(preds.scores, expected, atol=1e-4, rtol=0)
    assert preds.doc_ids == [f"doc-{i:03d}" for i in range(len(docs))]
    np.testing.assert_array_equal(preds.true, labels)
    np.testing.assert_array_equal(preds.predicted, expected.argmax(1))
    np.testing.assert_allclose(preds.probs.sum(1), 1.0, atol=1e-6)
    assert preds.invalid == 0 and preds.generated is None


@pytest.mark.parametrize("class_chunk", [1, 2, 3])
def test_class_chunks_score_the_same(class_chunk: int) -> None:
    model, template = tiny_llama(), generative_template()
    split = make_split(template, random_docs(7, 40, seed=3), [0] * 7)
    whole = predict(model, split, template, pad_token_id=PAD, batch_size=3)
    chunked = predict(model, split, template, pad_token_id=PAD, batch_size=3,
                      class_chunk=class_chunk)
    np.testing.assert_allclose(chunked.scores, whole.scores, atol=1e-5, rtol=0)


def test_batching_does_not_change_scores_or_order() -> None:
    model, template = tiny_llama(), generative_template()
    split = make_split(template, random_docs(9, 40, seed=4), [1, 2, 3, 4, 0, 1, 2, 3, 4])
    one = predict(model, split, template, pad_token_id=PAD, batch_size=1)
    many = predict(model, split, template, pad_token_id=PAD, batch_size=5)
    np.testing.assert_allclose(many.scores, one.scores, atol=1e-5, rtol=0)
    assert many.doc_ids == one.doc_ids
    # A subset in a shuffled order still comes back in that subset's order.
    subset = split.select([8, 2, 5])
    part = predict(model, subset, template, pad_token_id=PAD, batch_size=2)
    assert part.doc_ids == ["doc-008", "doc-002", "doc-005"]
    np.testing.assert_allclose(part.scores, one.scores[[8, 2, 5]], atol=1e-5, rtol=0)


def test_model_mode_is_restored() -> None:
    model, template = tiny_llama(), generative_template()
    model.train()
    predict(model, make_split(template, random_docs(2, 40), [0, 1]), template, pad_token_id=PAD)
    assert model.training


def test_classifier_argmax_matches_per_row_forward() -> None:
    model = tiny_llama(classes=4)
    template = TemplateIds("classifier", (BOS,), (3,), (), (), document_budget=64)
    docs = random_docs(10, 40, seed=5)
    split = make_split(template, docs, [i % 4 for i in range(10)])
    preds = predict(model, split, template, pad_token_id=PAD, batch_size=4)
    with torch.no_grad():
        rows = [model(input_ids=torch.tensor([template.prompt(d)])).logits[0] for d in docs]
    expected = torch.log_softmax(torch.stack(rows), -1).numpy()
    np.testing.assert_allclose(preds.scores, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(preds.predicted, expected.argmax(1))
    assert preds.probs.shape == (10, 4)


class WordTokenizer:
    """decode() for a toy vocabulary: token t is the word "w<t>"; specials are dropped."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(f"w{t}" for t in ids if t not in (PAD, BOS, EOS))


def greedy(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            if token == EOS:
                break
    return ids[len(prompt) :]


def test_generate_matches_unpadded_greedy_and_flags_invalid() -> None:
    model, template = tiny_llama(), generative_template()
    docs = random_docs(6, 40, seed=6)
    tokenizer = WordTokenizer()
    steps = template.max_completion_len + 3
    texts = [tokenizer.decode(greedy(model, template.prompt(d), steps)).strip() for d in docs]
    # Two generations are made class names; the others are not, so they count as invalid.
    names = (texts[0], "not-generated-a", texts[3], "not-generated-b", "not-generated-c")
    split = make_split(template, docs, [0] * len(docs))
    preds = predict(model, split, template, pad_token_id=PAD, batch_size=4, decode="generate",
                    tokenizer=tokenizer, labels=names)
    assert preds.generated == texts
    expected = [names.index(t) if t in names else INVALID for t in texts]
    assert preds.predicted.tolist() == expected
    assert preds.invalid == expected.count(INVALID)
    assert preds.probs is None and preds.scores is None


@pytest.mark.parametrize("name", ["tiny-llama3", "tiny-mistral"])
def test_score_on_sample_tokenizers(
    name: str, tokenizer_dirs: dict[str, Path], sample_data: Path, tmp_path: Path
) -> None:
    """The real Llama 3 / Mistral templates: multi-token names that share first tokens."""
    from rvl_llm.pipeline.config import PrepareConfig
    from rvl_llm.pipeline.prepare import run_prepare

    folder = tokenizer_dirs[name]
    cfg = PrepareConfig(data_dir=sample_data, model=str(folder), max_len=96, generative=True,
                        splits=("test",), cache_dir=tmp_path / "cache", progress=False)
    manifest = run_prepare(cfg).manifest
    split = manifest.dataset("test").select([5, 0, 21, 6, 14, 9])
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    template = manifest.template
    firsts = [c[0] for c in template.completions]
    assert len(set(firsts)) < len(firsts), "expected class names that share a first token"
    assert len({len(c) for c in template.completions}) > 1, "expected names of several lengths"
    preds = predict(model, split, template, pad_token_id=template.completions[0][-1],
                    batch_size=4)
    prompts = [list(r["input_ids"][: r["prompt_len"]]) for r in split]
    expected = brute_force_scores(model, prompts, template.completions)
    np.testing.assert_allclose(preds.scores, expected, atol=1e-4, rtol=0)
    assert preds.doc_ids == [r["doc_id"] for r in split]


def test_score_through_a_peft_wrapper() -> None:
    peft = pytest.importorskip("peft")
    base, template = tiny_llama(), generative_template()
    lora = peft.LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    model = peft.get_peft_model(base, lora).eval()
    docs = random_docs(5, 40, seed=8)
    preds = predict(model, make_split(template, docs, [0] * 5), template, pad_token_id=PAD,
                    batch_size=3)
    expected = brute_force_scores(model, [template.prompt(d) for d in docs], COMPLETIONS)
    np.testing.assert_allclose(preds.scores, expected, atol=1e-4, rtol=0)


def test_score_with_a_sliding_window_shorter_than_the_prompts() -> None:
    """Each class group starts from the intact prompt cache even where layers trim it."""
    torch.manual_seed(0)
    config = transformers.MistralConfig(
        vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=6, pad_token_id=PAD,
        bos_token_id=BOS, eos_token_id=EOS)
    model, template = transformers.MistralForCausalLM(config).eval(), generative_template()
    docs = random_docs(6, 40, seed=9)
    preds = predict(model, make_split(template, docs, [0] * 6), template, pad_token_id=PAD,
                    batch_size=3, class_chunk=2)
    expected = brute_force_scores(model, [template.prompt(d) for d in docs], COMPLETIONS)
    np.testing.assert_allclose(preds.scores, expected, atol=1e-4, rtol=0)

"""Long documents (pipeline/truncation.py, inference/aggregate.py): head+tail ids exact on both
real tokenizers, chunk windows that cover the document, aggregation per doc_id."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.evaluate.run import run_eval
from rvl_llm.inference.aggregate import (
    aggregate_predictions,
    aggregate_scores,
    documents_of,
    group_rows,
)
from rvl_llm.inference.scoring import Predictions
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.manifest import Manifest
from rvl_llm.pipeline.template import make_template
from rvl_llm.pipeline.tokenize import build_template
from rvl_llm.pipeline.truncation import (
    Truncation,
    document_rows,
    encode_for,
    head_tail,
    page_windows,
    windows,
)
from rvl_llm.predict.classifier import Classifier
from rvl_llm.recipe import Recipe
from rvl_llm.sample.corpus import generate_document
from rvl_llm.train.config import TrainConfig
from rvl_llm.train.run import run_train

BOS, EOS = 1, 2
DIRECTIVE = (30, 31)
COMPLETIONS = ((40, EOS), (41, 42, EOS))


def template(max_len: int):
    # 1 BOS + 2 directive + 3 longest completion: budget = max_len - 6
    return make_template("generative", max_len, prefix=[BOS], directive=DIRECTIVE,
                         completions=COMPLETIONS)


def test_head_tail_keeps_the_first_and_last_ids() -> None:
    ids = list(range(100, 120))
    assert head_tail(ids, 8, 3) == [100, 101, 102, 103, 104, 117, 118, 119]
    assert head_tail(ids, 8) == [100, 101, 102, 103, 116, 117, 118, 119]  # half the budget
    assert head_tail(ids[:8], 8, 3) == ids[:8]  # a document that fits is whole
    with pytest.raises(RvlError, match="--keep-tail 8"):
        head_tail(ids, 8, 8)


def test_head_tail_row_is_the_budget_and_says_truncated() -> None:
    t = template(14)  # budget 8
    ids = list(range(100, 120))
    [row] = document_rows([ids], 1, t, Truncation("head+tail", keep_tail=3))
    assert row.input_ids == [BOS, 100, 101, 102, 103, 104, 117, 118, 119, *DIRECTIVE, 41, 42, EOS]
    assert row.truncated is True
    [short] = document_rows([ids[:5]], 0, t, Truncation("head+tail", keep_tail=3))
    assert short.input_ids == [BOS, *ids[:5], *DIRECTIVE, 40, EOS] and not short.truncated


@pytest.mark.parametrize("keep_tail", [None, 1, 37])
def test_head_tail_ids_are_exact_on_real_tokenizers(tok, keep_tail: int | None) -> None:
    text = generate_document(random.Random(6), 5, words=600)  # a long document
    t = build_template(tok.tokenizer, tok.encode, generative=True,
                       response_template="\n\n### Classification:",
                       labels=RVL_CDIP_CLASSES, max_len=128)
    budget = t.document_budget
    whole = tok.full(text)
    assert len(whole) > 2 * budget
    truncation = Truncation("head+tail", keep_tail=keep_tail)
    [row] = document_rows(encode_for(truncation, tok.encode, [text], budget)[0], 3, t,
                          truncation)
    tail = budget // 2 if keep_tail is None else keep_tail
    document = row.input_ids[len(t.prefix) : len(t.prefix) + budget]
    assert document == whole[: budget - tail] + whole[-tail:]
    assert row.input_ids[: row.prompt_len] == [*t.prefix, *document, *t.directive]
    assert row.truncated


def test_windows_cover_the_document_with_the_overlap() -> None:
    ids = list(range(23))
    got = windows(ids, 8, 3)
    assert got == [ids[0:8], ids[5:13], ids[10:18], ids[15:23]]
    assert windows(ids, 8) == [ids[0:8], ids[8:16], ids[16:23]]
    assert windows(ids[:8], 8, 3) == [ids[:8]]
    assert windows([], 8) == [[]]  # an empty document still gets one row
    for budget in (1, 2, 5, 9):
        for overlap in range(budget):
            cut = windows(ids, budget, overlap)
            assert all(len(w) <= budget for w in cut)
            assert sorted(set().union(*map(set, cut))) == ids  # every token in some window
            assert cut[-1][-1] == ids[-1]
            for a, b in itertools.pairwise(cut):
                assert a[len(a) - overlap :] == b[:overlap] if overlap else a[-1] + 1 == b[0]
    with pytest.raises(RvlError, match="--chunk-overlap 8"):
        windows(ids, 8, 8)


def test_page_windows_never_span_two_pages() -> None:
    assert page_windows([[1, 2, 3], [], [4, 5, 6, 7, 8]], 3) == [[1, 2, 3], [4, 5, 6], [7, 8]]
    assert page_windows([[], []], 3) == [[]]


def test_chunk_rows_cover_the_document_and_train_first_keeps_one(tok) -> None:
    text = generate_document(random.Random(7), 2, words=300)
    t = build_template(tok.tokenizer, tok.encode, generative=True,
                       response_template="\n\n### Classification:",
                       labels=RVL_CDIP_CLASSES, max_len=96)
    budget = t.document_budget
    chunks = Truncation("chunks", chunk_overlap=5)
    pieces = encode_for(chunks, tok.encode, [text], budget)[0]
    rows = document_rows(pieces, 2, t, chunks)
    whole = tok.full(text)
    docs = [r.input_ids[len(t.prefix) : r.prompt_len - len(t.directive)] for r in rows]
    assert docs == windows(whole, budget, 5)
    assert len(rows) > 2 and not any(r.truncated for r in rows)
    assert all(r.labels[r.prompt_len :] == list(t.completions[2]) for r in rows)
    first = document_rows(pieces, 2, t, Truncation("chunks", train_chunks="first"), train=True)
    assert len(first) == 1 and first[0].truncated
    by_page = Truncation("chunks", chunk_by="page")
    pages = encode_for(by_page, tok.encode, ["page one text\fpage two"], budget)[0]
    assert pages == [tok.full("page one text"), tok.full("page two")]
    assert len(document_rows(pages, 0, t, by_page)) == 2


def test_head_is_the_old_cut(tok) -> None:
    t = template(20)
    ids = list(range(100, 140))
    [row] = document_rows([ids], 0, t)
    assert row.input_ids[1:15] == ids[:14] and row.truncated


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "tail"}, "--truncation tail: choose from head, head+tail, chunks"),
    ({"strategy": "head", "keep_tail": 5}, "--keep-tail: only for --truncation head+tail"),
    ({"strategy": "head+tail", "keep_tail": 0}, "--keep-tail 0: must be a positive"),
    ({"strategy": "head", "chunk_overlap": 5}, "--chunk-overlap: only for --truncation chunks"),
    ({"strategy": "chunks", "chunk_overlap": -1}, "--chunk-overlap -1: must not be negative"),
    ({"strategy": "chunks", "chunk_by": "line"}, "--chunk-by line: choose from tokens, page"),
    ({"strategy": "head+tail", "train_chunks": "first"}, "--train-chunks: only for"),
])
def test_bad_truncation_settings_name_the_flag(kwargs: dict, message: str) -> None:
    with pytest.raises(RvlError) as err:
        Truncation(**kwargs)
    assert err.value.message.startswith(message.split(":")[0])
    assert message in err.value.message and "\n" not in err.value.message


def test_budget_checks_name_the_flag() -> None:
    with pytest.raises(RvlError, match="--keep-tail 8: must leave the head"):
        Truncation("head+tail", keep_tail=8).check_budget(8)
    with pytest.raises(RvlError, match="--chunk-overlap 9: must be below"):
        Truncation("chunks", chunk_overlap=9).check_budget(9)
    Truncation("chunks", chunk_overlap=8).check_budget(9)


def _log_softmax(row: list[float]) -> list[float]:
    total = math.log(sum(math.exp(v) for v in row))
    return [v - total for v in row]


def test_aggregate_mean_and_max_by_hand() -> None:
    scores = np.array([[-1.0, -2.0, -3.0], [-4.0, -0.5, -2.0], [-0.1, -5.0, -5.0]])
    docs, owner = group_rows(["b", "a", "b"])
    assert docs == ["b", "a"] and owner.tolist() == [0, 1, 0]
    w0, w1, w2 = (_log_softmax(list(r)) for r in scores)
    mean_b = _log_softmax([(x + z) / 2 for x, z in zip(w0, w2, strict=True)])
    max_b = _log_softmax([max(x, z) for x, z in zip(w0, w2, strict=True)])
    got_mean = aggregate_scores(scores, owner, 2, "mean")
    got_max = aggregate_scores(scores, owner, 2, "max")
    np.testing.assert_allclose(got_mean[0], mean_b)
    np.testing.assert_allclose(got_max[0], max_b)
    np.testing.assert_allclose(got_mean[1], w1)  # a document of one window: its own scores
    with pytest.raises(RvlError, match="--chunk-aggregate median"):
        aggregate_scores(scores, owner, 2, "median")


def test_aggregate_predictions_one_per_document() -> None:
    scores = np.log(np.array([[0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]]))
    rows = Predictions(["d1", "d1", "d1", "d2"], np.array([1, 1, 1, 0]),
                       scores.argmax(axis=1), np.exp(scores), None, 0, scores)
    got = aggregate_predictions(rows, "mean")
    assert got.doc_ids == ["d1", "d2"]
    assert got.true.tolist() == [1, 0] and got.predicted.tolist() == [1, 0]
    np.testing.assert_allclose(got.probs.sum(axis=1), 1.0)
    assert aggregate_predictions(rows, "max").predicted.tolist() == [1, 0]
    single = Predictions(["x", "y"], np.array([0, 1]), np.array([0, 1]), None, None, 0,
                         scores[:2])
    assert aggregate_predictions(single) is single
    mixed = Predictions(["d1", "d1"], np.array([0, 1]), np.array([0, 1]), None, None, 0,
                        scores[:2])
    with pytest.raises(RvlError, match="different labels"):
        aggregate_predictions(mixed)


def test_test_set_rows_become_their_documents() -> None:
    # rows 0-2 are windows of d1, row 3 is d2, rows 4-5 windows of d3
    ids = ["d1", "d1", "d1", "d2", "d3", "d3"]
    assert documents_of(ids, [[0, 1, 2, 3], [3, 4, 5]]) == [[0, 1], [1, 2]]
    assert documents_of(["a", "b"], [[1], [0, 1]]) == [[1], [0, 1]]


def test_chunks_train_eval_and_predict_per_document(models, corpus, tmp_path) -> None:
    """--truncation chunks end to end on a tiny model: each document's windows are rows of one
    doc_id that cover it, training takes them, eval and Classifier give one answer per
    document; --class-weights balanced is resolved from the train rows into the recipe."""
    cfg = TrainConfig.from_flags(
        data_dir=corpus, name="chunks", model=str(models / "tiny-mistral"), max_len=32,
        generative=True, num_epochs=1, batch_size=4, lr=1e-3, labels_file=tmp_path / "labels.txt",
        log_dir=tmp_path / "log", cache_dir=tmp_path / "cache", trainable="lora",
        truncation="chunks", chunk_overlap=4, class_weights="balanced", chunk_aggregate="max",
        max_steps=1, save="never", progress=False)
    result = run_train(cfg, log=lambda _msg: None)
    recipe = Recipe.read(result.final_dir)
    assert recipe.prompt.settings.truncation == "chunks"
    assert recipe.settings.chunk_aggregate == "max"

    [entry] = [p for p in (tmp_path / "cache").iterdir() if (p / "manifest.json").is_file()]
    manifest = Manifest.load(entry)
    train = manifest.dataset("train").to_pandas()
    assert len(train) > 8 and train["doc_id"].nunique() == 8  # windows of 8 documents
    counts = manifest.split_info("train").class_counts
    total = sum(counts.values())
    assert recipe.class_weights == pytest.approx(
        tuple(total / (len(counts) * counts[name]) for name in recipe.labels))
    budget = manifest.template.document_budget
    for _, rows in train.groupby("doc_id", sort=False):
        docs = [list(r[1 : p - len(manifest.template.directive)])
                for r, p in zip(rows["input_ids"], rows["prompt_len"], strict=True)]
        assert all(len(d) <= budget for d in docs)
        for a, b in itertools.pairwise(docs):  # consecutive windows share the overlap
            assert a[-4:] == b[:4]
    evaluated = run_eval(EvalConfig(checkpoint=result.final_dir, split="validation",
                                    out_dir=tmp_path / "evals", progress=False),
                         log=lambda _msg: None)
    assert evaluated is not None
    lines = (evaluated.folder / "predictions.tsv").read_text().splitlines()
    assert len(lines) == 1 + 4  # a header, then one per validation document, not per window
    clf = Classifier.from_checkpoint(result.final_dir)
    long_text = " ".join(["dear sincerely regards yours the office report page"] * 12)
    [one] = clf.predict([long_text])
    assert sum(one.scores.values()) == pytest.approx(1.0)

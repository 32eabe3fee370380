"""The embedded sample world: the synthetic corpus and the tiny models with real tokenizers."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.corpus import document_file_name, parse_label
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.sample import corpus, templates
from rvl_llm.sample import models as sample_models

MODEL_NAMES = ("tiny-mistral", "tiny-llama3")
VOCAB_SIZES = {"tiny-mistral": 32000, "tiny-llama3": 128256}


def _read_corpus(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}


def _words(text: str) -> int:
    return len(text.split())


# ------------------------------------------------------------------------------------------
# Corpus
# ------------------------------------------------------------------------------------------


def test_corpus_is_deterministic_per_seed(tmp_path: Path) -> None:
    sizes = {"train": 3, "validation": 1}
    counts = corpus.write_corpus(tmp_path / "a", per_class=sizes, seed=7)
    corpus.write_corpus(tmp_path / "b", per_class=sizes, seed=7)
    corpus.write_corpus(tmp_path / "c", per_class=sizes, seed=8)
    assert counts == {"train": 48, "validation": 16}
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 64
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    differ = [
        n for n in names if (tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes()
    ]
    assert len(differ) > 50


def test_each_split_has_its_own_random_stream(tmp_path: Path) -> None:
    corpus.write_corpus(tmp_path / "small", per_class={"train": 1, "test": 1})
    corpus.write_corpus(tmp_path / "big", per_class={"train": 4, "test": 1})
    tests = sorted(p.name for p in (tmp_path / "small").glob("test_*"))
    assert len(tests) == 16
    for name in tests:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes()


def test_write_corpus_rejects_unknown_splits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        corpus.write_corpus(tmp_path, per_class={"dev": 1})


def test_file_names() -> None:
    assert corpus.corpus_file_name("train", 13, 13) == "train_0013_13_aws.json"
    assert parse_label("validation_0159_7_aws.json", "validation_", "_aws") == 7
    assert tuple(corpus.FILE_PREFIXES) == SPLITS  # the pipeline's splits, its default prefixes


@pytest.mark.parametrize(
    ("prefix", "stem", "label", "suffix"),
    [
        ("train_", "0000", 13, "_aws"),
        ("test_", "scan_07_page_2", 0, "_aws"),  # numbers in the stem are not the label
        ("validation_", "a", 15, ""),
        ("dev-", "x_y", 120, "_ocr"),
    ],
)
def test_document_file_name_is_read_back_by_parse_label(
    prefix: str, stem: str, label: int, suffix: str
) -> None:
    name = document_file_name(prefix, stem, label, suffix)
    assert name.startswith(prefix) and name.endswith(f"{suffix}.json")
    assert parse_label(name, prefix, suffix) == label


# sha256 over (name, bytes) of write_corpus(per_class={"train": 2, "test": 1}, seed=3) as the
# corpus was generated before the class descriptions moved from Python code to TOML.
SMALL_CORPUS_SHA256 = "91f6d83537ab4e0ca15ef67412201b6a593bfca017e1e68c7c173e4936cebb47"


def test_corpus_bytes_are_pinned(tmp_path: Path) -> None:
    corpus.write_corpus(tmp_path, per_class={"train": 2, "test": 1}, seed=3)
    digest = hashlib.sha256()
    for path in sorted(tmp_path.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    assert digest.hexdigest() == SMALL_CORPUS_SHA256


def _check_tables_match_folder(folder: Path, jsonl: Path, parquet: Path) -> None:
    """Each table row is the folder's document: same id, text and label, in file order."""
    import pyarrow.parquet as pq

    files = _read_corpus(folder)
    order = {split: i for i, split in enumerate(SPLITS)}
    expected = []
    for name, record in files.items():
        split, _, index = record["id"].rpartition("_")
        label = parse_label(name, corpus.FILE_PREFIXES[split], corpus.FILE_SUFFIX)
        expected.append(((split, int(index), label), record))
    expected.sort(key=lambda item: (order[item[0][0]], item[0][1]))
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").split("\n")[:-1]]
    table = pq.read_table(parquet)
    assert table.column_names == ["id", "split", "label", "ocr"]
    assert str(table.schema.field("label").type) == "int64"
    columns = table.to_pydict()
    assert len(rows) == len(expected) == table.num_rows
    for i, ((split, _index, label), record) in enumerate(expected):
        assert rows[i] == {
            "id": record["id"], "split": split, "label": RVL_CDIP_CLASSES[label],
            "ocr": record["ocr"],
        }
        assert (columns["id"][i], columns["split"][i]) == (record["id"], split)
        assert (columns["label"][i], columns["ocr"][i]) == (label, record["ocr"])


def test_jsonl_and_parquet_rows_equal_the_folders_files(tmp_path: Path) -> None:
    documents = corpus.corpus_documents(per_class={"train": 2, "validation": 1, "test": 1})
    assert corpus.write_documents(tmp_path / "data", documents) == {
        "train": 32, "validation": 16, "test": 16,
    }
    assert corpus.write_jsonl(tmp_path / "data.jsonl", documents) == 64
    assert corpus.write_parquet(tmp_path / "data.parquet", documents) == 64
    _check_tables_match_folder(
        tmp_path / "data", tmp_path / "data.jsonl", tmp_path / "data.parquet"
    )
    # One row a line even for readers that split at every Unicode line break.
    lines = (tmp_path / "data.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 64


def test_sample_world_tables_equal_its_folder(sample_root: Path) -> None:
    jsonl = sample_root / sample_models.JSONL_NAME
    if not jsonl.exists():
        pytest.skip("the sample world in use predates data.jsonl and data.parquet")
    _check_tables_match_folder(
        sample_root / "data", jsonl, sample_root / sample_models.PARQUET_NAME
    )


# ------------------------------------------------------------------------------------------
# The class descriptions (classes.toml, words.toml) and their template language
# ------------------------------------------------------------------------------------------


def test_shipped_class_descriptions_read() -> None:
    spec = corpus.read_corpus_spec()
    assert [c.name for c in spec.classes] == list(RVL_CDIP_CLASSES)
    assert all(c.keywords and c.header and c.block and c.footer for c in spec.classes)
    raw = tomllib.loads(corpus.CLASSES_FILE.read_text(encoding="utf-8"))
    assert set(raw["classes"]) == set(RVL_CDIP_CLASSES)


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("[classes.memo]", "extra = 1", r"unknown keys \['extra'\]"),
        ("[classes.memo.parts]", "signed = { when = 0.5 }", "expected a list of steps"),
        ("[classes.memo.parts]", "signed = [{ when = 0.5, than = [] }]", "unknown step keys"),
        ("[classes.memo.parts]", 'signed = ["{no_such_table}"]', "unknown name 'no_such_table'"),
        ("[classes.memo.parts]", 'signed = ["{open(1)}"]', "unknown piece"),
        ("[classes.memo.parts]", 'signed = ["{name.__class__}"]', "not allowed"),
        ("[classes.memo.parts]", 'signed = ["{title_phrase(name, 2)}"]', "must name a word"),
        ("[classes.memo.parts]", 'signed = ["{n"]', "unclosed slot"),
        ("[classes.memo.parts]", 'signed = [{ let = { months = "{year}" } }]', "also table"),
        ("[classes.memo.parts]", 'signed = [{ part = "nowhere" }]', "no part named"),
        ("[classes.memo.tables]", 'filler = "a b"', "defined twice"),
    ],
)
def test_class_description_mistakes_fail_loudly(
    tmp_path: Path, section: str, line: str, message: str
) -> None:
    text = corpus.CLASSES_FILE.read_text(encoding="utf-8")
    assert text.count(section + "\n") == 1
    classes = tmp_path / "classes.toml"
    classes.write_text(text.replace(section + "\n", f"{section}\n{line}\n"), encoding="utf-8")
    with pytest.raises(templates.CorpusSpecError, match=message):
        corpus.read_corpus_spec(corpus.WORDS_FILE, classes)


def test_unknown_keys_in_words_toml_fail_loudly(tmp_path: Path) -> None:
    words = tmp_path / "words.toml"
    words.write_text(corpus.WORDS_FILE.read_text(encoding="utf-8") + "\n[extra]\nx = 1\n")
    with pytest.raises(templates.CorpusSpecError, match=r"unknown keys \['extra'\]"):
        corpus.read_corpus_spec(words, corpus.CLASSES_FILE)


def _scope(**tables: tuple[str, ...]) -> templates.Scope:
    return templates.Scope(tables, templates.make_pieces({}), frozenset({"n"}), "test")


def test_templates_draw_in_written_order() -> None:
    scope = _scope(colours=("red", "green", "blue"))
    render = templates.compile_template(
        "{int(1, 6)}-{colours} {uniform(0, 1):.{int(1, 3)}f} {n + 1:03d} {{x}}", scope
    )
    rng, reference = random.Random(5), random.Random(5)
    a = templates.randint(reference, 1, 6)
    colour = ("red", "green", "blue")[int(reference.random() * 3)]
    value = reference.uniform(0, 1)
    expected = f"{a}-{colour} {value:.{templates.randint(reference, 1, 3)}f} 042 {{x}}"
    assert render(rng, {"n": 41}) == expected
    assert rng.getstate() == reference.getstate()
    raw = templates.compile_template("{n * 2}", scope, raw=True)
    assert raw(rng, {"n": 21}) == 42  # a lone slot keeps its type


def test_pick_line_renders_every_option_before_picking() -> None:
    scope = _scope()
    compiler = templates.PartCompiler(
        {"part": [{"pick_line": ["a{int(1, 9)}", "b{int(1, 9)}"]}]}, scope
    )
    steps = compiler.part("part")
    rng, reference = random.Random(3), random.Random(3)
    lines: list[str] = []
    templates.run_steps(steps, rng, {}, lines)
    options = [f"a{templates.randint(reference, 1, 9)}", f"b{templates.randint(reference, 1, 9)}"]
    assert lines == [templates.pick(reference, options)]
    assert rng.getstate() == reference.getstate()


def test_default_corpus_layout(sample_data: Path) -> None:
    docs = _read_corpus(sample_data)
    pattern = re.compile(r"^(train|validation|test)_(\d{4})_(\d{1,2})_aws\.json$")
    per_split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for name, record in docs.items():
        match = pattern.match(name)
        assert match, name
        split, index, label = match[1], int(match[2]), int(match[3])
        assert label == index % 16
        assert set(record) == {"id", "ocr"}
        assert record["id"] == f"{split}_{index}"
        assert isinstance(record["ocr"], str)
        per_split[split].append(index)
    assert {s: len(v) for s, v in per_split.items()} == {
        "train": 768,
        "validation": 128,
        "test": 128,
    }
    for indices in per_split.values():
        assert sorted(indices) == list(range(len(indices)))


def test_default_corpus_lengths_and_edge_cases(sample_data: Path) -> None:
    texts = [record["ocr"] for record in _read_corpus(sample_data).values()]
    words = sorted(_words(t) for t in texts)
    assert sum(t == "" for t in texts) >= 5  # about 2% empty
    assert any(t and not t.strip() for t in texts)  # a few whitespace-only
    assert 150 <= statistics.median(words) <= 400
    assert 350 <= words[int(0.9 * len(words))] <= 1000
    assert words[-1] >= 3000  # every split holds long documents that need truncating
    assert sum(w >= 3000 for w in words) >= 3
    assert max(words) <= 6500


def test_default_corpus_looks_like_ocr(sample_data: Path) -> None:
    texts = [record["ocr"] for record in _read_corpus(sample_data).values()]
    joined = "\n".join(texts)
    assert any(ord(c) > 127 for c in joined)  # é, ½, •, curly quotes ...
    assert "  " in joined  # runs of spaces
    caps_lines = [line for line in joined.splitlines() if len(line) > 20 and line.isupper()]
    assert len(caps_lines) > 100
    assert re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b", joined)  # dates
    assert re.search(r"\$\d[\d,]*\.\d\d", joined)  # prices


CUES = {
    0: r"dear|sincerely|truly yours|regards",
    2: r"from:|subject:|sent:",
    11: r"invoice|amount due|total due|balance due",
    14: r"resume|curriculum|vitae|biographical|education|experience",
    15: r"memo",
}


@pytest.mark.parametrize("label", sorted(CUES))
def test_most_documents_carry_a_class_cue_but_not_all(label: int) -> None:
    rng = random.Random(label)
    texts = [corpus.generate_document(rng, label, words=120) for _ in range(200)]
    found = sum(bool(re.search(CUES[label], t, re.IGNORECASE)) for t in texts)
    assert 0.6 * len(texts) <= found < len(texts)


def test_generate_document_forced_length() -> None:
    rng = random.Random(1)
    for words in (1, 500, 20_000):
        text = corpus.generate_document(rng, 6, words=words)
        assert text.strip()
        assert 0.8 * words <= _words(text) <= 1.3 * words + 60
    with pytest.raises(ValueError):
        corpus.generate_document(rng, 16)


def test_generate_document_is_fast() -> None:
    rng = random.Random(0)
    started = time.process_time()
    for i in range(1600):
        corpus.generate_document(rng, i % 16)
    # ~20,000 documents take a few seconds on an ordinary machine; this is 1,600 of them.
    assert time.process_time() - started < 5


# ------------------------------------------------------------------------------------------
# Tokenizers and models
# ------------------------------------------------------------------------------------------

_TOKENIZERS: dict[Path, Any] = {}


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    if folder not in _TOKENIZERS:
        _TOKENIZERS[folder] = AutoTokenizer.from_pretrained(folder)
    return _TOKENIZERS[folder]


def test_mistral_tokenizer_is_mistral_7b_v01s(sample_root: Path, sample_data: Path) -> None:
    tok = _tokenizer(sample_root / "models" / "tiny-mistral")
    assert tok.is_fast and len(tok) == 32000
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 2, 0)
    assert tok.pad_token is None
    assert tok("Hello world")["input_ids"] == [1, 22557, 1526]
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [22557, 1526]
    # Like the hub's tokenizer.json: "▁" handled in the normalizer, no pre-tokenizer.
    assert tok(" letter", add_special_tokens=False)["input_ids"] == [259, 15867]
    text = next(r["ocr"] for r in _read_corpus(sample_data).values() if _words(r["ocr"]) > 100)
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_llama3_tokenizer_is_llama3s(sample_root: Path, sample_data: Path) -> None:
    tok = _tokenizer(sample_root / "models" / "tiny-llama3")
    assert tok.is_fast and len(tok) == 128256
    assert (tok.bos_token_id, tok.eos_token_id) == (128000, 128001)
    assert tok.pad_token is None and tok.unk_token is None
    assert tok("Hello world")["input_ids"] == [128000, 9906, 1917]
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [9906, 1917]
    ids = tok.convert_tokens_to_ids(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    assert ids == [128006, 128007, 128009]
    assert tok.convert_ids_to_tokens(128255) == "<|reserved_special_token_245|>"
    texts = [r["ocr"] for r in _read_corpus(sample_data).values()][:40]
    for text in texts:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_llama3_tokenizer_matches_tiktoken(sample_root: Path, sample_data: Path) -> None:
    llama3 = pytest.importorskip("llama_models.llama3.tokenizer")
    reference = llama3.Tokenizer.get_instance()
    tok = _tokenizer(sample_root / "models" / "tiny-llama3")
    texts = [r["ocr"] for r in _read_corpus(sample_data).values()][:60]
    for text in texts:
        expected = reference.encode(text, bos=False, eos=False)
        assert tok(text, add_special_tokens=False)["input_ids"] == expected


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_loads_with_the_auto_classes_and_runs(sample_root: Path, name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    folder = sample_root / "models" / name
    tok = _tokenizer(folder)
    batch = tok(["INVOICE No. 1234  Amount Due $12.50"], return_tensors="pt")
    n = batch["input_ids"].shape[1]

    lm = AutoModelForCausalLM.from_pretrained(folder)
    assert lm.config.pad_token_id is None
    assert lm.config.vocab_size == VOCAB_SIZES[name] == len(tok)
    assert (lm.config.bos_token_id, lm.config.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
    assert lm.config.tie_word_embeddings == (name == "tiny-llama3")
    assert lm.dtype == torch.float32
    with torch.no_grad():
        logits = lm(**batch).logits
    assert logits.shape == (1, n, VOCAB_SIZES[name])
    assert torch.isfinite(logits).all()

    clf = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=16)
    with torch.no_grad():
        scores = clf(**batch).logits
    assert scores.shape == (1, 16)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rope_theta_is_the_real_models(sample_root: Path, name: str) -> None:
    config = json.loads((sample_root / "models" / name / "config.json").read_text())
    expected = {"tiny-mistral": 10000.0, "tiny-llama3": 500000.0}[name]
    assert config["rope_parameters"]["rope_theta"] == expected
    assert config["hidden_size"] == 64 and config["num_hidden_layers"] == 2


# ------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------


def test_build_sample_is_idempotent(sample_root: Path) -> None:
    if not sample_models.sample_is_complete(sample_root):
        pytest.skip("the sample world in use is of another format")
    stamp = (sample_root / sample_models.STAMP_NAME).read_bytes()
    started = time.monotonic()
    sample_models.build_sample(sample_root)
    assert time.monotonic() - started < 2
    assert (sample_root / sample_models.STAMP_NAME).read_bytes() == stamp


def test_cli_skips_a_complete_world(sample_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rvl_llm.sample.__main__ import main

    if not sample_models.sample_is_complete(sample_root):
        pytest.skip("the sample world in use is of another format")
    assert main(["--out", str(sample_root)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "tiny-llama3" in out


def test_build_sample_never_replaces_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RvlError, match="not replacing"):
        sample_models.build_sample(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_tokenizer_sources_ship_with_packages() -> None:
    mistral = sample_models.mistral_tokenizer_source()
    llama3 = sample_models.llama3_tokenizer_source()
    assert mistral.name == "tokenizer.model.v1" and mistral.parent.name == "data"
    assert llama3.name == "tokenizer.model" and llama3.parent.name == "llama3"

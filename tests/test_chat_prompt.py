"""Chat prompts (``--prompt chat``) on SmolLM2's real tokenizer and chat template: segments equal
to ``apply_chat_template``'s ids, masks that hold the class name and end of turn only,
truncation of the document alone, cache keys, one-line errors, and a train run's recipe."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import prompt_for

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline import cache, chat
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.manifest import IGNORE_INDEX, Manifest
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.pipeline.rows import load_row_builder
from rvl_llm.pipeline.template import build_row
from rvl_llm.pipeline.tokenize import TokenizerFiles, encode_documents, load_tokenizer_files
from rvl_llm.presets import TOKENIZER_FILES
from rvl_llm.sample.corpus import generate_document

END_OF_TURN = "<|im_end|>"
DOCUMENTS = (
    "Dear Mr. Smith,\nplease find enclosed the invoice No. 4711 for $1,250.00.\n",
    "MEMO\nTo: all staff\nFrom: J. Doe\nSubject: budget 1999",
    "1234 Total due </s> <|im_end|> see attached",
    "",
)
DESCRIPTIONS = "letter: a letter to a person\ninvoice: a bill with amounts due\n"


@pytest.fixture(scope="session")
def smollm2(sample_root: Path) -> Path:
    folder = sample_root / "models" / "smollm2-instruct"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"no SmolLM2 sample model at {folder}; build it with `make sample`")
    return folder


@pytest.fixture(scope="session")
def reference(smollm2: Path) -> Any:
    """transformers' own tokenizer: apply_chat_template is the reference."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2)


@pytest.fixture(scope="session")
def files(smollm2: Path) -> TokenizerFiles:
    return load_tokenizer_files(smollm2)


def cfg(data: Path, model: Path | str, cache_dir: Path, **overrides: Any) -> PrepareConfig:
    values: dict[str, Any] = {"data_dir": data, "model": str(model), "cache_dir": cache_dir,
                              "max_len": 512, "generative": True, "prompt": "chat",
                              "progress": False, "labels": RVL_CDIP_CLASSES}
    return PrepareConfig(**(values | overrides))


def spec(smollm2: Path, tmp_path: Path, **overrides: Any) -> PromptSpec:
    return prompt_for(cfg(tmp_path, smollm2, tmp_path / "cache", **overrides))


def builder(smollm2: Path, tmp_path: Path, **overrides: Any) -> Any:
    return load_row_builder(spec(smollm2, tmp_path, **overrides), smollm2)


def conversation(instruction: str, document: str, name: str | None = None) -> list[dict]:
    messages = [{"role": "user", "content": instruction + document}]
    return messages if name is None else [*messages, {"role": "assistant", "content": name}]


def chat_ids(reference: Any, messages: list[dict], **options: Any) -> list[int]:
    ids = reference.apply_chat_template(messages, tokenize=True, **options)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


# ------------------------------------------------------------------------------------------------
# Segments, masks, budget
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("descriptions", [False, True], ids=["default", "descriptions"])
def test_segments_equal_apply_chat_template(smollm2: Path, reference: Any, tmp_path: Path,
                                            descriptions: bool) -> None:
    extra: dict[str, Any] = {}
    if descriptions:
        (tmp_path / "descriptions.txt").write_text(DESCRIPTIONS)
        extra = {"label_descriptions": tmp_path / "descriptions.txt",
                 "instruction": "Which of {labels} is it?"}
    rows = builder(smollm2, tmp_path, **extra)
    template = rows.template
    resolved = spec(smollm2, tmp_path, **extra).chat
    assert resolved is not None
    instruction = resolved.instruction
    if descriptions:
        assert instruction.startswith("Which of letter, form, email")
        assert "\n- letter: a letter to a person\n- invoice: a bill" in instruction
    for document in DOCUMENTS[:2]:  # special-token text in a document stays text: not these
        doc_ids = encode_documents(rows.encode, [document], template.document_budget)[0]
        prompt = build_row(doc_ids, None, template).input_ids
        user = conversation(instruction, document)
        assert prompt == chat_ids(reference, user, add_generation_prompt=True)
        for label, name in enumerate(RVL_CDIP_CLASSES):
            row = build_row(doc_ids, label, template)
            full = chat_ids(reference, conversation(instruction, document, name))
            assert row.input_ids == full[: len(row.input_ids)]
            assert reference.decode(full[len(row.input_ids):]) == "\n"  # after the end of turn
            assert list(template.completions[label]) == [
                *reference.encode(name, add_special_tokens=False),
                reference.convert_tokens_to_ids(END_OF_TURN)]


def test_masks_hold_the_class_name_and_end_of_turn_only(smollm2: Path, reference: Any,
                                                         tmp_path: Path) -> None:
    long = generate_document(random.Random(5), 3, words=3000)
    rows = builder(smollm2, tmp_path, max_len=128)
    template = rows.template
    docs = encode_documents(rows.encode, [*DOCUMENTS, long], template.document_budget)
    for doc_ids, text in zip(docs, [*DOCUMENTS, long], strict=True):
        for label, name in enumerate(RVL_CDIP_CLASSES):
            row = build_row(doc_ids, label, template)
            assert row.truncated == (text is long)
            answer = [t for t, m in zip(row.input_ids, row.labels, strict=True)
                      if m != IGNORE_INDEX]
            assert reference.decode(answer) == name + END_OF_TURN
            assert row.labels[: row.prompt_len] == [IGNORE_INDEX] * row.prompt_len
            assert row.input_ids[row.prompt_len:] == answer  # the reply ends the row
            assert len(row.input_ids) <= 128


def test_truncation_cuts_only_the_document_within_max_len(smollm2: Path, files: TokenizerFiles,
                                                          tmp_path: Path) -> None:
    text = generate_document(random.Random(3), 5, words=3000)
    rows = builder(smollm2, tmp_path, max_len=128)
    template = rows.template
    fixed = len(template.prefix) + len(template.directive) + template.max_completion_len
    assert template.document_budget == 128 - fixed > 0
    full = files.backend.encode(text, add_special_tokens=False).ids
    doc_ids = encode_documents(rows.encode, [text], template.document_budget)[0]
    prompt = [*template.prefix, *full[: template.document_budget], *template.directive]
    lengths = []
    for label in range(len(RVL_CDIP_CLASSES)):
        row = build_row(doc_ids, label, template)
        assert row.truncated and row.input_ids[: row.prompt_len] == prompt
        assert row.input_ids[row.prompt_len:] == list(template.completions[label])
        lengths.append(len(row.input_ids))
    assert max(lengths) == 128  # the longest class fills max-len exactly
    with pytest.raises(RvlError, match=r"^--max-len 60: too small"):
        builder(smollm2, tmp_path, max_len=60)


def test_special_token_text_in_a_document_stays_text(smollm2: Path, reference: Any,
                                                     tmp_path: Path) -> None:
    rows = builder(smollm2, tmp_path)
    doc_ids = encode_documents(rows.encode, [DOCUMENTS[2]], rows.template.document_budget)[0]
    assert reference.convert_tokens_to_ids(END_OF_TURN) not in doc_ids
    row = build_row(doc_ids, 0, rows.template)
    end = reference.convert_tokens_to_ids(END_OF_TURN)
    # One end of turn closes the system turn, one the user's, one the reply: none from the text.
    assert row.input_ids.count(end) == 3 and row.input_ids[-1] == end


def test_a_checkpoint_tokenizer_gives_the_prompt_prepare_gives(smollm2: Path, reference: Any,
                                                                tmp_path: Path) -> None:
    from rvl_llm.pipeline.rows import row_builder

    prompt = spec(smollm2, tmp_path, max_len=200)
    assert row_builder(prompt, reference).template == load_row_builder(prompt, smollm2).template


# ------------------------------------------------------------------------------------------------
# Cache keys
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def corpus(write_corpus: Callable[..., Path]) -> Path:
    return write_corpus({"validation_0000_0_aws.json": DOCUMENTS[0],
                         "validation_0001_11_aws.json": generate_document(random.Random(1), 11,
                                                                           words=800)})


def test_instruction_descriptions_and_template_change_the_key_and_the_prompt(
    smollm2: Path, corpus: Path, reference: Any, tmp_path: Path
) -> None:
    (tmp_path / "descriptions.txt").write_text(DESCRIPTIONS)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (*TOKENIZER_FILES, "chat_template.jinja"):
        if (smollm2 / name).is_file():
            shutil.copy(smollm2 / name, copy / name)
    jinja = copy / "chat_template.jinja"
    jinja.write_text(jinja.read_text().replace("named SmolLM", "named Clerk"))
    common = {"max_len": 256, "splits": ("validation",)}
    variants = {
        "default": cfg(corpus, smollm2, tmp_path / "cache", **common),
        "instruction": cfg(corpus, smollm2, tmp_path / "cache", instruction="Sort it.", **common),
        "descriptions": cfg(corpus, smollm2, tmp_path / "cache",
                            label_descriptions=tmp_path / "descriptions.txt", **common),
        "template": cfg(corpus, copy, tmp_path / "cache", **common),
    }
    manifests = {name: run_prepare(c).manifest for name, c in variants.items()}
    assert len({m.key for m in manifests.values()}) == len(variants)
    prefixes = {name: reference.decode(m.template.prefix) for name, m in manifests.items()}
    assert "Sort it.\n\nDocument:\n" in prefixes["instruction"]
    assert "- invoice: a bill with amounts due\n\nDocument:" in prefixes["descriptions"]
    assert "named Clerk" in prefixes["template"] and "named Clerk" not in prefixes["default"]
    settings = manifests["descriptions"].settings["prompt"]
    assert settings["chat"]["instruction"].endswith("- invoice: a bill with amounts due"
                                                    + chat.DOCUMENT_HEADING)
    assert settings["chat"]["template"]["text"] == (
        smollm2 / "chat_template.jinja").read_text()
    assert settings["settings"]["prompt"] == "chat"
    for m in manifests.values():  # the key hashes what the manifest shows
        assert cache.cache_key(m.settings) == m.key
    # The same settings again: a hit, with the rows the first build wrote.
    again = run_prepare(variants["instruction"])
    assert again.built == () and again.manifest == manifests["instruction"]


NUMBERED = ("Which type is this document?\n"
            + "".join(f"{n}. {name}\n" for n, name in enumerate(RVL_CDIP_CLASSES, 1))
            + "Answer with the type's name.\n")


def test_an_instruction_file_is_read_into_the_prompt_the_key_and_the_recipe(
    smollm2: Path, corpus: Path, reference: Any, tmp_path: Path
) -> None:
    """--instruction-file puts the file's text where --instruction would: the rows' prompt, the
    resolved settings (what the recipe stores; no path left to read later) and the key, which
    follows the text, not the path. A numbered class list still has class NAMES scored."""
    path = tmp_path / "prompt_ocr.txt"
    path.write_text(NUMBERED)
    common = {"max_len": 256, "splits": ("validation",)}
    from_file = run_prepare(cfg(corpus, smollm2, tmp_path / "cache", instruction_file=path,
                                **common))
    prefix = reference.decode(from_file.manifest.template.prefix)
    assert "1. letter\n2. form\n" in prefix and "16. memo\nAnswer with the type's name."\
        + chat.DOCUMENT_HEADING in prefix
    settings = from_file.prompt.settings
    assert settings.instruction == NUMBERED.strip() and settings.instruction_file is None
    saved = from_file.manifest.settings["prompt"]["settings"]
    assert saved["instruction"] == NUMBERED.strip() and saved["instruction_file"] is None
    # The same text given inline is the same prompt: one cache entry.
    inline = run_prepare(cfg(corpus, smollm2, tmp_path / "cache", instruction=NUMBERED.strip(),
                             **common))
    assert inline.built == () and inline.manifest.key == from_file.manifest.key
    # Another text in the same file is another prompt: another key.
    path.write_text(NUMBERED.replace("16. memo", "16. memorandum"))
    edited = run_prepare(cfg(corpus, smollm2, tmp_path / "cache", instruction_file=path,
                             **common))
    assert edited.manifest.key != from_file.manifest.key
    # What is scored is each class name + end of turn, never its number.
    template = from_file.manifest.template
    for label, name in enumerate(RVL_CDIP_CLASSES):
        assert list(template.completions[label]) == [
            *reference.encode(name, add_special_tokens=False),
            reference.convert_tokens_to_ids(END_OF_TURN)]


def test_a_plain_prompt_keys_as_its_resolved_style(smollm2: Path, corpus: Path,
                                                    tmp_path: Path) -> None:
    """The key hashes the resolved prompt: --prompt plain and a folder's default (plain) are one
    entry; the key is the hash of the parts the manifest shows."""
    plain = cfg(corpus, smollm2, tmp_path / "cache", prompt=None, max_len=128,
                splits=("validation",))
    first = run_prepare(plain).manifest
    assert first.settings["prompt"]["chat"] is None
    assert first.settings["prompt"]["settings"]["prompt"] == "plain"
    keyed = {k: first.settings[k] for k in cache.KEY_FIELDS}
    import hashlib

    assert first.key == hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()
                                       ).hexdigest()[:20]
    from dataclasses import replace

    assert run_prepare(replace(plain, prompt="plain")).manifest.key == first.key
    assert first.template.prefix == ()  # SmolLM2's scheme adds nothing: document + directive


# ------------------------------------------------------------------------------------------------
# Errors: one line, nothing written
# ------------------------------------------------------------------------------------------------


def prepare(data: Path, model: Path | str, cache_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["prepare", "--data", str(data), "--model", str(model),
                                     "--cache-dir", str(cache_dir), "--max-len", "256", "-g",
                                     "--no-progress", "--splits", "validation", *args])


def assert_clean_failure(result: Result, cache_dir: Path, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not cache_dir.exists() or list(cache_dir.rglob("*")) == []


def test_a_tokenizer_without_a_chat_template(tokenizer_dirs: dict[str, Path], corpus: Path,
                                             tmp_path: Path) -> None:
    model = tokenizer_dirs["tiny-mistral"]
    result = prepare(corpus, model, tmp_path / "cache", "--prompt", "chat")
    assert_clean_failure(result, tmp_path / "cache", "--prompt chat", str(model),
                         "no chat template")


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("letter: a letter\nreceipt: a slip of paper\n", 2, "'receipt' is not a class"),
        ("letter: a letter\n\nform a form to fill in\n", 3, "expected 'class name: description'"),
        ("letter:\n", 1, "expected 'class name: description'"),
        ("letter: one\nletter: two\n", 2, "described twice (first on line 1)"),
    ],
    ids=["unknown-class", "no-colon", "no-description", "twice"],
)
def test_bad_label_descriptions(smollm2: Path, corpus: Path, tmp_path: Path, content: str,
                                line: int, needle: str) -> None:
    path = tmp_path / "descriptions.txt"
    path.write_text(content)
    result = prepare(corpus, smollm2, tmp_path / "cache", "--prompt", "chat",
                     "--label-descriptions", str(path))
    assert_clean_failure(result, tmp_path / "cache", f"{path}:{line}: ", needle)


def test_a_missing_descriptions_file(smollm2: Path, corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "none.txt"
    result = prepare(corpus, smollm2, tmp_path / "cache", "--prompt", "chat",
                     "--label-descriptions", str(path))
    assert_clean_failure(result, tmp_path / "cache", f"--label-descriptions {path}: cannot read")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--prompt", "plain", "--instruction", "Sort it."), ("--instruction", "chat prompt")),
        (("--instruction", "Sort it."), ("--instruction", "prompt is plain", "--prompt chat")),
        (("--prompt", "chat", "--instruction", " "), ("--instruction: must not be empty",)),
    ],
    ids=["explicit-plain", "plain-model", "empty"],
)
def test_instruction_without_a_chat_prompt(smollm2: Path, corpus: Path, tmp_path: Path,
                                           args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    # A folder has no preset: its prompt is plain unless --prompt chat says otherwise.
    assert_clean_failure(prepare(corpus, smollm2, tmp_path / "cache", *args),
                         tmp_path / "cache", *needles)


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        (None, (), "cannot read"),
        (b"  \n\n", (), "the file is empty"),
        (b"\xff\xfe Classify", (), "cannot read"),
        (b"Classify it.", ("--instruction", "Sort it."), "not with --instruction"),
    ],
    ids=["missing", "empty", "not-utf8", "with-instruction"],
)
def test_bad_instruction_files(smollm2: Path, corpus: Path, tmp_path: Path,
                               content: bytes | None, extra: tuple[str, ...], needle: str) -> None:
    path = tmp_path / "prompt.txt"
    if content is not None:
        path.write_bytes(content)
    result = prepare(corpus, smollm2, tmp_path / "cache", "--prompt", "chat",
                     "--instruction-file", str(path), *extra)
    assert_clean_failure(result, tmp_path / "cache", f"--instruction-file {path}: ", needle)


def test_a_bad_instruction_file_stops_train_before_any_write(smollm2: Path, corpus: Path,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "none.txt"
    result = CliRunner().invoke(main, ["train", "-d", str(corpus), "-m", str(smollm2), "-g",
                                       "--name", "run", "--prompt", "chat",
                                       "--instruction-file", str(path), "--log-dir",
                                       str(tmp_path / "log"), "--cache-dir",
                                       str(tmp_path / "cache"), "--no-progress"])
    assert_clean_failure(result, tmp_path / "cache", f"--instruction-file {path}: cannot read")
    assert not (tmp_path / "log").exists()


def test_an_instruction_file_without_a_chat_prompt(smollm2: Path, corpus: Path,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("Classify it.")
    result = prepare(corpus, smollm2, tmp_path / "cache", "--instruction-file", str(path))
    assert_clean_failure(result, tmp_path / "cache", "--instruction-file", "prompt is plain",
                         "--prompt chat")


def test_a_chat_prompt_needs_generative_mode(smollm2: Path, corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["prepare", "--data", str(corpus), "--model", str(smollm2),
                                       "--cache-dir", str(tmp_path / "cache"), "--prompt", "chat",
                                       "--no-progress"])
    assert_clean_failure(result, tmp_path / "cache", "--prompt chat", "-g")


# ------------------------------------------------------------------------------------------------
# The smollm2 preset through train, eval and predict
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_smollm2_run_records_the_chat_prompt_and_predict_agrees_with_eval(
    smollm2: Path, sample_root: Path, write_corpus: Callable[..., Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import csv

    from rvl_llm.dataclass_json import to_json
    from rvl_llm.predict.classifier import Classifier
    from rvl_llm.recipe import Recipe
    from rvl_llm.train.config import TrainConfig
    from rvl_llm.train.run import run_train

    if sample_root.name != "sample":  # a session-built world: the preset's folder is elsewhere
        pytest.skip("the smollm2 preset needs the repository's sample/ folder")
    monkeypatch.setenv("RVL_LLM_HOME", str(sample_root.parent))
    labels = ("letter", "form", "email", "invoice")
    texts = {"train": [f"dear sir {i} sincerely yours" for i in range(8)],
             "validation": [f"total amount due {i} payment" for i in range(4)]}
    data = write_corpus({f"{split}_{i:04d}_{i % 4}_aws.json": text
                         for split, items in texts.items() for i, text in enumerate(items)})
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    train = TrainConfig.from_flags(
        data_dir=data, name="chat", model="smollm2", max_len=128, generative=True,
        num_epochs=1, max_steps=1, batch_size=4, labels_file=tmp_path / "labels.txt",
        log_dir=tmp_path / "log", cache_dir=tmp_path / "cache")
    assert train.data.prompt is None  # the preset decides
    run_train(train)
    final = train.run_dir / "final"
    recipe = Recipe.read(final)
    assert recipe.prompt.style == "chat" and recipe.data.model == str(smollm2.resolve())
    manifest = Manifest.load(recipe.data.cache_dir / recipe.cache_key)
    assert manifest.settings["prompt"] == to_json(recipe.prompt)  # the recipe's, keyed

    clf = Classifier.from_checkpoint(final, device="cpu")
    assert clf.rows.template == manifest.template  # predict's prompt is prepare's

    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["eval", "-c", str(final), "-o", str(out), "--split",
                                       "validation", "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    with (folder / "predictions.tsv").open() as f:
        evaluated = {row["doc_id"]: row for row in csv.DictReader(f, delimiter="\t")}
    files = sorted(data.glob("validation_*.json"))
    predicted = clf.predict_files(files)
    assert len(predicted) == len(evaluated) == 4
    for path, prediction in zip(files, predicted, strict=True):
        row = evaluated[path.stem]
        assert prediction.label == row["predicted"]
        assert prediction.probability == pytest.approx(float(row["top1_prob"]), abs=1e-4)

"""``rvl-llm export`` on tiny runs trained here (real Mistral tokenizer, random 2-layer model):
merged and unmerged LoRA, merged QLoRA (dequantised on CPU), a head-only classifier. Each export
is loaded with plain transformers or peft and scores the test split as the checkpoint does; it is
a checkpoint for rvl-llm too; its model card says what it is; bad inputs are one line and write
nothing."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rvl_llm.errors import RvlError  # noqa: E402
from rvl_llm.evaluate.config import EvalConfig  # noqa: E402
from rvl_llm.evaluate.run import run_eval  # noqa: E402
from rvl_llm.export import run as export_run  # noqa: E402
from rvl_llm.export.card import FOLDER, model_card  # noqa: E402
from rvl_llm.export.cli import export_command  # noqa: E402
from rvl_llm.export.config import ExportConfig  # noqa: E402
from rvl_llm.export.run import run_export  # noqa: E402
from rvl_llm.inference.checkpoint import load_checkpoint  # noqa: E402
from rvl_llm.inference.scoring import Predictions, predict  # noqa: E402
from rvl_llm.pipeline.prepare import run_prepare  # noqa: E402
from rvl_llm.recipe import ExportInfo, Recipe  # noqa: E402
from rvl_llm.train.config import TrainConfig  # noqa: E402
from rvl_llm.train.run import run_train  # noqa: E402

LABELS = ("letter", "form", "email", "invoice")
WORDS = ("dear sincerely regards yours", "field date signature box", "from subject sent cc",
         "total amount due payment")
RUNS = {  # name: (generative, trainable)
    "lora": (True, "lora"),
    "qlora": (True, "qlora"),
    "head": (False, "classifier"),
}


def write_labelled_corpus(root: Path, tail: str) -> Path:
    """A small corpus in root/data and root/labels.txt; `tail` ({split} filled in) ends each doc."""
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 8), ("validation", 4), ("test", 6)):
        for i in range(n):
            label = i % len(LABELS)
            words = (WORDS[label] + " " + tail.format(split=split)).split() * (1 + i % 5)
            doc = {"id": f"{split}-{i}", "ocr": " ".join(words)}
            (data / f"{split}_{i:04d}_{label}_aws.json").write_text(json.dumps(doc))
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return data


@pytest.fixture(scope="module")
def runs(models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short run per kind, trained once for the module: name -> its final/ folder."""
    root = tmp_path_factory.mktemp("runs")
    data = write_labelled_corpus(root, "the office report page {split}")
    finals = {}
    for name, (generative, trainable) in RUNS.items():
        cfg = TrainConfig.from_flags(
            data_dir=data, name=name, model=str(models / "tiny-mistral"), max_len=64,
            num_epochs=1, batch_size=2, lr=1e-2, labels_file=root / "labels.txt",
            log_dir=root / "log", cache_dir=root / "cache", generative=generative,
            trainable=trainable, save="never")
        run_train(cfg)
        finals[name] = cfg.run_dir / "final"
    return finals


@pytest.fixture(scope="module")
def lora_merged(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LoRA run exported with --merge (read-only for the tests that share it)."""
    out = tmp_path_factory.mktemp("exports") / "lora-merged"
    export(runs["lora"], out, "--merge")
    return out


def scored(model: Any, recipe: Recipe, pad_token_id: int) -> Predictions:
    manifest = run_prepare(dataclasses.replace(recipe.data, splits=("test",))).manifest
    return predict(model, manifest.dataset("test"), manifest.template, pad_token_id=pad_token_id,
                   progress=False)


def checkpoint_predictions(folder: Path) -> Predictions:
    loaded = load_checkpoint(folder)
    return scored(loaded.model, loaded.recipe, loaded.pad_token_id)


def assert_same(expected: Predictions, got: Predictions, atol: float) -> None:
    """Same probabilities within ``atol``; the same class wherever the top two are apart."""
    assert expected.doc_ids == got.doc_ids
    assert np.allclose(expected.probs, got.probs, atol=atol), np.abs(
        expected.probs - got.probs).max()
    top2 = np.sort(expected.probs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * atol
    assert clear.any()
    assert (expected.predicted[clear] == got.predicted[clear]).all()


def export(checkpoint: Path, out: Path, *flags: str) -> Any:
    result = CliRunner().invoke(export_command, ["-c", str(checkpoint), "-o", str(out), *flags])
    assert result.exit_code == 0, result.output
    return result


def plain_pad_id(folder: Path, recipe: Recipe) -> int:
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token == recipe.pad_token  # the pad token travels with the export
    return tokenizer.pad_token_id


def test_lora_merged_loads_in_plain_transformers(runs: dict[str, Path],
                                                 lora_merged: Path) -> None:
    out = lora_merged
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    expected = checkpoint_predictions(runs["lora"])
    recipe = Recipe.read(runs["lora"])

    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.dtype == torch.float32  # the run was fp32
    assert_same(expected, scored(model, recipe, plain_pad_id(out, recipe)), atol=1e-5)
    # The adapter did change something: the base alone scores differently.
    base = transformers.AutoModelForCausalLM.from_pretrained(recipe.model_location).eval()
    assert not np.allclose(scored(base, recipe, plain_pad_id(out, recipe)).probs,
                           expected.probs, atol=1e-4)

    written = Recipe.read(out)  # a checkpoint for rvl-llm: its own full weights
    assert written.trainable == "full" and written.quantization is None
    assert written.exported == ExportInfo(source=runs["lora"].resolve(), trainable="lora",
                                          merged=True, dtype="fp32")
    assert_same(expected, checkpoint_predictions(out), atol=1e-5)
    # The Python API on the export gives the checkpoint's answers too.
    from rvl_llm import Classifier

    texts = [json.loads(p.read_text())["ocr"] for p in sorted(
        recipe.data.data_dir.glob("test_*"))]
    from_export = Classifier.from_checkpoint(out).predict(texts)
    from_checkpoint = Classifier.from_checkpoint(runs["lora"]).predict(texts)
    for a, b in zip(from_export, from_checkpoint, strict=True):
        assert a.label == b.label and a.probability == pytest.approx(b.probability, abs=1e-5)


def test_the_cards_plain_transformers_recipe_scores_as_rvl_llm(runs: dict[str, Path],
                                                               lora_merged: Path) -> None:
    """The card's snippet, run as written: the same prompt ids and the same classes."""
    out = lora_merged
    card = (out / "README.md").read_text()
    section = card.split("## Use it without rvl-llm", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict[str, Any] = {}
    exec(code.replace(FOLDER, str(out)), namespace)  # our own card's code
    recipe = Recipe.read(runs["lora"])
    manifest = run_prepare(dataclasses.replace(recipe.data, splits=("test",))).manifest
    template = manifest.template
    assert namespace["directive"] == list(template.directive)
    assert namespace["completions"] == [list(c) for c in template.completions]
    assert namespace["budget"] == template.document_budget
    expected = checkpoint_predictions(runs["lora"])
    docs = [json.loads(p.read_text()) for p in recipe.data.data_dir.glob("test_*")]
    by_id = {doc["id"]: doc["ocr"] for doc in docs}
    got = [namespace["classify"](by_id[doc_id]) for doc_id in expected.doc_ids]
    assert got == [LABELS[i] for i in expected.predicted]


def test_lora_adapter_export_names_its_base(runs: dict[str, Path], tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM

    out = tmp_path / "lora-adapter"
    export(runs["lora"], out)
    recipe = Recipe.read(runs["lora"])
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "recipe.json",
        "tokenizer.json", "tokenizer_config.json"]
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == recipe.model_location
    written = Recipe.read(out)
    assert written.trainable == "lora" and not written.exported.merged
    expected = checkpoint_predictions(runs["lora"])

    model = AutoPeftModelForCausalLM.from_pretrained(out).eval()
    assert_same(expected, scored(model, recipe, plain_pad_id(out, recipe)), atol=1e-6)
    assert_same(expected, checkpoint_predictions(out), atol=1e-6)


def test_qlora_merge_dequantises_the_base(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "qlora-merged"
    export(runs["qlora"], out, "--merge")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    recipe = Recipe.read(runs["qlora"])
    expected = checkpoint_predictions(runs["qlora"])  # 4-bit base + adapter

    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.dtype == torch.bfloat16  # the QLoRA compute dtype
    assert_same(expected, scored(model, recipe, plain_pad_id(out, recipe)), atol=3e-3)
    written = Recipe.read(out)
    assert (written.trainable, written.quantization, written.mixed_precision) == (
        "full", None, "bf16")
    assert written.exported.trainable == "qlora" and written.exported.merged
    assert_same(expected, checkpoint_predictions(out), atol=3e-3)


def test_head_only_classifier_becomes_a_full_model(runs: dict[str, Path],
                                                   tmp_path: Path) -> None:
    metrics = runs["head"] / "eval" / "64-max-len" / "head-1234abcd" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"split": "test", "max_len": 64, "n": 6, "decode": "classifier",
                                   "accuracy": 0.8333, "macro_f1": 0.75}))
    out = tmp_path / "head"
    result = export(runs["head"], out, "--merge")  # no adapter: a note, then the full model
    assert "no adapter to merge" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    assert config["label2id"] == {name: i for i, name in enumerate(LABELS)}
    recipe = Recipe.read(runs["head"])
    expected = checkpoint_predictions(runs["head"])

    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert_same(expected, scored(model, recipe, plain_pad_id(out, recipe)), atol=1e-6)
    assert_same(expected, checkpoint_predictions(out), atol=1e-6)
    evals = [run_eval(EvalConfig(checkpoint=folder, out_dir=tmp_path / "evals", progress=False))
             for folder in (runs["head"], out)]
    assert evals[0].record["accuracy"] == evals[1].record["accuracy"]  # eval -c takes it too
    assert evals[0].record["macro_f1"] == evals[1].record["macro_f1"]
    classify = transformers.pipeline("text-classification", model=str(out))
    answer = classify("dear sincerely regards yours", truncation=True, max_length=64)
    assert answer[0]["label"] in LABELS

    card = (out / "README.md").read_text()
    assert "0.8333" in card and "0.7500" in card  # the test metrics eval left
    assert 'pipeline("text-classification"' in card


def test_model_card_says_what_the_model_is(runs: dict[str, Path]) -> None:
    recipe = Recipe.read(runs["lora"])
    metrics = [{"split": "test", "max_len": 64, "n": 6, "accuracy": 0.5, "macro_f1": 0.25}]
    card = model_card(recipe, metrics)
    assert all(f". {name}\n" in card for name in LABELS)
    assert "| max-len | 64 tokens" in card and f"`{recipe.model_location}`" in card
    assert f"`{recipe.data.data_dir}`" in card and '"\\n\\n### Classification:"' in card
    assert "| test | 64 | 6 | 0.5000 | 0.2500 |" in card
    assert f"huggingface-cli upload YOUR-NAME/lora {FOLDER}" in card
    assert "Classifier.from_checkpoint" in card and f"rvl-llm eval -c {FOLDER}" in card
    assert "AutoPeftModelForCausalLM" in card  # an unmerged adapter loads with peft
    assert model_card(recipe, metrics) == card  # a pure function
    qlora = model_card(Recipe.read(runs["qlora"]))
    assert "BitsAndBytesConfig(load_in_4bit=True" in qlora and "No test evaluation" in qlora


def test_a_trained_recipe_has_no_export_info_and_an_export_has_its_own(
        runs: dict[str, Path], tmp_path: Path) -> None:
    trained = json.loads((runs["lora"] / "recipe.json").read_text())
    assert trained.get("exported") is None  # written by training, not by an export
    recipe = Recipe.read(runs["lora"])
    assert recipe.exported is None
    info = ExportInfo(source=tmp_path, trainable="lora", merged=True, dtype="bf16")
    dataclasses.replace(recipe, exported=info).write(tmp_path / "x")
    assert Recipe.read(tmp_path / "x").exported == info


# Bad inputs: one line naming the option or file, exit 1, nothing written or lost.


def refused(*args: str) -> str:
    result = CliRunner().invoke(export_command, list(args))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()  # progress lines may come first
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == lines[-1:], result.output
    return errors[0]


def test_an_existing_folder_is_refused_without_overwrite(runs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    message = refused("-c", str(runs["head"]), "-o", str(out))
    assert f"-o {out}: exists and is not empty" in message
    message = refused("-c", str(runs["head"]), "-o", str(out), "--overwrite")
    assert f"-o {out}: not an earlier export" in message
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging left


def test_overwrite_replaces_an_earlier_export(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "export"
    export(runs["lora"], out)
    export(runs["lora"], out, "--merge", "--overwrite")
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_the_checkpoint_itself_is_refused_as_output(runs: dict[str, Path]) -> None:
    before = sorted(p.name for p in runs["head"].iterdir())
    for target in (runs["head"], runs["head"].parent):
        message = refused("-c", str(runs["head"]), "-o", str(target), "--overwrite")
        assert f"-o {target}: holds the checkpoint being exported" in message
    assert sorted(p.name for p in runs["head"].iterdir()) == before


def test_a_missing_checkpoint_is_named(tmp_path: Path) -> None:
    message = refused("-c", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert message == f"Error: -c {tmp_path / 'nowhere'}: no such checkpoint folder"
    assert list(tmp_path.iterdir()) == []


def test_dtype_on_an_unmerged_adapter_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    message = refused("-c", str(runs["lora"]), "-o", str(tmp_path / "out"), "--dtype", "fp16")
    assert "--dtype fp16: an unmerged adapter" in message and "--merge" in message
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_leaves_nothing(runs: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_run, "write_text_atomic", full_disk)
    out = tmp_path / "deep" / "out"
    message = refused("-c", str(runs["head"]), "-o", str(out))
    assert message == (f"Error: -o {out}: cannot write the export (No space left on device); "
                       "nothing was kept")
    assert list(tmp_path.iterdir()) == []  # neither the folder, its staging nor its parent
    with pytest.raises(RvlError, match="No space left"):  # the Python API says the same
        run_export(ExportConfig(checkpoint=runs["head"], out_dir=out))


# ---- a full disk, the load report, chat prompts -------------------------------------------------

def test_a_full_disk_while_saving_the_weights_is_one_line_and_leaves_nothing(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from safetensors import SafetensorError

    def full_disk(self: Any, *args: Any, **kwargs: Any) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full_disk)
    out = tmp_path / "out"
    message = refused("-c", str(runs["head"]), "-o", str(out))
    assert message == (f"Error: -o {out}: cannot write the export (No space left on device); "
                       "nothing was kept")
    assert list(tmp_path.iterdir()) == []


def test_exporting_a_classifier_shows_no_false_load_report(
    runs: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    """Building the classifier on the causal LM reports its new head MISSING; the checkpoint's
    head replaces it, so the report is false for this load and not shown."""
    export(runs["head"], tmp_path / "out")
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.err + captured.out
    assert "newly initialized" not in captured.err + captured.out


def test_the_load_report_filter_keeps_any_other_report() -> None:
    import logging

    def record(rows: str) -> logging.LogRecord:
        text = ("\x1b[1mMistralForSequenceClassification LOAD REPORT\x1b[0m from: base\n"
                "Key | Status | \n----+--------+-\n" + rows + "\n\nNotes:\n- MISSING:\tnew")
        return logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0, text,
                                 None, None)

    shows = export_run._shows_report
    assert not shows(record("lm_head.weight | UNEXPECTED | \n"
                            "score.weight | \x1b[31mMISSING\x1b[0m | "))
    assert shows(record("score.weight | MISSING | \n"
                        "model.layers.0.mlp.up_proj.weight | MISSING | "))
    assert shows(record("score.weight | MISMATCH | "))


@pytest.fixture(scope="module")
def chat_run(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with SmolLM2's real tokenizer and chat template, trained a few steps
    with --prompt chat: its final/ folder."""
    smollm2 = sample_root / "models" / "smollm2-instruct"
    if not (smollm2 / "chat_template.jinja").is_file():
        pytest.skip(f"no SmolLM2 sample model at {smollm2}; build it with `make sample`")
    root = tmp_path_factory.mktemp("chat")
    model = root / "tiny-chat"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (model / name).write_bytes((smollm2 / name).read_bytes())
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(model)
    data = write_labelled_corpus(root, "page {split} <|im_end|>")
    cfg = TrainConfig.from_flags(
        data_dir=data, name="chat", model=str(model), max_len=96, generative=True,
        prompt="chat", num_epochs=1, max_steps=2, batch_size=4, lr=1e-2, trainable="full",
        labels_file=root / "labels.txt", log_dir=root / "log", cache_dir=root / "cache",
        save="never")
    run_train(cfg)
    return cfg.run_dir / "final"


def test_the_card_of_a_chat_run_renders_the_chat_prompt_and_predicts_as_rvl_llm(
    chat_run: Path, tmp_path: Path,
) -> None:
    """The card's own snippet, executed: the same prompt segments as prepare and the same
    labels as `rvl-llm predict` on the test documents."""
    from rvl_llm.cli import main

    recipe = Recipe.read(chat_run)
    assert recipe.data.prompt == "chat"
    out = tmp_path / "out"
    export(chat_run, out)
    card = (out / "README.md").read_text()
    assert "chat template" in card
    code = re.search(r"```python\n(.*?)```", card.split("## Use it without rvl-llm", 1)[1],
                     re.S).group(1)
    namespace: dict[str, Any] = {}
    exec(code.replace(FOLDER, str(out)), namespace)  # our own card's code
    template = run_prepare(dataclasses.replace(recipe.data, splits=("test",))).manifest.template
    assert namespace["prefix"] == list(template.prefix)
    assert namespace["directive"] == list(template.directive)
    assert namespace["completions"] == [list(c) for c in template.completions]
    assert namespace["budget"] == template.document_budget

    files = sorted(recipe.data.data_dir.glob("test_*.json"))
    result = CliRunner().invoke(main, ["predict", "-c", str(out), "--no-progress",
                                       *map(str, files)])
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line)["label"] for line in result.output.splitlines()
                 if line.startswith("{")]
    by_card = [namespace["classify"](json.loads(f.read_text())["ocr"]) for f in files]
    assert by_card == predicted and len(predicted) == len(files)

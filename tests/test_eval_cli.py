"""``rvl-llm eval`` and ``report`` through click's CliRunner, on a checkpoint built in tmp_path:
a word-level tokenizer, a 2-layer random Llama and the recipe.json `rvl-llm train` writes."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import prompt_for  # noqa: E402

from rvl_llm.evaluate.cli import eval_command, report_command  # noqa: E402
from rvl_llm.pipeline.config import PrepareConfig  # noqa: E402
from rvl_llm.recipe import Recipe, TrainSettings  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
LABELS = ("letter", "form", "scientific report", "scientific publication")
WORDS = ["alpha", "beta", "gamma", "delta", "report", "form", "letter", "memo", "total", "page"]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def build_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for word in [*WORDS, "scientific", "publication", "###", "Classification", ":", "a", "probe",
                 "text"]:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>")
    tokenizer.save_pretrained(folder)


def write_corpus(folder: Path, per_split: int = 6, label_offset: int = 0) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        for i in range(per_split):
            label = i % len(LABELS) + label_offset
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 40))))
            doc = {"id": f"{split}_{i}", "ocr": text}
            (folder / f"{split}_{i:04d}_{label}_aws.json").write_text(json.dumps(doc))


def recipe(tmp_path: Path, model_dir: Path, mode: str, trainable: str = "full") -> Recipe:
    """The recipe `rvl-llm train --trainable TRAINABLE` writes for this tiny run."""
    data = PrepareConfig(
        data_dir=tmp_path / "data", model=str(model_dir), max_len=48,
        generative=mode == "generative", labels=LABELS, cache_dir=tmp_path / "cache",
        splits=("train", "validation"))
    return Recipe(
        run_name="tiny-run", model=str(model_dir), model_location=str(model_dir), data=data,
        prompt=prompt_for(data),
        settings=TrainSettings(trainable=trainable), pad_token="<pad>",
        lora_targets="all-linear", quantization=None, mixed_precision=None, cache_key="none",
        versions={}, command="rvl-llm train ...")


def build_base(tmp_path: Path, mode: str = "generative"):
    """models/tiny: the word-level tokenizer and a random 2-layer Llama; returns the model."""
    torch.manual_seed(0)
    base = tmp_path / "models" / "tiny"
    build_tokenizer(base)
    vocab = len(transformers.AutoTokenizer.from_pretrained(base))
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, num_labels=len(LABELS))
    auto = (transformers.LlamaForCausalLM if mode == "generative"
            else transformers.LlamaForSequenceClassification)
    model = auto(config)
    model.save_pretrained(base)
    return model


def build_run(tmp_path: Path, mode: str = "generative") -> Path:
    """models/tiny (the base) and log/tiny-run/{recipe.json, final/} as `rvl-llm train
    --trainable full` leaves them."""
    build_base(tmp_path, mode)
    base = tmp_path / "models" / "tiny"
    final = tmp_path / "log" / "tiny-run" / "final"
    shutil.copytree(base, final)
    written = recipe(tmp_path, base, mode)
    written.write(final)
    written.write(final.parent)
    write_corpus(tmp_path / "data")
    # As training leaves it: the recipe's cache folder holds the cache (here a key's lock file),
    # so eval uses it instead of falling back to the default folder.
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f".{'0' * 20}.lock").touch()
    return final


def edit_recipe(folder: Path, edit) -> None:
    """Change recipe.json in ``folder`` by hand: ``edit`` gets the JSON object and changes it."""
    path = folder / "recipe.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def output_folder(result) -> Path:
    """The eval's folder: the last line eval prints."""
    return Path(result.output.strip().splitlines()[-1])


def invoke(*args: str):
    return CliRunner().invoke(eval_command, [*args, "--no-progress"], catch_exceptions=False)


@pytest.mark.parametrize("mode", ["generative", "classifier"])
def test_eval_writes_outputs_and_report(tmp_path: Path, mode: str) -> None:
    final = build_run(tmp_path, mode)
    out = tmp_path / "results"
    result = invoke("-c", str(final), "-o", str(out), "-b", "4")
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    assert folder.parent == out / "48-max-len" and folder.name.startswith("tiny-run-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion_matrix.csv", "confusion_matrix.png", "metrics.json", "predictions.tsv",
        "reliability_diagram.png"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["split"] == "test" and metrics["max_len"] == 48
    assert metrics["decode"] == ("score" if mode == "generative" else "classifier")
    assert metrics["checkpoint"] == str(final.resolve())
    assert metrics["config"]["batch_size"] == 4 and metrics["labels"] == list(LABELS)
    assert "accuracy" in result.output and str(folder) in result.output
    rows = (folder / "predictions.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == [f"test_{i}" for i in range(6)]

    # --max-len: a second eval of the same run lands beside the first; report gathers both.
    shorter = invoke("-c", str(final), "-o", str(out), "--max-len", "24")
    assert shorter.exit_code == 0, shorter.output
    assert output_folder(shorter) == out / "24-max-len" / folder.name
    report = CliRunner().invoke(report_command, [str(out)], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    name = folder.name
    assert f"| {name} | 24 |" in report.output and f"| {name} | 48 |" in report.output
    assert (out / "report.md").is_file() and (out / "accuracy_vs_max_len.png").is_file()


def test_generate_decode_and_run_folder_default(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    # A run folder stands for its final/; outputs default to CHECKPOINT/eval (as typed).
    result = invoke("-c", str(final.parent), "--decode", "generate")
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    assert folder.parent == final.parent / "eval" / "48-max-len"
    assert re.fullmatch(r"tiny-run-generate-[0-9a-f]{8}", folder.name), folder.name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["decode"] == "generate" and metrics["n"] == 6
    assert metrics["checkpoint"] == str(final.resolve())
    # A random model rarely says a class name: those count as invalid, and as wrong.
    assert 0 <= metrics["invalid"] <= 6


def fails(result, *needles: str) -> None:
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    for needle in needles:
        assert needle in message, message


def test_checkpoint_without_recipe_names_the_option(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    fails(invoke("-c", str(tmp_path / "weights")), f"-c {tmp_path / 'weights'}: no recipe.json",
          "`rvl-llm train`")


def test_adapter_that_does_not_match_the_model(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    edit_recipe(final, lambda data: data["settings"].update(trainable="lora"))
    adapter = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
               "target_modules": ["no_such_module"], "base_model_name_or_path": str(final)}
    (final / "adapter_config.json").write_text(json.dumps(adapter))
    fails(invoke("-c", str(final), "-o", str(tmp_path / "out")), str(final),
          "the adapter does not match the model")


def test_data_without_the_split(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    data = tmp_path / "only-train"
    write_corpus(data)
    for path in data.glob("test_*"):
        path.unlink()
    fails(invoke("-c", str(final), "-d", str(data), "-o", str(tmp_path / "out")),
          str(data), "no files for split 'test'")


def test_labels_outside_the_recipe(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    data = tmp_path / "more-labels"
    write_corpus(data, label_offset=2)  # labels 2..5: 4 and 5 are not in the 4-class recipe
    fails(invoke("-c", str(final), "-d", str(data), "-o", str(tmp_path / "out")),
          "outside the label set")


def test_output_folder_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = build_run(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # Checked before the data is prepared or the model loaded.
    monkeypatch.setattr("rvl_llm.pipeline.prepare.run_prepare", _never)
    monkeypatch.setattr("rvl_llm.inference.checkpoint.load_checkpoint", _never)
    fails(invoke("-c", str(final), "-o", str(blocker / "sub")),
          f"-o {blocker / 'sub'}: cannot write")


def _never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("must fail before preparing data")


def test_bad_options(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    fails(invoke("-c", str(final), "--max-len", "0"), "--max-len 0: must be a positive number")
    fails(invoke("-c", str(final), "-b", "0"), "--batch-size 0: must be")
    fails(invoke("-c", str(tmp_path / "missing")), "-c", "no such checkpoint folder")
    shutil.rmtree(tmp_path / "data")
    fails(invoke("-c", str(final)), f"--data {tmp_path / 'data'}: no such folder")

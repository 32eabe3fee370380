"""``rvl-llm eval`` without ``-c``: a zero-shot baseline of the untrained model, with the same
prompt, the same exact label scoring and the same outputs as a trained eval, and ``report``
beside the trained runs. Bad inputs are refused with one line, before anything is written."""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_eval_cli import (  # noqa: E402
    LABELS,
    build_base,
    build_run,
    build_tokenizer,
    fails,
    invoke,
    output_folder,
    write_corpus,
)
from test_eval_faults import snapshot, unchanged  # noqa: E402

from rvl_llm.errors import RvlError  # noqa: E402
from rvl_llm.evaluate.cli import eval_command, report_command  # noqa: E402
from rvl_llm.evaluate.config import ZERO_SHOT_FIELDS, ZERO_SHOT_OUT_DIR, EvalConfig  # noqa: E402
from rvl_llm.evaluate.report import collect  # noqa: E402
from rvl_llm.options import CLI_KEY, field_default  # noqa: E402
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, PrepareConfig  # noqa: E402

HASHED = r"[0-9a-f]{8}"


def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


def zero_shot(tmp_path: Path, model: Path | str, *args: str):
    """A zero-shot eval of ``model`` on tmp_path/data with the 4-label set, cache in tmp_path."""
    return invoke("-m", str(model), "-g", "-d", str(tmp_path / "data"),
                  "--labels", str(labels_file(tmp_path)), "--cache-dir", str(tmp_path / "cache"),
                  *args)


def test_zero_shot_equals_a_trained_eval_of_the_same_weights(tmp_path: Path) -> None:
    """build_run copies the base model unchanged as a full checkpoint: scoring the base zero-shot
    must give the trained eval's predictions, scores and metrics exactly."""
    final = build_run(tmp_path)
    out = tmp_path / "results"
    trained = invoke("-c", str(final), "-o", str(out))
    assert trained.exit_code == 0, trained.output
    base = tmp_path / "models" / "tiny"
    result = zero_shot(tmp_path, base, "--max-len", "48", "-o", str(out))
    assert result.exit_code == 0, result.output
    folder, trained_folder = output_folder(result), output_folder(trained)
    assert folder.parent == out / "48-max-len"
    assert re.fullmatch(rf"tiny-zero-shot-{HASHED}", folder.name), folder.name
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion_matrix.csv", "confusion_matrix.png", "metrics.json", "predictions.tsv",
        "reliability_diagram.png"]
    summary = re.search(rf"eval {folder.name} .*", result.output)  # the summary's first line
    assert summary and f"zero-shot {base}" in summary.group(), result.output
    assert "(cache hit)" in result.output  # the same prompt: the trained eval's cache entry

    metrics = json.loads((folder / "metrics.json").read_text())
    before = json.loads((trained_folder / "metrics.json").read_text())
    assert metrics["zero_shot"] is True and before["zero_shot"] is False
    assert metrics["model"] == str(base) and metrics["model_location"] == str(base.resolve())
    assert metrics["mode"] == "generative" and metrics["decode"] == "score"
    assert "recipe" not in metrics and "checkpoint" not in metrics
    same = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "cache_key",
            "max_len", "data_dir", "split", "truncated_share")
    assert {k: metrics[k] for k in same} == {k: before[k] for k in same}
    assert (folder / "predictions.tsv").read_text() == (
        trained_folder / "predictions.tsv").read_text()
    assert metrics["config"]["zero_shot"]["model"] == str(base)

    report = CliRunner().invoke(report_command, [str(out)], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    assert f"| {folder.name} | 48 |" in report.output
    assert report.output.count("| zero-shot |") == 1 and report.output.count("| full |") == 1
    kinds = {row.run: row.kind for row in collect(out)}
    assert kinds == {folder.name: "zero-shot", trained_folder.name: "full"}
    assert "kind" in (out / "report.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("name", ["tiny-llama3", "tiny-mistral"])
def test_zero_shot_of_a_sample_model(tmp_path: Path, models: Path, fast_tokenizer_loads: None,
                                     monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The real tokenizers; without -o the outputs go to results/, at prepare's max-len."""
    write_corpus(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    result = zero_shot(tmp_path, models / name, "--split", "validation", "-b", "3")
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    max_len = field_default(next(f for f in fields(PrepareConfig) if f.name == "max_len"))
    assert folder.parent == ZERO_SHOT_OUT_DIR / f"{max_len}-max-len"
    assert re.fullmatch(rf"{name}-zero-shot-validation-{HASHED}", folder.name), folder.name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["zero_shot"] is True and metrics["n"] == 6
    assert metrics["split"] == "validation" and metrics["max_len"] == max_len
    rows = (folder / "predictions.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == [f"validation_{i}" for i in range(6)]


def test_zero_shot_generate_decode(tmp_path: Path) -> None:
    build_base(tmp_path)
    write_corpus(tmp_path / "data")
    result = zero_shot(tmp_path, tmp_path / "models" / "tiny", "--decode", "generate",
                       "--max-len", "48", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    assert re.fullmatch(rf"tiny-zero-shot-generate-{HASHED}", folder.name), folder.name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["decode"] == "generate" and 0 <= metrics["invalid"] <= 6


def test_another_prompt_is_another_eval(tmp_path: Path) -> None:
    """Two zero-shot evals that differ only by their prompt never share a folder."""
    build_base(tmp_path)
    write_corpus(tmp_path / "data")
    out = ("-o", str(tmp_path / "out"), "--max-len", "48")
    base = tmp_path / "models" / "tiny"
    first = output_folder(zero_shot(tmp_path, base, *out))
    second = output_folder(zero_shot(tmp_path, base, *out, "--response-template", "\n\nclass:"))
    assert first != second and first.is_dir() and second.is_dir()


def test_classifier_without_a_trained_head_is_refused(tmp_path: Path) -> None:
    build_base(tmp_path)
    write_corpus(tmp_path / "data")
    before = snapshot(tmp_path)
    fails(invoke("-m", str(tmp_path / "models" / "tiny"), "-d", str(tmp_path / "data"),
                 "-o", str(tmp_path / "out")),
          "-m/--model without -g/--generative", "untrained", "pass -g", "-c")
    unchanged(tmp_path, before)


@pytest.mark.parametrize(("args", "flag"), [
    (["-m", "tiny-llama3"], "-m/--model"),
    (["-g"], "-g/--generative"),
    (["--response-template", "Class:"], "--response-template"),
    (["--labels", "labels.txt"], "--labels"),
    (["--prefix-test", "eval_"], "--prefix-test"),
    (["--suffix", "_ocr"], "--suffix"),
])
def test_zero_shot_settings_with_a_checkpoint_are_refused(tmp_path: Path, args: list[str],
                                                          flag: str) -> None:
    final = build_run(tmp_path)
    before = snapshot(tmp_path)
    fails(invoke("-c", str(final), "-o", str(tmp_path / "out"), *args),
          f"{flag}: not with -c/--checkpoint", "recipe")
    unchanged(tmp_path, before)


def test_model_and_data_are_needed_without_a_checkpoint(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    build_base(tmp_path)
    write_corpus(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    fails(invoke("-d", str(tmp_path / "data")), "-m/--model: needed without -c/--checkpoint")
    fails(invoke("-m", str(tmp_path / "models" / "tiny"), "-g"),
          "-d/--data: needed without -c/--checkpoint")
    unchanged(tmp_path, before)


@pytest.mark.parametrize("model", ["mistral", "llama3", "nobody/no-such-model"])
def test_real_models_need_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  model: str) -> None:
    write_corpus(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rvl_llm.pipeline.prepare.run_prepare", _never)
    before = snapshot(tmp_path)
    fails(invoke("-m", model, "-g", "-d", str(tmp_path / "data")),
          f"--model {model}: cannot reach", "Hugging Face hub", "local preset")
    unchanged(tmp_path, before)


def test_bad_model_folder_labels_and_out_dir(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    build_base(tmp_path)
    write_corpus(tmp_path / "data")
    tokenizer_only = tmp_path / "tokenizer-only"
    build_tokenizer(tokenizer_only)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    # Each is refused before the data is prepared or the model loaded.
    monkeypatch.setattr("rvl_llm.pipeline.prepare.run_prepare", _never)
    monkeypatch.setattr("rvl_llm.inference.base_model.load_base_model", _never)
    before = snapshot(tmp_path)
    base = tmp_path / "models" / "tiny"
    fails(invoke("-m", str(tokenizer_only), "-g", "-d", "data"),
          f"--model {tokenizer_only}", "no config.json")
    fails(invoke("-m", str(base), "-g", "-d", "data", "--labels", "missing.txt"),
          "--labels missing.txt: cannot read")
    fails(invoke("-m", str(base), "-g", "-d", "data", "--response-template", " "),
          "--response-template: must not be empty")
    fails(invoke("-m", str(base), "-g", "-d", "data", "--max-len", "0"), "--max-len 0")
    fails(invoke("-m", str(base), "-g", "-d", "data", "-o", str(blocker / "sub")),
          f"-o {blocker / 'sub'}: cannot write")
    unchanged(tmp_path, before)


def test_missing_data_folder_leaves_nothing(tmp_path: Path) -> None:
    build_base(tmp_path)
    before = snapshot(tmp_path)
    out = tmp_path / "new" / "out"
    fails(invoke("-m", str(tmp_path / "models" / "tiny"), "-g", "-d", str(tmp_path / "nowhere"),
                 "-o", str(out), "--cache-dir", str(tmp_path / "cache")),
          f"--data {tmp_path / 'nowhere'}: no such folder")
    assert not (tmp_path / "new").exists()
    unchanged(tmp_path, before)


def _never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("must fail before preparing data or loading the model")


def test_zero_shot_option_defaults_are_prepares() -> None:
    """The prompt options of eval are PrepareConfig's own, defaults included (written once);
    the model is not required (a checkpoint names it)."""
    params = {p.name: p for p in eval_command.params}
    for f in fields(PrepareConfig):
        if f.name not in ZERO_SHOT_FIELDS:
            continue
        default = field_default(f)
        option = params[f.name]
        assert not option.required, f.name
        if "default" in f.metadata[CLI_KEY][1]:  # the option's own (a repeatable one's ())
            default = f.metadata[CLI_KEY][1]["default"]
        elif isinstance(default, tuple):  # typed as "a,b" (rvl_llm.options)
            default = ",".join(default)
        assert option.default == (None if default is MISSING else default), f.name


def test_flags_build_one_config(tmp_path: Path) -> None:
    cfg = EvalConfig.from_flags(model="m", generative=True, data_dir=tmp_path, split="validation",
                                max_len=None, cache_dir=None, progress=False)
    assert cfg.checkpoint is None and cfg.resolved_out_dir == ZERO_SHOT_OUT_DIR
    assert cfg.zero_shot == PrepareConfig(data_dir=tmp_path, model="m", generative=True,
                                          splits=("validation",), progress=False)
    assert cfg.zero_shot.cache_dir == DEFAULT_CACHE_DIR
    trained = EvalConfig.from_flags(checkpoint=tmp_path, model=None, generative=False)
    assert trained.zero_shot is None and trained.resolved_out_dir == tmp_path / "eval"
    with pytest.raises(RvlError, match="-c/--checkpoint: needed"):
        EvalConfig()
    with pytest.raises(TypeError, match="max_length"):
        EvalConfig.from_flags(checkpoint=tmp_path, max_length=3)


def test_report_reads_records_from_before_zero_shot(tmp_path: Path) -> None:
    """Records written before the zero_shot mark are trained evals; the oldest name no mode."""
    common = {"max_len": 64, "accuracy": 0.5, "macro_f1": 0.25, "n": 4}
    records = {
        "old-lora": {**common, "recipe": {"trainable": "lora"}},
        "oldest": common,
        "base-zero-shot": {**common, "zero_shot": True, "model": "tiny"},
    }
    for name, record in records.items():
        folder = tmp_path / "64-max-len" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"name": name, **record}))
    assert {row.run: row.kind for row in collect(tmp_path)} == {
        "old-lora": "lora", "oldest": "trained", "base-zero-shot": "zero-shot"}

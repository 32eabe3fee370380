"""``rvl-llm eval`` on bad inputs and repeated runs: each fault is refused with one line naming the
file or option, exit status 1, and nothing lost or half-written; distinct evals never share a
folder. Checkpoints are built in tmp_path by the builders of test_eval_cli."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_eval_cli import (  # noqa: E402
    build_base,
    build_run,
    build_tokenizer,
    edit_recipe,
    output_folder,
    recipe,
    write_corpus,
)

from rvl_llm.cli import main  # noqa: E402
from rvl_llm.pipeline.manifest import SPLITS  # noqa: E402
from rvl_llm.recipe import Recipe  # noqa: E402

MAX_LEN_DIR = "48-max-len"  # the recipe's max-len


def evaluate(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", *args, "--no-progress"], catch_exceptions=False)


def succeeds(result: Result) -> tuple[Path, dict[str, Any]]:
    """The eval's folder and its metrics.json."""
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    return folder, json.loads((folder / "metrics.json").read_text())


def refused(result: Result, *needles: str) -> str:
    """Exit status 1 and a last line ``Error: ...`` holding every needle; no traceback."""
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in message, message
    return message


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` but the prepared-shard cache: path -> content hash."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "cache":
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
    return files


def unchanged(root: Path, before: dict[str, str]) -> None:
    """Nothing written, lost or changed under ``root`` (the cache aside)."""
    after = snapshot(root)
    assert sorted(set(after) - set(before)) == [], "written"
    assert sorted(set(before) - set(after)) == [], "lost"
    assert after == before, "changed"


# 2. Distinct evals into one -o get distinct folders; an identical rerun replaces its own.


def test_distinct_evals_share_no_folder_and_a_rerun_replaces_its_own(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    other = tmp_path / "other-data"
    write_corpus(other, per_split=4)  # the same file layout, fewer documents
    out = tmp_path / "out"
    base = ("-c", str(final), "-o", str(out))
    runs = {
        "plain": evaluate(*base),
        "other data": evaluate(*base, "-d", str(other)),
        "validation": evaluate(*base, "--split", "validation"),
        "generate": evaluate(*base, "--decode", "generate"),
    }
    found = {what: succeeds(result) for what, result in runs.items()}
    folders = {what: folder for what, (folder, _) in found.items()}
    assert len(set(folders.values())) == 4, folders
    assert all(f.parent == out / MAX_LEN_DIR for f in folders.values())
    assert sorted(p.name for p in (out / MAX_LEN_DIR).iterdir()) == sorted(
        f.name for f in folders.values())
    metrics = {what: m for what, (_, m) in found.items()}
    # Each metrics.json survived the later evals and describes its own eval.
    for what, folder in folders.items():
        assert json.loads((folder / "metrics.json").read_text()) == metrics[what]
    assert metrics["plain"]["data_dir"] == str((tmp_path / "data").resolve())
    assert metrics["other data"]["data_dir"] == str(other.resolve())
    assert (metrics["plain"]["n"], metrics["other data"]["n"]) == (6, 4)
    assert metrics["validation"]["split"] == "validation"
    assert (metrics["plain"]["decode"], metrics["generate"]["decode"]) == ("score", "generate")

    # The same eval again (spelled through the run folder): its own folder, rewritten in place.
    (folders["plain"] / "metrics.json").write_text("{}")
    listing = sorted(p.name for p in (out / MAX_LEN_DIR).iterdir())
    folder, again = succeeds(evaluate("-c", str(final.parent), "-o", str(out)))
    assert folder == folders["plain"]
    assert again["n"] == 6 and again["accuracy"] == metrics["plain"]["accuracy"]
    assert sorted(p.name for p in (out / MAX_LEN_DIR).iterdir()) == listing
    assert sorted(p.name for p in folder.iterdir()) == [
        "confusion_matrix.csv", "confusion_matrix.png", "metrics.json", "predictions.tsv",
        "reliability_diagram.png"]


# 3. NaN weights: no metric is made from NaN scores.


def fill_with_nan(weights: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    save_file({k: torch.full_like(v, float("nan")) for k, v in tensors.items()}, str(weights),
              metadata={"format": "pt"})


@pytest.mark.parametrize(("mode", "decode"), [
    ("generative", "score"),
    ("classifier", "score"),
    ("generative", "generate"),
])
def test_nan_weights_are_refused(tmp_path: Path, mode: str, decode: str) -> None:
    final = build_run(tmp_path, mode)
    fill_with_nan(final / "model.safetensors")
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    refused(evaluate("-c", str(final), "-o", str(out), "--decode", decode), f"-c {final}",
            "not finite")
    assert not out.exists()
    unchanged(tmp_path, before)


# 7. A recipe grants no permission to run remote code; only the eval's own flag does.


@pytest.mark.parametrize("flag", [False, True])
def test_recipe_cannot_switch_on_remote_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             flag: bool) -> None:
    final = build_run(tmp_path)
    for folder in (final, final.parent):
        edit_recipe(folder, lambda data: data["data"].update(trust_remote_code=True))
    calls: list[tuple[str, object]] = []
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(auto, "from_pretrained", _recording(auto, calls))
    args = ["-c", str(final), "-o", str(tmp_path / "out")]
    succeeds(evaluate(*args, *(["--trust-remote-code"] if flag else [])))
    # Prepare reads the tokenizer from its files (no transformers, no code to run); the
    # checkpoint loads tokenizer and model with the eval's own flag, never the recipe's.
    assert calls == [("AutoTokenizer", flag), ("AutoModelForCausalLM", flag)], calls


def _recording(auto: Any, calls: list[tuple[str, object]]) -> Callable[..., Any]:
    real = auto.from_pretrained

    def from_pretrained(*args: Any, **kwargs: Any) -> Any:
        calls.append((auto.__name__, kwargs.get("trust_remote_code", "not passed")))
        return real(*args, **kwargs)

    return from_pretrained


# 8. A recipe's run name cannot put the outputs outside -o.


@pytest.mark.parametrize("name", ["../../x", "{tmp}/abs/x", "..", "x/../../y"])
def test_run_name_cannot_escape_the_out_dir(tmp_path: Path, name: str) -> None:
    final = build_run(tmp_path)
    name = name.format(tmp=tmp_path)  # an absolute name inside tmp_path, so a stray is seen
    edit_recipe(final, lambda data: data.update(run_name=name))
    before = snapshot(tmp_path)
    out = tmp_path / "deep" / "down" / "out"  # ../../x from OUT/48-max-len/ stays in tmp_path
    result = evaluate("-c", str(final), "-o", str(out))
    if result.exit_code == 0:
        assert output_folder(result).resolve().is_relative_to(out.resolve())
    else:
        refused(result, str(final / "recipe.json"), "run name")
    stray = [p for p in set(snapshot(tmp_path)) - set(before)
             if not (tmp_path / p).resolve().is_relative_to(out.resolve())
             and (tmp_path / p) not in out.parents]
    assert stray == []


# 15. Damaged weights are named, not met deep inside from_pretrained.


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_model_weights(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    truncate(final / "model.safetensors")
    before = snapshot(tmp_path)
    refused(evaluate("-c", str(final), "-o", str(tmp_path / "out")),
            str(final / "model.safetensors"), "damaged weights")
    unchanged(tmp_path, before)


def build_lora_run(tmp_path: Path) -> Path:
    """log/tiny-run/final/ as `rvl-llm train --trainable lora` leaves it: the tokenizer, the
    adapter and a recipe naming the base model in models/tiny."""
    peft = pytest.importorskip("peft")
    model = build_base(tmp_path)
    base = tmp_path / "models" / "tiny"
    final = tmp_path / "log" / "tiny-run" / "final"
    build_tokenizer(final)
    lora = peft.LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False)
    peft.get_peft_model(model, lora).save_pretrained(final)
    written = recipe(tmp_path, base, "generative", trainable="lora")
    written.write(final)
    written.write(final.parent)
    write_corpus(tmp_path / "data")
    return final


def test_truncated_adapter_weights(tmp_path: Path) -> None:
    final = build_lora_run(tmp_path)
    assert not (final / "model.safetensors").exists()
    # The intact adapter evaluates: the checkpoint is sound but for the damage done below.
    succeeds(evaluate("-c", str(final), "-o", str(tmp_path / "good")))
    truncate(final / "adapter_model.safetensors")
    before = snapshot(tmp_path)
    refused(evaluate("-c", str(final), "-o", str(tmp_path / "out")),
            str(final / "adapter_model.safetensors"), "damaged weights")
    unchanged(tmp_path, before)


# 20. Unfinished runs and recipes that do not fit are named before anything loads.


def test_run_without_final(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    shutil.copytree(final, final.parent / "checkpoint-3")
    final.rename(final.parent / "checkpoint-6")
    before = snapshot(tmp_path)
    message = refused(evaluate("-c", str(final.parent), "-o", str(tmp_path / "out")),
                      f"-c {final.parent}", "no final/", "checkpoint-6")
    assert "tokenizer" not in message.lower()
    unchanged(tmp_path, before)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda data: data.pop("pad_token"), "pad_token"),
    (lambda data: data.update(recipe_version=1), "version 1"),
], ids=["missing-pad-token", "version-1"])
def test_recipe_that_does_not_fit(tmp_path: Path, edit: Callable[[dict], object],
                                  needle: str) -> None:
    final = build_run(tmp_path)
    edit_recipe(final, edit)
    before = snapshot(tmp_path)
    refused(evaluate("-c", str(final), "-o", str(tmp_path / "out")),
            str(final / "recipe.json"), needle)
    unchanged(tmp_path, before)


# 21. A failed eval leaves no folder it created; the evals already in OUT stay.


def no_test_files(tmp_path: Path) -> Path:
    data = tmp_path / "no-test"
    write_corpus(data)
    for path in data.glob("test_*"):
        path.unlink()
    return data


def test_failed_eval_creates_no_out_dir(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    data = no_test_files(tmp_path)
    before = snapshot(tmp_path)
    out = tmp_path / "new" / "out"
    refused(evaluate("-c", str(final), "-d", str(data), "-o", str(out)), f"--data {data}",
            "no files for split 'test'")
    assert not (tmp_path / "new").exists()
    unchanged(tmp_path, before)


def test_failed_eval_keeps_the_evals_already_there(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    out = tmp_path / "out"
    kept, _ = succeeds(evaluate("-c", str(final), "-o", str(out)))
    before = snapshot(tmp_path)
    data = no_test_files(tmp_path)
    refused(evaluate("-c", str(final), "-d", str(data), "-o", str(out)), "no files for split")
    fill_with_nan(final / "model.safetensors")
    nan_before = snapshot(tmp_path)
    refused(evaluate("-c", str(final), "-o", str(out), "--split", "validation"), "not finite")
    unchanged(tmp_path, nan_before)
    assert sorted(p.name for p in (out / MAX_LEN_DIR).iterdir()) == [kept.name]
    assert {k: v for k, v in snapshot(tmp_path).items() if k.startswith("out")} == {
        k: v for k, v in before.items() if k.startswith("out")}


def test_eval_failing_while_writing_leaves_no_half_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = build_run(tmp_path)
    out = tmp_path / "out"

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rvl_llm.evaluate.outputs.write_confusion_png", disk_full)
    refused(evaluate("-c", str(final), "-o", str(out)), f"-o {out}", "No space left on device")
    # predictions.tsv and the csv were written before the failure; none may stay behind.
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


# 6. The eval's cache key is training's at the same max-len, whatever -d's spelling.


def test_eval_joins_the_training_cache_entry(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rvl_llm.pipeline.prepare import run_prepare

    final = build_run(tmp_path)
    trained = Recipe.read(final)
    assert trained.data.splits == ("train", "validation")
    key = run_prepare(trained.data).manifest.key  # what training read
    for folder in (final, final.parent):
        edit_recipe(folder, lambda data: data.update(cache_key=key))
    everything = run_prepare(replace(trained.data, splits=SPLITS))
    assert everything.manifest.key == key and everything.built == ("test",)

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    spellings = ("data", str(tmp_path / "data"), "./models/../data")
    folders = []
    for spelling in spellings:
        result = evaluate("-c", str(final), "-o", str(out), "-d", spelling)
        folder, metrics = succeeds(result)
        assert metrics["cache_key"] == metrics["train_cache_key"] == key
        assert metrics["data_dir"] == str((tmp_path / "data").resolve())
        assert "(cache hit)" in result.output and "built now" not in result.output
        folders.append(folder)
    assert folders == [folders[0]] * len(spellings), folders
    assert len(list((out / MAX_LEN_DIR).iterdir())) == 1

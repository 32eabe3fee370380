"""Faults of issue 14 in eval and report: a recipe's cache folder deciding where eval writes,
skipped documents left unsaid, a wrongly typed manifest, and impossible metrics in a report.
Checkpoints are built in tmp_path by the builders of test_eval_cli."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_eval_cli import build_run, edit_recipe, output_folder  # noqa: E402
from test_eval_outputs import LABELS, record_for, scored  # noqa: E402

from rvl_llm.cli import main  # noqa: E402
from rvl_llm.evaluate.outputs import run_folder, write_all  # noqa: E402


def evaluate(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", *args, "--no-progress"], catch_exceptions=False)


def metrics_of(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads((output_folder(result) / "metrics.json").read_text())


# ------------------------------------------------------------------------------------------------
# 6. A recipe's cache folder is a default only when it holds this project's cache
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["foreign", "missing"])
def test_a_recipe_cache_folder_without_a_cache_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    final = build_run(tmp_path)
    wanted = tmp_path / "elsewhere"
    if kind == "foreign":
        wanted.mkdir()
        (wanted / "notes.txt").write_text("not a cache")
    edit_recipe(final, lambda d: d["data"].update(cache_dir=str(wanted)))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the default folder, data_cache, resolves here

    result = evaluate("-c", str(final), "-o", str(tmp_path / "out"))
    why = "holds no prepared cache" if kind == "foreign" else "does not exist"
    assert (f"eval: the recipe's cache folder {wanted} {why}; using {cwd / 'data_cache'} "
            "(--cache-dir chooses another)") in result.output
    assert metrics_of(result)["n"] == 6
    assert list((cwd / "data_cache").glob("*/manifest.json"))
    if kind == "foreign":
        assert [p.name for p in wanted.iterdir()] == ["notes.txt"]
    else:
        assert not wanted.exists()

    chosen = tmp_path / "chosen"
    again = evaluate("-c", str(final), "-o", str(tmp_path / "out"), "--cache-dir", str(chosen))
    assert "recipe's cache folder" not in again.output
    assert metrics_of(again)["n"] == 6 and list(chosen.glob("*/manifest.json"))


# ------------------------------------------------------------------------------------------------
# 8. Eval says and records how many documents it skipped
# ------------------------------------------------------------------------------------------------


def test_eval_reports_the_documents_it_skipped(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    data = tmp_path / "data"
    for i in range(7):
        (data / f"test_{90 + i:04d}_1_aws.json").write_bytes(b'{"ocr": ')
    out = tmp_path / "out"
    result = evaluate("-c", str(final), "-o", str(out), "--skip-bad-files")
    metrics = metrics_of(result)
    names = [f"test_{90 + i:04d}_1_aws.json" for i in range(5)]
    assert (metrics["n"], metrics["skipped"], metrics["skipped_first"]) == (6, 7, names)
    assert f"eval: skipped 7 bad test document(s): {', '.join(names)} and 2 more" in result.output
    assert "docs 6  " in result.output and "skipped 7" in result.output


def test_eval_without_skips_records_zero(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    result = evaluate("-c", str(final), "-o", str(tmp_path / "out"))
    metrics = metrics_of(result)
    assert (metrics["skipped"], metrics["skipped_first"]) == (0, [])
    assert "skipped" not in result.output


# ------------------------------------------------------------------------------------------------
# 9. A wrongly typed manifest: eval names the entry and rebuilds it
# ------------------------------------------------------------------------------------------------


def test_eval_names_a_wrongly_typed_manifest_and_rebuilds_it(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    first = metrics_of(evaluate("-c", str(final), "-o", str(tmp_path / "out")))
    path = tmp_path / "cache" / first["cache_key"] / "manifest.json"
    crafted = json.loads(path.read_text())
    crafted["splits"]["test"]["rows"] = "abc"
    path.write_text(json.dumps(crafted))

    result = evaluate("-c", str(final), "-o", str(tmp_path / "out"))
    assert (f"cache: {path}: unreadable manifest (splits.test.rows: expected int, got str "
            "'abc'); rebuilding the entry") in result.output
    assert metrics_of(result)["n"] == first["n"]
    assert json.loads(path.read_text())["splits"]["test"]["rows"] == first["n"]


# ------------------------------------------------------------------------------------------------
# 11. report skips and names a metrics.json with impossible values
# ------------------------------------------------------------------------------------------------


def test_report_skips_and_names_impossible_metrics(tmp_path: Path) -> None:
    damage = {"nan": ("accuracy", math.nan), "big": ("accuracy", 7.5), "neg": ("n", -3),
              "text": ("macro_f1", "0.5"), "half": ("n", 2.5)}
    for name in ["good", *damage]:
        preds = scored(20)
        write_all(run_folder(tmp_path, 512, name), record_for(preds, name, 512), preds, LABELS)
    for name, (key, value) in damage.items():
        path = run_folder(tmp_path, 512, name) / "metrics.json"
        record = json.loads(path.read_text())
        record[key] = value
        path.write_text(json.dumps(record))  # NaN is written as the token NaN

    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    shown = {"nan": "accuracy nan is not a share between 0 and 1",
             "big": "accuracy 7.5 is not a share between 0 and 1",
             "neg": "n -3 is not a whole number of at least 0",
             "text": "macro_f1 '0.5' is not a share between 0 and 1",
             "half": "n 2.5 is not a whole number of at least 0"}
    for name, why in shown.items():
        assert f"skipped {run_folder(tmp_path, 512, name) / 'metrics.json'}: {why}" in (
            result.output)
    assert "report: skipped 5 metrics.json file(s)" in result.output
    table = (tmp_path / "report.md").read_text()
    assert "| good |" in table and all(f"| {name} |" not in table for name in damage)


def test_report_with_only_impossible_metrics_fails_in_one_line(tmp_path: Path) -> None:
    preds = scored(20)
    folder = run_folder(tmp_path, 512, "bad")
    write_all(folder, {**record_for(preds, "bad", 512), "n": -1}, preds, LABELS)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        f"Error: {tmp_path}: no usable */metrics.json under *-max-len/ folders (1 unusable); "
        f"run `rvl-llm eval -o {tmp_path}` first")
    assert not (tmp_path / "report.md").exists()

"""Several test sets, calibration and abstention through the commands, on the tiny checkpoint of
test_eval_cli (a word-level tokenizer and a random 2-layer Llama): per-set and mean ± std figures
checked by hand from predictions.tsv, a temperature that lowers validation NLL and that predict,
Classifier and export use, ``--min-probability`` abstaining, and each refusal in one line with
nothing written."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent))

from test_eval_cli import build_run, edit_recipe, fails, invoke, output_folder

from rvl_llm.cli import main
from rvl_llm.inference.calibration import CALIBRATION_NAME, softmax
from rvl_llm.predict.classifier import Classifier

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def split_file(path: Path, numbers: list[int], split: str = "test") -> Path:
    """A ``split id`` list of the corpus's documents (labels cycle over 4 classes)."""
    path.write_text("".join(f"{split} {split}_{i:04d}_{i % 4}_aws.json\n" for i in numbers))
    return path


def predictions(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "predictions.tsv").open() as f:
        return {row["doc_id"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_several_test_sets_give_per_set_and_mean_std(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    one = split_file(tmp_path / "test_1.txt", [0, 1, 2, 3])
    # 2 and 3 in both; this one in the published LLM-CDIP form: bare ids, split from the prefix
    two = tmp_path / "test_2.txt"
    two.write_text("".join(f"test_{i:04d}_{i % 4}\n" for i in [2, 3, 4, 5]))
    # As the shell expands `--test-sets splits/test_*.txt`: one option value, then more words.
    result = invoke("-c", str(final), "-o", str(tmp_path / "out"), "--test-sets", str(one),
                    str(two))
    assert result.exit_code == 0, result.output
    folder = output_folder(result)
    assert folder.name.startswith("tiny-run-2-sets-")
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = predictions(folder)
    assert sorted(rows) == [f"test_{i}" for i in range(6)] and metrics["n"] == 6  # once each
    right = {doc: row["true"] == row["predicted"] for doc, row in rows.items()}
    by_hand = [np.mean([right[f"test_{i}"] for i in members])
               for members in ([0, 1, 2, 3], [2, 3, 4, 5])]
    sets = metrics["test_sets"]
    assert [s["name"] for s in sets["sets"]] == ["test_1.txt", "test_2.txt"]
    assert [s["n"] for s in sets["sets"]] == [4, 4]
    assert [s["accuracy"] for s in sets["sets"]] == pytest.approx(by_hand)
    assert sets["accuracy_mean"] == pytest.approx(np.mean(by_hand))
    assert sets["accuracy_std"] == pytest.approx(np.std(by_hand, ddof=1))
    assert "mean ± std" in result.output and "test_2.txt" in result.output
    report = CliRunner().invoke(main, ["report", str(tmp_path / "out")])
    assert report.exit_code == 0, report.output
    assert f"| {np.mean(by_hand):.4f}" in report.output and "| 2 |" in report.output


def test_test_set_refusals_name_the_file(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    out = tmp_path / "out"
    wrong = split_file(tmp_path / "validation.txt", [0, 1], split="validation")
    fails(invoke("-c", str(final), "-o", str(out), "--test-sets", str(wrong)),
          f"--test-sets {wrong}: lists validation documents", "(test) only")
    fails(invoke("-c", str(final), "-o", str(out), str(wrong)), f"{wrong}: unexpected argument")
    missing = tmp_path / "test_9.txt"
    fails(invoke("-c", str(final), "-o", str(out), "--test-sets", str(missing)),
          f"--test-sets {missing}: no such file")
    fails(invoke("-c", str(final), "-o", str(out), "--test-sets", str(tmp_path / "t_*.txt")),
          "no file matches")
    assert not out.exists()


def test_calibrate_lowers_validation_nll_and_predict_uses_it(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    out = tmp_path / "out"
    result = invoke("-c", str(final), "-o", str(out), "--calibrate")
    assert result.exit_code == 0, result.output
    stored = json.loads((final / CALIBRATION_NAME).read_text())
    assert stored["fitted_on"]["split"] == "validation" and stored["fitted_on"]["n"] == 6
    assert stored["nll_after"] < stored["nll_before"] and stored["ece_bins"] == 15
    folder = output_folder(result)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["temperature"] == pytest.approx(stored["temperature"])
    assert metrics["ece_bins"] == 15 and 0 <= metrics["ece"] <= 1
    assert [r["min_probability"] for r in metrics["coverage"]] == [0.0, 0.5, 0.7, 0.9]
    assert (folder / "reliability_diagram.png").read_bytes()[:8] == PNG_MAGIC
    assert "ECE (15 bins)" in result.output and "min probability" in result.output

    # Predict gives each document the probability eval gives it, with the temperature.
    rows = predictions(folder)
    doc = tmp_path / "data" / "test_0001_1_aws.json"
    done = CliRunner().invoke(main, ["predict", "-c", str(final), str(doc), "--no-progress"])
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout.splitlines()[0])
    assert record["probability"] == pytest.approx(float(rows["test_1"]["top1_prob"]), abs=1e-4)
    clf = Classifier.from_checkpoint(final, device="cpu")
    assert clf.temperature == pytest.approx(stored["temperature"])
    scored = clf.score(["alpha beta report"])
    assert scored.probs[0] == pytest.approx(softmax(scored.scores, clf.temperature)[0])

    # A later eval of the test split reads calibration.json: same temperature, stated source.
    again = invoke("-c", str(final), "-o", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    later = json.loads((output_folder(again) / "metrics.json").read_text())
    assert later["temperature_from"] == str(final / CALIBRATION_NAME)
    assert later["ece"] == pytest.approx(metrics["ece"])

    # An export carries the temperature, and its card says so.
    exported = tmp_path / "export"
    done = CliRunner().invoke(main, ["export", "-c", str(final), "-o", str(exported)])
    assert done.exit_code == 0, done.output
    assert (exported / CALIBRATION_NAME).read_bytes() == (final / CALIBRATION_NAME).read_bytes()
    assert f"T = {stored['temperature']:.4g}" in (exported / "README.md").read_text()
    assert Classifier.from_checkpoint(exported, device="cpu").temperature == clf.temperature


def test_min_probability_abstains_with_the_top_k_kept(tmp_path: Path) -> None:
    final = build_run(tmp_path)
    clf = Classifier.from_checkpoint(final, device="cpu")
    texts = ["alpha beta report", "memo total page", "form form form"]
    plain = clf.predict(texts)
    cut = sorted(p.probability for p in plain)[1]  # the middle one stays, the lowest abstains
    some = clf.predict(texts, min_probability=cut)
    for before, after in zip(plain, some, strict=True):
        assert after.top_k == before.top_k and after.probability == before.probability
        assert after.label == (before.label if before.probability >= cut else None)
    assert sum(p.label is None for p in some) == 1
    with pytest.raises(ValueError, match="min_probability 2"):
        clf.predict(texts, min_probability=2)

    out = tmp_path / "labels.csv"
    doc = tmp_path / "data" / "test_0001_1_aws.json"
    done = CliRunner().invoke(main, ["predict", "-c", str(final), str(doc), "--no-progress",
                                     "--min-probability", "1"])
    record = json.loads(done.stdout.splitlines()[0])
    assert record["label"] is None and len(record["top_k"]) == 3
    done = CliRunner().invoke(main, ["predict", "-c", str(final), str(doc), "--no-progress",
                                     "--min-probability", "1", "-o", str(out)])
    assert done.exit_code == 0, done.output
    with out.open() as f:
        row = next(csv.DictReader(f))
    assert row["label"] == "" and row["top1"]
    bad = CliRunner().invoke(main, ["predict", "-c", str(final), str(doc),
                                    "--min-probability", "1.5"])
    assert bad.exit_code == 1 and "--min-probability 1.5: must be a probability" in bad.output


def test_calibration_refusals_write_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    final = build_run(tmp_path)
    out = tmp_path / "out"
    # A damaged calibration.json is named before anything runs, for eval and predict alike.
    (final / CALIBRATION_NAME).write_text('{"format": 1, "temperature": 0}')
    fails(invoke("-c", str(final), "-o", str(out)), f"{final / CALIBRATION_NAME}: temperature 0")
    (final / CALIBRATION_NAME).unlink()
    # An export is a copy: calibrate its source.
    edit_recipe(final, lambda data: data.update(exported={
        "source": str(final), "trainable": "full", "merged": False, "dtype": "fp32"}))
    fails(invoke("-c", str(final), "-o", str(out), "--calibrate"), "is an export")
    edit_recipe(final, lambda data: data.update(exported=None))
    # A folder that cannot be written (root writes anywhere: the probe is made to fail).
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:
        if self.parent == final:
            raise PermissionError(13, "Permission denied")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    fails(invoke("-c", str(final), "-o", str(out), "--calibrate"),
          f"--calibrate: cannot write {final / CALIBRATION_NAME} (Permission denied)")
    monkeypatch.undo()
    fails(invoke("-m", str(tmp_path / "models" / "tiny"), "-g", "-d", str(tmp_path / "data"),
                 "-o", str(out), "--calibrate"), "--calibrate: needs -c CHECKPOINT")
    assert not out.exists() and not (final / CALIBRATION_NAME).exists()
